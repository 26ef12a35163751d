"""Combinators: storages made of storages.

Every combinator is itself a :class:`~storager.Storager`, so they nest into a tree,
and each is an instance of exactly the capability protocols its children allow::

    store = Retry(Mirror({"primary": fs, "backup": s3}, write="parallel"))
    isinstance(store, storager.Copier)   # True only if fs and s3 both copy

See docs/combinators.md.
"""

from storager._retry_policy import RetryPolicy
from storager.combinators._audit_records import AuditRecord
from storager.combinators._audited import Audited, read_audit
from storager.combinators._base import Wrapper, capability_class
from storager.combinators._cached import Cached
from storager.combinators._delegate import Delegate
from storager.combinators._describe import describe
from storager.combinators._failover import Failover
from storager.combinators._logged import Logged
from storager.combinators._mirror import Mirror, MirrorError
from storager.combinators._prefixed import Prefixed, ReadOnly
from storager.combinators._reporter import Event
from storager.combinators._retry import Retry
from storager.combinators._router import Router
from storager.combinators._timeout import Timeout
from storager.combinators._trace import Span, Trace, trace
from storager.combinators.striped import ReedSolomon, Replicas, Striped, Stripes

__all__ = [
    "AuditRecord",
    "Audited",
    "Cached",
    "Delegate",
    "Event",
    "Failover",
    "Logged",
    "Mirror",
    "MirrorError",
    "Prefixed",
    "ReadOnly",
    "ReedSolomon",
    "Replicas",
    "Retry",
    "RetryPolicy",
    "Router",
    "Span",
    "Striped",
    "Stripes",
    "Timeout",
    "Trace",
    "Wrapper",
    "capability_class",
    "describe",
    "read_audit",
    "trace",
]
