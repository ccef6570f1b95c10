"""`python -m services.tools.k8s [--check]`: see services/tools/k8s/__init__.py."""

import sys

from services.tools.k8s.generate import main

sys.exit(main())
