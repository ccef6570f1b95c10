import sys

from services.localinfra.cli import main

sys.exit(main())
