"""`python -m relayer.cli ...`: the same as the `relayer` console script."""

import sys

from relayer.cli import main

sys.exit(main())
