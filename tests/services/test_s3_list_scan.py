"""The fast ListObjectsV2 reader (``_list_scan``) against ``xml.etree``, the authority.

Random pages in the shapes servers send (SeaweedFS's and AWS's field orders, keys
URL-encoded or escaped, ETag quotes as entities) and in shapes the fast reader must
refuse (comments, CDATA, attributes, prefixes, mixed blocks, elements between blocks):
whatever the fast reader returns must equal what ``xml.etree`` reads, and the plain
shapes must be read by it (else the speed-up is gone without a failure). Real pages from
moto and SeaweedFS are held to the same. Last, the handshake that lets a listing send
the next page's request before it parses the current one.
"""

from __future__ import annotations

import secrets
import socket
import threading
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storager
from storager import StorageError
from storager._retry_policy import RetryPolicy
from storager.services.s3 import S3Storage
from storager.services.s3._connections import ConnectionPool, Response
from storager.services.s3._http_transport import HttpTransport
from storager.services.s3._list_scan import scan_list_page
from storager.services.s3._xml import list_page_of, next_token, parse_list_page, tree_list_page

SEAWEEDFS = ("Key", "ETag", "Size", "StorageClass", "LastModified")
AWS = ("Key", "LastModified", "ETag", "Size", "StorageClass")

# Keys as users write them: spaces, pluses, percent signs, markup characters, quotes,
# non-ASCII, a tab and a newline.
_KEY_CHARS = st.sampled_from(list("ab/._-~ +%&<>\"'=;:]\t\nüé©ключ\u2028\ufffd"))
_KEY = st.text(_KEY_CHARS, min_size=1, max_size=12)


def _escaped(text: str, numeric: bool) -> str:
    """``text`` as XML character data, with named or numeric entities."""
    if numeric:
        return "".join(f"&#{ord(c)};" if c in "&<>\"'\t\n" else c for c in text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


@st.composite
def pages(draw: st.DrawFn, *, plain: bool = False) -> tuple[bytes, list[str]]:
    """A ListObjectsV2 page and the keys it lists, in order.

    ``plain``: only what real servers send, which the fast reader must read itself.
    """
    keys = draw(st.lists(_KEY, max_size=6))
    order = list(draw(st.sampled_from([SEAWEEDFS, AWS])))
    if not plain:
        if draw(st.booleans()):
            order = draw(st.permutations(order))
        for optional in ("LastModified", "ETag", "StorageClass"):
            if draw(st.integers(0, 5)) == 0:
                order.remove(optional)
        if draw(st.integers(0, 3)) == 0:
            order.insert(draw(st.integers(0, len(order))), "ChecksumAlgorithm")
    url_encoded = plain or draw(st.booleans())
    numeric = draw(st.booleans())
    quote = draw(st.sampled_from(["&#34;", "&quot;", '"', ""]))
    pretty = not plain and draw(st.booleans())
    gap = "\n    " if pretty else ""
    blocks = []
    for key in keys:
        fields = {
            "Key": quote_plus(key, safe="/") if url_encoded else _escaped(key, numeric),
            "ETag": f"{quote}{draw(st.text('0123456789abcdef-', max_size=8))}{quote}",
            "Size": str(draw(st.integers(0, 10**12))),
            "StorageClass": draw(st.sampled_from(["STANDARD", "GLACIER", ""])),
            "LastModified": draw(
                st.sampled_from(["2026-12-05T21:56:53Z", "2026-12-05T21:56:53.123Z", ""])
            ),
            "ChecksumAlgorithm": "CRC32",
        }
        children = [f"{gap}<{tag}>{fields[tag]}</{tag}>" for tag in order]
        if not plain and draw(st.integers(0, 6)) == 0:
            children.pop(draw(st.integers(0, len(children) - 1)))  # one block unlike the rest
        blocks.append(f"<Contents>{''.join(children)}{gap}</Contents>")
    prefixes = [
        f"<CommonPrefixes><Prefix>{quote_plus(p, safe='/')}</Prefix></CommonPrefixes>"
        for p in draw(st.lists(_KEY, max_size=2))
    ]
    truncated = draw(st.booleans())
    tokens = ["", "bGlzdC9rZXk=", "list10k/00999"]
    token = draw(st.sampled_from(tokens if plain else [*tokens, "a&amp;b"]))
    head = [
        "<Name>bucket</Name>",
        draw(st.sampled_from(["<Prefix></Prefix>", "<Prefix/>"])),
        f"<IsTruncated>{str(truncated).lower()}</IsTruncated>",
    ]
    tail = [*prefixes, "<EncodingType>url</EncodingType>", f"<KeyCount>{len(keys)}</KeyCount>"]
    if truncated:
        (head if draw(st.booleans()) else tail).append(
            f"<NextContinuationToken>{token}</NextContinuationToken>"
        )
    middle = blocks
    if not plain:
        oddity = draw(
            st.sampled_from(
                [
                    None,
                    "<!-- <IsTruncated>true</IsTruncated> -->",
                    "<![CDATA[<Contents><Key>fake</Key><Size>1</Size></Contents>]]>",
                    "<?pi <NextContinuationToken>fake</NextContinuationToken>?>",
                    '<Contents a="1"><Key>attr</Key><Size>1</Size></Contents>',
                    "<Contents><Key>nested<b>x</b></Key><Size>1</Size></Contents>",
                    "<CommonPrefixes><Prefix>between/</Prefix></CommonPrefixes>",
                    "<IsTruncated>false</IsTruncated>",
                    "text between",
                    # One level too deep: xml.etree reads only the root's children.
                    "<Wrap><Contents><Key>deep</Key><Size>1</Size></Contents></Wrap>",
                    "<Wrap><IsTruncated>true</IsTruncated></Wrap>",
                    "<Wrap><NextContinuationToken>deep</NextContinuationToken></Wrap>",
                    "<Wrap><CommonPrefixes><Prefix>deep/</Prefix></CommonPrefixes></Wrap>",
                    # What xml.etree refuses: the page is not XML.
                    "<Contents><Key>a]]>b</Key><Size>1</Size></Contents>",
                    "<Contents><Key>a\x01b</Key><Size>1</Size></Contents>",
                    "<Contents><Key>a\uffffb</Key><Size>1</Size></Contents>",
                    "<Name>b]]>c</Name>",
                ]
            )
        )
        if oddity is not None:
            where = draw(st.sampled_from(["head", "middle", "tail"]))
            part = {"head": head, "middle": middle, "tail": tail}[where]
            part.insert(draw(st.integers(0, len(part))), oddity)
    root = '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    declaration = '<?xml version="1.0" encoding="UTF-8"?>\n' if draw(st.booleans()) else ""
    sep = "\n  " if pretty else ""
    close = "</ListBucketResult>" if plain or draw(st.integers(0, 8)) else ""  # or left open
    body = declaration + root + sep + sep.join(head + middle + tail) + sep + close
    return body.encode(), keys


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pages())
def test_fast_reader_agrees_with_xml_etree_or_declines(page: tuple[bytes, list[str]]) -> None:
    body, _ = page
    _agree_or_decline(body)


