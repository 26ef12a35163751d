"""The transfer defaults the parser shows in ``--help`` and the engine uses.

Kept apart so that building the parser (every command's start-up) does not import the
transfer engine, which only cp, mv and sync need.
"""

from __future__ import annotations

__all__ = ["DEFAULT_JOBS", "PART_SIZE"]

#: Objects in flight by default: measured on 1,000 files of 4 KiB from local disk to
#: SeaweedFS S3 (benchmarks/cli_peers.py --jobs; docs/cli.md "Choosing -j").
DEFAULT_JOBS = 16
#: The part size of a parallel-parts copy, unless the store needs larger parts to stay
#: within its part count (``--part-size``).
PART_SIZE = 8 << 20
