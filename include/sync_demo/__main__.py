"""``python -m sync_demo``: the embedded demo (``make demo``); see :mod:`sync_demo.cli`."""

from sync_demo.cli import main

raise SystemExit(main())
