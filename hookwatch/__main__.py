"""python -m hookwatch."""

import sys

from hookwatch.cli import main

# Guarded: the SQLite writer process is spawned, and spawning imports the main module again.
if __name__ == "__main__":
    sys.exit(main())
