"""Build a conformance-suite store factory from a connection string."""

from __future__ import annotations

import threading
from typing import Any

from storager._protocols import Storager

__all__ = ["UrlFactory", "url_factory"]


class UrlFactory:
    """Open stores from one connection string, each under its own work_dir.

    The URL may carry a work_dir of its own (``s3://bucket/base/``); the work_dir a
    call gives is nested under it, so ``factory("/t1/")`` opens ``/base/t1/``. The URL
    is opened once, on the first call, to learn that base.

    Attributes:
        url: The connection string.
        pairs: Init pairs given with it; pairs given to a call win over them.
    """

    def __init__(self, url: str, **pairs: Any) -> None:
        self.url = url
        self.pairs = pairs
        self._base: str | None = None
        self._lock = threading.Lock()

    @property
    def base_work_dir(self) -> str:
        """The URL's own work_dir (``/`` when it has none), ending with ``/``."""
        with self._lock:
            if self._base is None:
                import storager

                probe = storager.open(self.url, **self.pairs)
                try:
                    self._base = probe.metadata().work_dir
                finally:
                    probe.close()
            return self._base

    def __call__(self, work_dir: str, **init_pairs: Any) -> Storager:
        """Open the URL with ``work_dir`` nested under the URL's own work_dir."""
        import storager

        nested = self.base_work_dir.rstrip("/") + "/" + work_dir.lstrip("/")
        return storager.open(self.url, **{**self.pairs, **init_pairs, "work_dir": nested})

    def __repr__(self) -> str:
        from storager._registry import redact_url

        return f"url_factory({redact_url(self.url)!r})"


def url_factory(url: str, **pairs: Any) -> UrlFactory:
    """Return a ``storager_factory`` for the conformance suite that opens ``url``.

    Example:
        >>> factory = url_factory("memory://")
        >>> factory("/storager-test-1/").metadata().work_dir
        '/storager-test-1/'
    """
    return UrlFactory(url, **pairs)
