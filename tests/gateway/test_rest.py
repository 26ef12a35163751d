"""Plain REST: /v1/{bucket}/{path} with a bearer token (or SigV4), JSON listings."""

from __future__ import annotations

import json

from tests.gateway._raw import send, signed_headers
from tests.gateway.conftest import SECRET_KEY, Gateway

BEARER = {"host": "x", "authorization": f"Bearer {SECRET_KEY}"}


def _port(gateway: Gateway) -> int:
    return int(gateway.endpoint.rpartition(":")[2])


def test_put_get_range_head_delete(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    path = f"/v1/mem/{prefix}note.txt"
    put = send(port, "PUT", path, b"plain rest body", {**BEARER, "content-length": "15"})
    assert put.status == 200
    assert gateway.stores["mem"].read(prefix + "note.txt") == b"plain rest body"
    assert send(port, "GET", path, headers=BEARER).body == b"plain rest body"
    ranged = send(port, "GET", path, headers={**BEARER, "range": "bytes=6-9"})
    assert (ranged.status, ranged.body) == (206, b"rest")
    head = send(port, "HEAD", path, headers=BEARER)
    assert (head.status, head.headers["content-length"]) == (200, "15")
    assert send(port, "DELETE", path, headers=BEARER).status == 204
    missing = send(port, "GET", path, headers=BEARER)
    assert missing.status == 404
    assert json.loads(missing.body)["error"] == "NoSuchKey"


def test_json_listing_pages_with_a_cursor(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    for name in ["a", "b", "c", "d/e"]:
        gateway.stores["mem"].write(prefix + name, b"x")
    seen: list[str] = []
    cursor = ""
    while True:
        query = f"?prefix={prefix}&delimiter=/&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = json.loads(send(port, "GET", f"/v1/mem/{query}", headers=BEARER).body)
        seen += [o["key"] for o in page["objects"]] + page["prefixes"]
        if not page["cursor"]:
            break
        cursor = page["cursor"]
    assert seen == [prefix + "a", prefix + "b", prefix + "c", prefix + "d/"]


def test_wrong_bearer_and_no_auth_are_refused(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    path = f"/v1/mem/{prefix}x"
    wrong = {"host": "x", "authorization": "Bearer nope", "content-length": "1"}
    answer = send(port, "PUT", path, b"x", wrong)
    assert (answer.status, json.loads(answer.body)["error"]) == (403, "AccessDenied")
    assert send(port, "GET", path, headers={"host": "x"}).status == 403
    assert list(gateway.stores["mem"].list(prefix, list_mode="prefix")) == []


def test_sigv4_works_on_rest_routes(gateway: Gateway, prefix: str) -> None:
    port = _port(gateway)
    path = f"/v1/mem/{prefix}signed"
    gateway.stores["mem"].write(prefix + "signed", b"sig")
    headers = signed_headers(port, "GET", path, "UNSIGNED-PAYLOAD")
    assert send(port, "GET", path, headers=headers).body == b"sig"
