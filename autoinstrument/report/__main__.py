"""`python -m autoinstrument.report`: the same command as `autoinstrument report`."""

import sys

from autoinstrument.report.cli import main

sys.exit(main())
