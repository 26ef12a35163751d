"""A loopback HTTP server that honours the memory store's presigned URLs."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, unquote, urlsplit

from storager._errors import NotFoundError, StorageError

if TYPE_CHECKING:
    from storager.services.memory import MemoryStorage

__all__ = ["PresignServer"]


class PresignServer:
    """Serve GET and PUT of signed URLs for one memory store, on 127.0.0.1 only."""

    def __init__(self, store: MemoryStorage) -> None:
        self._store = store
        self._key = secrets.token_bytes(32)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="storager-memory-presign", daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def _signature(self, method: str, path: str, expires: float) -> str:
        message = f"{method}\n{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, method: str, path: str, expire: int) -> str:
        """Return a URL allowing ``method`` on store-absolute ``path`` for ``expire`` s."""
        # Millisecond precision: truncating to whole seconds could end a URL's life
        # up to a second early (an expire=1 URL might be dead on arrival).
        expires = round(time.time() + expire, 3)
        signature = self._signature(method, path, expires)
        return f"{self.base_url}{quote(path)}?expires={expires}&signature={signature}"

    def verify(self, method: str, target: str) -> str | None:
        """Return the store-absolute path a request may act on, or None."""
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        try:
            expires = float(query["expires"][0])
            signature = query["signature"][0]
        except (KeyError, ValueError, IndexError):
            return None
        path = unquote(parts.path)
        expected = self._signature(method, path, expires)
        if expires < time.time() or not hmac.compare_digest(expected, signature):
            return None
        return path

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(owner: PresignServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return  # no access log on stderr

        def _deny(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = owner.verify("GET", self.path)
            if path is None:
                self._deny(403, "signature invalid or expired")
                return
            try:
                data = owner._store.read(path)
            except NotFoundError:
                self._deny(404, "not found")
                return
            except StorageError as exc:
                self._deny(400, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            self.wfile.write(data)

        def do_PUT(self) -> None:
            path = owner.verify("PUT", self.path)
            if path is None:
                self._deny(403, "signature invalid or expired")
                return
            length = int(self.headers.get("Content-Length", "0"))
            try:
                owner._store.write(path, self.rfile.read(length) if length else b"")
            except StorageError as exc:
                self._deny(400, str(exc))
                return
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
