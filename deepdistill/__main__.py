"""``python -m deepdistill``: see :mod:`deepdistill.cli`."""
import sys

from deepdistill.cli import main

if __name__ == "__main__":
    sys.exit(main())
