"""``python -m storager``: the command line; see :mod:`storager.cli`."""

from storager.cli import main

raise SystemExit(main())
