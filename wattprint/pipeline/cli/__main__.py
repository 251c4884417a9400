"""`python -m wattprint.pipeline.cli`: the `wattprint` command."""

import sys

from . import main

sys.exit(main())
