"""pytest plugin: ``pytest --storager-url URL`` runs the conformance suite against URL.

Registered as the ``storager`` pytest11 entry point, so it loads in every pytest run
where storager is installed; it imports nothing from storager until a URL is given.

Options:
    --storager-url URL         run the suite (``storager/testing/_url_suite.py``) on URL.
    --storager-pair KEY=VALUE  an init pair for the store (repeatable); typed like a
                               connection-string query value.

Without explicit test paths only the suite runs; with paths it runs beside them.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

#: The init pairs parsed from ``--storager-pair``, once the run is configured.
PAIRS_KEY = pytest.StashKey[dict[str, Any]]()
_SUITE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_url_suite.py")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("storager", "storager conformance suite")
    group.addoption(
        "--storager-url",
        dest="storager_url",
        default=None,
        metavar="URL",
        help="run the storager conformance suite against this connection string",
    )
    group.addoption(
        "--storager-pair",
        dest="storager_pairs",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an init pair for the --storager-url store (repeatable)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: a slow case (large objects)")
    if not config.getoption("storager_url", None):
        return
    # Check the URL's pairs now, so a typo stops the run before any test starts.
    config.stash[PAIRS_KEY] = parse_pairs(
        config.getoption("storager_url"), config.getoption("storager_pairs")
    )
    if config.args_source == pytest.Config.ArgsSource.ARGS:
        config.args.append(_SUITE_FILE)
    else:
        # No paths given: run only the suite, not whatever the current directory holds.
        config.args[:] = [_SUITE_FILE]


def parse_pairs(url: str, items: list[str]) -> dict[str, Any]:
    """Parse ``KEY=VALUE`` items into init pairs typed by the URL's service.

    Raises:
        pytest.UsageError: An item is malformed, or names no init pair of the service.
    """
    from storager._errors import StorageError
    from storager._pairs import parse_text_value
    from storager._registry import parse_connection_string

    try:
        cls, _ = parse_connection_string(url)
    except StorageError as exc:
        raise pytest.UsageError(f"--storager-url: {exc}") from exc
    pairs: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise pytest.UsageError(f"--storager-pair {item!r}: expected KEY=VALUE")
        spec = cls.init_pairs.get(key)
        if spec is None:
            known = ", ".join(sorted(cls.init_pairs))
            raise pytest.UsageError(f"--storager-pair: unknown pair {key!r} (known: {known})")
        try:
            pairs[key] = parse_text_value(cls.service_name, spec, text)
        except StorageError as exc:
            raise pytest.UsageError(f"--storager-pair: {exc}") from exc
    return pairs
