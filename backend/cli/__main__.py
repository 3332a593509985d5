"""`python -m backend.cli`: the `expertgate` command."""

import sys

from backend.cli.main import main

sys.exit(main())
