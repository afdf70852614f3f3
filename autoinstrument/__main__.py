"""`python -m autoinstrument check|report ...`: the same as the `autoinstrument` console script."""

from __future__ import annotations

import sys

from autoinstrument.cli import main

sys.exit(main())
