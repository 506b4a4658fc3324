"""``python -m reference_server``: run the server in the foreground (see :mod:`.server`)."""

from __future__ import annotations

import sys

from reference_server.server import main

if __name__ == "__main__":
    sys.exit(main())