def _agree_or_decline(body: bytes) -> None:
    """The fast reader reads what xml.etree reads, or declines; a page xml.etree fails
    is declined, and the listing reports it as xml.etree does."""
    scanned = scan_list_page(body)
    try:
        expected = tree_list_page(body)
    except ET.ParseError:
        assert scanned is None
        with pytest.raises(ET.ParseError):
            parse_list_page(body)
        return
    if scanned is not None:
        assert scanned == expected
    assert parse_list_page(body) == list_page_of(expected)


@settings(max_examples=150, deadline=None)
@given(st.text(_KEY_CHARS, max_size=12), st.booleans(), st.booleans())
def test_next_token_guess_is_the_parsed_token(token: str, numeric: bool, truncated: bool) -> None:
    """The raw search that starts the next request reads the token the parse reads."""
    body = (
        f"<ListBucketResult><IsTruncated>{str(truncated).lower()}</IsTruncated>"
        f"<NextContinuationToken>{_escaped(token, numeric)}</NextContinuationToken>"
        "</ListBucketResult>"
    ).encode()
    assert next_token(body) == list_page_of(tree_list_page(body)).next_token


@settings(max_examples=150, deadline=None)
@given(pages(plain=True))
def test_fast_reader_reads_the_shapes_servers_send(page: tuple[bytes, list[str]]) -> None:
    body, keys = page
    scanned = scan_list_page(body)
    assert scanned is not None, body[:300]
    assert scanned == tree_list_page(body)
    assert [entry[0] for entry in parse_list_page(body).entries] == keys


@pytest.mark.parametrize(
    "odd",
    [
        "<!-- <Contents><Key>fake</Key><Size>1</Size></Contents> -->",
        "<![CDATA[ <Contents><Key>fake</Key><Size>1</Size></Contents> ]]>",
        '<Contents xmlns=""><Key>other-namespace</Key><Size>1</Size></Contents>',
        "<Contents><Key>a&amp;b</Key><Size>1</Size></Contents>",
        "<IsTruncated>true</IsTruncated>",
    ],
)
def test_fast_reader_declines_a_block_it_cannot_vouch_for(odd: str) -> None:
    block = "<Contents><Key>k</Key><Size>1</Size></Contents>"
    body = f"<ListBucketResult>{block}{odd}{block}</ListBucketResult>".encode()
    assert scan_list_page(body) is None
    assert parse_list_page(body) == list_page_of(tree_list_page(body))


_BLOCK = (
    "<Contents><Key>{}</Key><LastModified>2024-01-01T00:00:00.000Z</LastModified>"
    "<ETag>&quot;e&quot;</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass></Contents>"
)
_ROOT = '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
_CONTROL_KEY, _NONCHARACTER_KEY, _BRACKET_KEY = "a\x01b", "a\ufffeb", "a]b]>c\u00e9"


