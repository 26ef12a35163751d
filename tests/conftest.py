"""Shared fixtures: the real servers (started once per session, on first use).

Select services locally with markers, for example ``pytest -m "not azblob and not sftp"``.
In CI every marker runs, and a server that cannot start fails the run.
"""

from __future__ import annotations

pytest_plugins = ["tests.servers.fixtures", "tests.exit_watchdog"]
