"""python -m hookwatch.demo."""

import sys

from hookwatch.demo import main

sys.exit(main())
