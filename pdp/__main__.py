"""`python -m pdp` runs the command line."""

import sys

from pdp.cli.main import main

sys.exit(main())
