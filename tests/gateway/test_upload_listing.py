"""ListMultipartUploads and the expiry sweep cost one store listing, not a read per upload.

Each upload's note names its key, id and start time, so a listing page is one ``list``
of the notes whatever the number of uploads; counted here with stores that count their
calls, under several hundred uploads started through two apps (two gateway processes
over one store), over a Segmenter store (memory) and a plain one (a local directory).
"""

from __future__ import annotations

import asyncio
import tempfile
import xml.etree.ElementTree as ElementTree
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from storager.gateway import S3App
from storager.gateway._xml import xml_illegal
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage
from tests.gateway._raw import send, signed_headers
from tests.gateway.conftest import REGION, Gateway, _Served

CREDENTIALS = {"AKLIST": "list-secret"}
UPLOADS = 300
PAGE = 100
_READS = ("read", "open_reader", "stat")


class _Counting:
    """Counts the store calls a test looks at (reads, lists), per name."""

    calls: Counter[str]

    def _count(self, name: str) -> None:
        self.calls[name] += 1

    def read(self, path: str, **pairs: Any) -> bytes:
        self._count("read")
        return super().read(path, **pairs)  # type: ignore[misc, no-any-return]

    def open_reader(self, path: str, **pairs: Any) -> Any:
        self._count("open_reader")
        return super().open_reader(path, **pairs)  # type: ignore[misc]

    def stat(self, path: str, **pairs: Any) -> Any:
        self._count("stat")
        return super().stat(path, **pairs)  # type: ignore[misc]

    def list(self, path: str, **pairs: Any) -> Iterator[Any]:
        self._count("list")
        return super().list(path, **pairs)  # type: ignore[misc, no-any-return]


class CountingMemory(_Counting, MemoryStorage):
    def __init__(self) -> None:
        self.calls = Counter()
        super().__init__()


class CountingFs(_Counting, FsStorage):
    def __init__(self, root: str) -> None:
        self.calls = Counter()
        super().__init__(root=root)


def _client(port: int) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id="AKLIST",
        aws_secret_access_key="list-secret",
        region_name=REGION,
        config=Config(retries={"max_attempts": 1}, max_pool_connections=16),
    )


@pytest.fixture(scope="module", params=["memory", "fs"])
def gateways(request: Any) -> Iterator[tuple[Any, list[Any], list[S3App]]]:
    """One counting store served by two apps; a boto3 client of each."""
    with tempfile.TemporaryDirectory() as root:
        store: Any = CountingMemory() if request.param == "memory" else CountingFs(root)
        apps = [S3App({"b": store}, credentials=CREDENTIALS) for _ in range(2)]
        served = [_Served(app, lifespan="on") for app in apps]
        try:
            yield store, [_client(s.port) for s in served], apps
        finally:
            for s in served:
                s.stop()
            store.close()


def _start_many(clients: list[Any]) -> list[tuple[str, str]]:
    """UPLOADS uploads, alternately through each app; a few keys have several."""
    started = []
    for i in range(UPLOADS):
        key = f"k/{i % (UPLOADS - 20):04d}.bin"  # the first 20 keys get two uploads
        upload = clients[i % 2].create_multipart_upload(Bucket="b", Key=key)["UploadId"]
        started.append((key, upload))
    return started


def _reads(store: Any) -> int:
    return sum(store.calls[name] for name in _READS)


