"""One plain-MD5 ETag rule (storager._etag.plain_md5) for the gateway and the CLI."""

from __future__ import annotations

import pytest

from storager._etag import plain_md5
from storager._object import Object
from storager.cli._versions import reported_md5
from storager.gateway._objects import etag_value

MD5 = "9e107d9d372bb6826bd81d3542a419d6"


@pytest.mark.parametrize(
    ("tag", "stated"),
    [
        (MD5, MD5),
        (f'"{MD5.upper()}"', MD5),
        (f"{MD5}-3", None),  # multipart
        ("0000000000000007", None),  # a version counter (memory)
        (MD5 + "0", None),
        (f'W/"{MD5}"', None),
        ("", None),
        (None, None),
    ],
)
def test_plain_md5_states_an_md5_only_for_32_hex_digits(
    tag: str | None, stated: str | None
) -> None:
    assert plain_md5(tag) == stated


def test_the_gateway_and_the_cli_read_a_tag_by_the_same_rule() -> None:
    for tag in (MD5, f'"{MD5.upper()}"', f"{MD5}-3", "0000000000000007"):
        obj = Object("k", etag=tag)
        md5 = reported_md5(obj)
        assert md5 == plain_md5(tag)
        # The gateway gives an MD5 tag as it is and marks every other one as multipart,
        # so no client takes a tag for an MD5 that the CLI would not.
        shown = etag_value(obj)
        assert (plain_md5(shown) is not None) == (md5 is not None)
