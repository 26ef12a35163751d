"""Combinators: storages made of storages.

Every combinator is itself a :class:`~storager.Storager`, so they nest into a tree,
and each is an instance of exactly the capability protocols its children allow.
"""

from storager.combinators._base import Delegate, Wrapper, capability_class
from storager.combinators._mirror import Mirror, MirrorError
from storager.combinators._trace import Span, Trace, trace

__all__ = [
    "Delegate",
    "Mirror",
    "MirrorError",
    "Span",
    "Trace",
    "Wrapper",
    "capability_class",
    "trace",
]
