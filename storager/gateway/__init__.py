"""The gateway: serve any store as an S3 bucket (and plain REST) over ASGI.

``S3App`` is a raw ASGI application; ``storager serve`` runs it under uvicorn. See
docs/gateway.md. The modules, one idea each:

- ``_app``: the application (parse, health, auth, route, answer, expiry sweep);
- ``_router``: operation names from method, depth and query;
- ``_objects``, ``_listing``, ``_multipart``: the S3 operations;
- ``_uploads``: multipart over a Segmenter or a reserved prefix, and the upload registry;
- ``_body``, ``_chunked``, ``_checksums``: request bodies, aws-chunked, digests;
- ``_errors``: S3 errors, mapped from storager errors in one place;
- ``_xml``: rendering and parsing S3's XML;
- ``_keys``: which keys are accepted;
- ``_limiter``: store calls in a bounded pool of threads;
- ``_access_log``: one log line per request.
"""

from storager.gateway._app import S3App
from storager.gateway._errors import S3Error

__all__ = ["S3App", "S3Error"]
