"""python -m hookwatch."""

import sys

from hookwatch.cli import main

sys.exit(main())
