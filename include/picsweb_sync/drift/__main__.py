"""``python -m picsweb_sync.drift``: see :mod:`picsweb_sync.drift.cli`."""

import sys

from picsweb_sync.drift.cli import main

sys.exit(main())
