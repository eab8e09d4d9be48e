"""``python -m picsweb_sync.preflight``: see :mod:`picsweb_sync.preflight.cli`."""

import sys

from picsweb_sync.preflight.cli import main

sys.exit(main())
