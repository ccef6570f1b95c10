import sys

from services.tools.chaos.cli import main

sys.exit(main())
