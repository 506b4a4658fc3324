"""``python -m scfleet``: the ``scfleet`` command."""

import sys

from scfleet.cli import main

if __name__ == "__main__":
    sys.exit(main())