def test_each_listing_page_costs_one_store_list_and_no_read(
    gateways: tuple[Any, list[Any], list[S3App]],
) -> None:
    store, clients, apps = gateways
    started = _start_many(clients)
    long_key = "long/" + "é" * 150  # too long to name in a note: the one read
    long_upload = clients[0].create_multipart_upload(Bucket="b", Key=long_key)["UploadId"]
    listed: list[tuple[str, str]] = []
    pages = 0
    markers: dict[str, str] = {}
    while True:
        store.calls.clear()
        answer = clients[1].list_multipart_uploads(Bucket="b", MaxUploads=PAGE, **markers)
        pages += 1
        assert store.calls["list"] == 1, store.calls
        assert _reads(store) <= 1, store.calls  # the long key's note, nothing else
        listed += [(u["Key"], u["UploadId"]) for u in answer.get("Uploads", [])]
        if not answer["IsTruncated"]:
            break
        markers = {
            "KeyMarker": answer["NextKeyMarker"],
            "UploadIdMarker": answer["NextUploadIdMarker"],
        }
    assert pages == (UPLOADS + 1 + PAGE - 1) // PAGE
    assert sorted(listed) == sorted([*started, (long_key, long_upload)])
    assert [key for key, _ in listed] == sorted(key for key, _ in listed)

    # The sweep, from the other app: one listing, no reads but the long key's note.
    store.calls.clear()
    later = datetime.now(UTC) + apps[0].upload_max_age + timedelta(seconds=1)
    assert asyncio.run(apps[0].sweep_uploads(now=later)) == UPLOADS + 1
    assert _reads(store) <= 1, store.calls
    assert clients[0].list_multipart_uploads(Bucket="b").get("Uploads", []) == []
    hidden = [o.path for o in store.list(".storager-uploads/", list_mode="prefix")]
    assert [p for p in hidden if not p.endswith("/")] == []