@pytest.mark.parametrize(
    "body",
    [
        # The Contents run one level too deep (xml.etree lists nothing).
        f"{_ROOT}<IsTruncated>false</IsTruncated><Wrap>{_BLOCK.format('a')}</Wrap>"
        "</ListBucketResult>",
        # IsTruncated and the token one level too deep (xml.etree: not truncated).
        f"{_ROOT}<Wrap><IsTruncated>true</IsTruncated>"
        "<NextContinuationToken>T</NextContinuationToken></Wrap>"
        f"{_BLOCK.format('a')}</ListBucketResult>",
        f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format('a')}<Wrap><Deeper>"
        "<IsTruncated>true</IsTruncated></Deeper></Wrap></ListBucketResult>",
        # Not XML: ]]> in a key, a control character, U+FFFE, the root never closed.
        f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format('a]]>b')}</ListBucketResult>",
        f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format(_CONTROL_KEY)}</ListBucketResult>",
        f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format(_NONCHARACTER_KEY)}</ListBucketResult>",
        f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format('a')}",
        f"{_ROOT}<IsTruncated>false</IsTruncated>",
        f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format('a')}</ListBucketResult><x/>",
    ],
)
def test_fast_reader_declines_a_page_not_one_level_or_not_xml(body: str) -> None:
    assert scan_list_page(body.encode()) is None
    _agree_or_decline(body.encode())


def test_fast_reader_still_reads_brackets_and_non_ascii() -> None:
    body = f"{_ROOT}<IsTruncated>false</IsTruncated>{_BLOCK.format(_BRACKET_KEY)}"
    body += "</ListBucketResult>\n"
    scanned = scan_list_page(body.encode())
    assert scanned is not None and scanned[0][0][0] == _BRACKET_KEY
    assert scanned == tree_list_page(body.encode())


def test_fast_reader_declines_another_encoding() -> None:
    body = (
        '<?xml version="1.0" encoding="ISO-8859-1"?><ListBucketResult><Contents>'
        "<Key>caf\xe9</Key><Size>1</Size></Contents></ListBucketResult>"
    ).encode("latin-1")
    assert scan_list_page(body) is None
    assert parse_list_page(body).entries[0][0] == "caf\xe9"


# -- real servers -------------------------------------------------------------------------

ODD_KEYS = [
    "odd/a&b<c>\"q'",
    "odd/sp ace+plus%25",
    "odd/ünï©ødé/ключ",
    "odd/tab\tx",
    "odd/&amp;lit",
]


@pytest.fixture(params=["moto", "seaweedfs"])
def server_store(request: pytest.FixtureRequest) -> Any:
    server = request.getfixturevalue(f"{request.param}_server")
    import boto3

    name = f"storager-scan-{secrets.token_hex(4)}"
    boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
        region_name=server.region,
    ).create_bucket(Bucket=name)
    store = storager.open(
        f"s3://{name}/?endpoint={server.endpoint}&location=us-east-1",
        credential=f"hmac:{server.access_key}:{server.secret_key}",
    )
    assert isinstance(store, S3Storage)
    with store:
        yield store


def test_real_pages_are_read_fast_and_alike(server_store: S3Storage) -> None:
    for key in ODD_KEYS:
        server_store.write(key, b"x")
    transport = server_store._transport
    assert isinstance(transport, HttpTransport)
    for delimiter in (None, "/"):
        body = transport._list_body("list", "/", "", delimiter, None, 2)
        scanned = scan_list_page(body)
        assert scanned is not None, bytes(body)[:400]
        assert scanned == tree_list_page(body)
    listed = sorted(obj.path for obj in server_store.list("odd/", list_mode="prefix"))
    assert listed == sorted(ODD_KEYS)


# -- the next page's request is on the wire before this page is parsed ------------------


def test_pool_says_sent_before_the_answer_arrives() -> None:
    """``sent`` is set once the request is written, while the server still holds its answer."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(5)
    release = threading.Event()
    answered: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(4096)
            answered.append(request)
            release.wait(5)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    pool = ConnectionPool("http", "127.0.0.1", listener.getsockname()[1], max_idle=1, timeout=5)
    sent = threading.Event()
    result: list[Response] = []
    client = threading.Thread(
        target=lambda: result.append(pool.request("GET", "/b?list-type=2", {}, sent=sent)),
        daemon=True,
    )
    try:
        client.start()
        assert sent.wait(5), "the request was never reported sent"
        assert not result, "sent was set only after the answer"
        release.set()
        client.join(5)
        assert result and result[0].body == b"ok"
        assert answered and answered[0].startswith(b"GET /b?list-type=2 ")
    finally:
        release.set()
        client.join(5)
        server.join(5)
        pool.close()
        listener.close()


def test_a_failed_list_request_still_says_sent() -> None:
    """A waiter for ``sent`` is released when the request fails before reaching a server."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed again: nothing listens there
    store = storager.open(
        f"s3://b/?endpoint=http://127.0.0.1:{port}&location=us-east-1",
        credential="hmac:k:s",
    )
    assert isinstance(store, S3Storage)
    with store:
        store.request_retry = RetryPolicy(max_attempts=1)
        transport = store._transport
        assert isinstance(transport, HttpTransport)
        sent = threading.Event()
        with pytest.raises(StorageError):
            transport._list_body("list", "/", "", None, None, None, sent)
        assert sent.is_set()
