"""``python -m rankref``: the rankref command line (no sub-command: the demo)."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