def test_a_listing_names_a_key_and_start_time_the_note_carries(
    gateways: tuple[Any, list[Any], list[S3App]],
) -> None:
    _, clients, _ = gateways
    key = "odd name/with.dots %41 and+plus.bin"
    before = datetime.now(UTC).replace(microsecond=0)
    upload = clients[0].create_multipart_upload(Bucket="b", Key=key)["UploadId"]
    (found,) = clients[1].list_multipart_uploads(Bucket="b", Prefix="odd ")["Uploads"]
    assert (found["Key"], found["UploadId"]) == (key, upload)
    assert before <= found["Initiated"] <= datetime.now(UTC) + timedelta(seconds=1)
    part = clients[1].upload_part(Bucket="b", Key=key, UploadId=upload, PartNumber=1, Body=b"x")
    clients[1].complete_multipart_upload(
        Bucket="b",
        Key=key,
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    assert clients[0].get_object(Bucket="b", Key=key)["Body"].read() == b"x"
    assert clients[0].list_multipart_uploads(Bucket="b").get("Uploads", []) == []


def test_the_next_page_holds_when_the_marker_upload_is_gone(
    gateways: tuple[Any, list[Any], list[S3App]],
) -> None:
    _, clients, _ = gateways
    keys = ["gone/a", "gone/a", "gone/a", "gone/b", "gone/c"]
    started = [
        (key, clients[i % 2].create_multipart_upload(Bucket="b", Key=key)["UploadId"])
        for i, key in enumerate(keys)
    ]
    expected = sorted(started)  # S3's order: by key, then by upload id
    first = clients[0].list_multipart_uploads(Bucket="b", Prefix="gone/", MaxUploads=2)
    assert [(u["Key"], u["UploadId"]) for u in first["Uploads"]] == expected[:2]
    assert first["IsTruncated"] is True
    marker_key, marker_id = first["NextKeyMarker"], first["NextUploadIdMarker"]
    assert (marker_key, marker_id) == expected[1]
    # The marker's own upload ends between the pages (a cleanup tool aborting as it goes).
    clients[1].abort_multipart_upload(Bucket="b", Key=marker_key, UploadId=marker_id)
    second = clients[1].list_multipart_uploads(
        Bucket="b", Prefix="gone/", KeyMarker=marker_key, UploadIdMarker=marker_id
    )
    assert [(u["Key"], u["UploadId"]) for u in second["Uploads"]] == expected[2:]
    assert second["IsTruncated"] is False
    # Without an upload-id-marker, the key marker's own uploads are passed over.
    rest = clients[0].list_multipart_uploads(Bucket="b", Prefix="gone/", KeyMarker="gone/a")
    assert [u["Key"] for u in rest["Uploads"]] == ["gone/b", "gone/c"]
    for key, upload in [expected[0], *expected[2:]]:
        clients[0].abort_multipart_upload(Bucket="b", Key=key, UploadId=upload)
    assert clients[0].list_multipart_uploads(Bucket="b", Prefix="gone/").get("Uploads", []) == []


@pytest.mark.parametrize(
    ("operation", "arguments", "parameter"),
    [
        ("list_multipart_uploads", {"Prefix": "a\x01"}, "prefix"),
        ("list_multipart_uploads", {"KeyMarker": "k\x1f"}, "key-marker"),
        (
            "list_multipart_uploads",
            {"KeyMarker": "k", "UploadIdMarker": "\x08"},
            "upload-id-marker",
        ),
        ("list_multipart_uploads", {"Delimiter": "\x0b"}, "delimiter"),
        ("list_objects_v2", {"Prefix": "\x01"}, "prefix"),
        ("list_objects_v2", {"Delimiter": "\x0c"}, "delimiter"),
        ("list_objects_v2", {"StartAfter": "a\uffff"}, "start-after"),
        ("list_objects_v2", {"ContinuationToken": "t\x02"}, "continuation-token"),
        ("list_objects", {"Marker": "\x01"}, "marker"),
        ("list_objects", {"Prefix": "p\ufffe"}, "prefix"),
        ("list_object_versions", {"KeyMarker": "\x1e"}, "key-marker"),
        (
            "list_object_versions",
            {"VersionIdMarker": "\x01", "KeyMarker": "k"},
            "version-id-marker",
        ),
    ],
)
def test_a_listing_refuses_a_query_value_xml_cannot_carry(
    gateways: tuple[Any, list[Any], list[S3App]],
    operation: str,
    arguments: dict[str, str],
    parameter: str,
) -> None:
    """A 400 naming the parameter, before any store call (was a 500, or an answer no
    XML parser reads)."""
    store, clients, _ = gateways
    store.calls.clear()
    with pytest.raises(ClientError) as caught:
        getattr(clients[0], operation)(Bucket="b", **arguments)
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "InvalidArgument"
    assert f"the {parameter} parameter" in error["Error"]["Message"]
    assert store.calls["list"] == 0


def test_a_listing_takes_the_whitespace_xml_carries(
    gateways: tuple[Any, list[Any], list[S3App]],
) -> None:
    _, clients, _ = gateways
    answer = clients[0].list_multipart_uploads(Bucket="b", Prefix="tab\there\nand é")
    assert answer["Prefix"] == "tab\there\nand é"
    assert answer.get("Uploads", []) == []
    assert clients[1].list_objects_v2(Bucket="b", Prefix="a\tb").get("Contents", []) == []


def test_xml_illegal_names_what_xml_1_0_cannot_hold() -> None:
    assert [xml_illegal(t) for t in ("a\x01", "\x1f", "b\ufffe", "\uffff", "\ud800")] == [
        "\x01",
        "\x1f",
        "\ufffe",
        "\uffff",
        "\ud800",
    ]
    assert [xml_illegal(t) for t in ("", "plain", "\t\n\r", "é\u2028\xa0", "\U0001f600")] == [
        None
    ] * 5


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def _signed_get(gateway: Gateway, raw_path: str) -> Any:
    port = int(gateway.endpoint.rpartition(":")[2])
    return send(port, "GET", raw_path, headers=signed_headers(port, "GET", raw_path, _EMPTY_SHA256))


def test_an_answer_xml_cannot_carry_is_refused_and_an_error_still_parses(
    gateway: Gateway, prefix: str
) -> None:
    """The last line of defence: a stored key holding U+FFFF is listed url-encoded, and
    refused (400) rather than sent raw; an error naming a key with U+0001 still parses."""
    store = gateway.stores["mem"]
    key = f"{prefix}odd\uffffkey"
    store.write(key, b"x")
    try:
        raw = _signed_get(gateway, f"/mem?list-type=2&prefix={quote(prefix)}")
        assert raw.status == 400 and raw.code == "InvalidArgument", raw.body
        assert b"U+FFFF" in raw.body
        ElementTree.fromstring(raw.body)
        listed = gateway.client().list_objects_v2(Bucket="mem", Prefix=prefix)  # url-encoded
        assert [o["Key"] for o in listed["Contents"]] == [key]
    finally:
        store.delete(key)
    missing = _signed_get(gateway, f"/mem/{quote(prefix)}a%01b")
    assert missing.status == 400 and missing.code == "InvalidArgument"
    error = ElementTree.fromstring(missing.body)
    assert error.findtext("Resource") == f"/mem/{prefix}a\ufffdb"
