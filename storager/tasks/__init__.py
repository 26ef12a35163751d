"""Background storage tasks with callbacks, retries and failover.

>>> from storager.tasks import TaskQueue
>>> import storager
>>> with TaskQueue(storager.open("memory://"), workers=2) as queue:
...     task = queue.submit("write", "a.txt", b"hi")
...     task.result(timeout=5).content_length
2

See docs/async.md.
"""

from storager.tasks._queue import TaskQueue, store_failed
from storager.tasks._task import StorageTask, TaskQueueClosedError, TaskQueueFullError

__all__ = [
    "StorageTask",
    "TaskQueue",
    "TaskQueueClosedError",
    "TaskQueueFullError",
    "store_failed",
]
