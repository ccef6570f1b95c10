import sys

from services.tools.localinfra.cli import main

sys.exit(main())
