"""The combinators in their async form: the same policies over async stores.

Each takes async children (``store.aio``, a native async store, or another combinator)
and keeps the sync combinator's semantics. Most are the *source* of both forms:
``python -m codegen`` derives the sync combinator from the async module here
(``codegen/unasync.py``); the policy cores (Retry's ``Attempts``, Timeout's
``Deadline``, Prefixed's ``PrefixMap``, Logged's ``Reporter``...) are shared sync
modules. ``AsyncTimeout`` cancels the operation for real. Here: AsyncRetry,
AsyncTimeout, AsyncFailover, AsyncPrefixed, AsyncReadOnly, AsyncLogged, AsyncAudited,
AsyncRouter, AsyncCached, AsyncMirror. ``async_mirror`` is the older bridge: the sync
Mirror over the children's sync twins on a thread pool (same code, not native);
``async_striped`` is Striped's, the same way.

>>> import asyncio, storager
>>> from storager.aio.combinators import AsyncRetry, AsyncTimeout
>>> store = AsyncRetry(AsyncTimeout(storager.open("memory://").aio, 5.0))
>>> asyncio.run(store.write("a.txt", b"hi")).content_length
2

See docs/async.md.
"""

from storager.aio.combinators._audited import AsyncAudited, read_audit_async
from storager.aio.combinators._base import AsyncWrapper
from storager.aio.combinators._bridged import async_mirror, async_striped
from storager.aio.combinators._cached import AsyncCached
from storager.aio.combinators._delegate import AsyncDelegate
from storager.aio.combinators._failover import AsyncFailover
from storager.aio.combinators._logged import AsyncLogged
from storager.aio.combinators._mirror import AsyncMirror
from storager.aio.combinators._prefixed import AsyncPrefixed, AsyncReadOnly
from storager.aio.combinators._retry import AsyncRetry
from storager.aio.combinators._router import AsyncRouter
from storager.aio.combinators._timeout import AsyncTimeout

__all__ = [
    "AsyncAudited",
    "AsyncCached",
    "AsyncDelegate",
    "AsyncFailover",
    "AsyncLogged",
    "AsyncMirror",
    "AsyncPrefixed",
    "AsyncReadOnly",
    "AsyncRetry",
    "AsyncRouter",
    "AsyncTimeout",
    "AsyncWrapper",
    "async_mirror",
    "async_striped",
    "read_audit_async",
]
