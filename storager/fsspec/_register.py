"""Taking over a plain scheme (``s3://``) for fsspec, only when asked."""

from __future__ import annotations

import fsspec
from fsspec.registry import known_implementations, registry

from storager._errors import AlreadyExistsError
from storager._registry import service_class
from storager.fsspec._filesystem import StoragerFileSystem

__all__ = ["register"]


def register(scheme: str, *, clobber: bool = False) -> None:
    """Make fsspec open ``<scheme>://`` URLs with :class:`StoragerFileSystem`.

    ``storager+<scheme>://`` needs no registration (an entry point declares it); this is
    for code that passes plain ``s3://`` URLs and wants storager to serve them.

    Args:
        scheme: A storager scheme (``"s3"``, ``"memory"``...).
        clobber: Replace an fsspec implementation already known for the scheme (s3fs
            for ``s3``); without it such a scheme is refused.

    Raises:
        ServiceNotRegisteredError: storager has no service for ``scheme``.
        AlreadyExistsError: fsspec already knows ``scheme`` and ``clobber`` is false.
    """
    service_class(scheme)
    taken = scheme in known_implementations or scheme in registry
    if taken and not clobber and registry.get(scheme) is not StoragerFileSystem:
        raise AlreadyExistsError(
            "register", "fsspec", scheme, "fsspec already has this scheme; pass clobber=True"
        )
    fsspec.register_implementation(scheme, StoragerFileSystem, clobber=True)
