"""doctor names the credential the s3 store actually signed with (SeaweedFS)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, main

pytestmark = pytest.mark.s3

_AWS_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


@pytest.fixture(scope="module")
def bucket(seaweedfs_server: Any) -> Iterator[str]:
    client = boto3.client(
        "s3",
        endpoint_url=seaweedfs_server.endpoint,
        aws_access_key_id=seaweedfs_server.access_key,
        aws_secret_access_key=seaweedfs_server.secret_key,
        region_name=seaweedfs_server.region,
    )
    name = f"storager-doctor-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=name)
    yield name
    client.close()


@pytest.fixture
def aws_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No AWS variable from outside; the config files are this test's own (none yet)."""
    for name in _AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-role probe
    return tmp_path


def _doctor(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    capsys.readouterr()
    code = main(["doctor", "--json", url])
    report: dict[str, Any] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    return code, report


def _url(server: Any, bucket: str, *, credential: bool) -> str:
    query = f"endpoint={server.endpoint}&location=us-east-1"
    if credential:
        query += f"&credential=hmac:{server.access_key}:{server.secret_key}"
    return f"s3://{bucket}/?{query}"


def _write_credentials(home: Path, access: str, secret: str) -> None:
    (home / "credentials").write_text(
        f"[default]\naws_access_key_id = {access}\naws_secret_access_key = {secret}\n"
    )


def test_the_url_pair_is_named_with_its_key_tail_never_its_secret(
    seaweedfs_server: Any, bucket: str, aws_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_credentials(aws_home, "AKIAFROMTHEFILE0000", "nope")  # present, but the pair wins
    code, report = _doctor(_url(seaweedfs_server, bucket, credential=True), capsys)
    assert code == EXIT_OK
    assert report["credential_method"] == "url-pair"
    assert report["credential_key"] == "****" + seaweedfs_server.access_key[-4:]
    assert seaweedfs_server.secret_key not in json.dumps(report)


def test_environment_variables_are_named_when_the_chain_took_them(
    seaweedfs_server: Any,
    bucket: str,
    aws_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _write_credentials(aws_home, "AKIAFROMTHEFILE0000", "nope")  # lower in the chain
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs_server.secret_key)
    code, report = _doctor(_url(seaweedfs_server, bucket, credential=False), capsys)
    assert code == EXIT_OK, report
    assert report["credential_method"] == "env"
    assert report["credential"].startswith("environment: AWS_ACCESS_KEY_ID")
    assert report["credential_key"] == "****" + seaweedfs_server.access_key[-4:]


def test_the_shared_credentials_file_is_named_with_its_path(
    seaweedfs_server: Any, bucket: str, aws_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_credentials(aws_home, seaweedfs_server.access_key, seaweedfs_server.secret_key)
    code, report = _doctor(_url(seaweedfs_server, bucket, credential=False), capsys)
    assert code == EXIT_OK, report
    assert report["credential_method"] == "shared-credentials-file"
    assert str(aws_home / "credentials") in report["credential"]
    assert report["round_trip"]["ok"] is True


def test_the_key_named_is_the_one_signed_with_not_the_first_one_found(
    seaweedfs_server: Any,
    bucket: str,
    aws_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The environment's key wins over the file's: its tail is shown, not the file's."""
    _write_credentials(aws_home, "AKIAFROMTHEFILE0000", "file-secret")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENV0WXYZ")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    # (The test server checks no signature, so the round trip passes with either.)
    _, report = _doctor(_url(seaweedfs_server, bucket, credential=False), capsys)
    assert report["credential_method"] == "env"
    assert report["credential_key"] == "****WXYZ"
    assert "env-secret" not in json.dumps(report)


def test_an_access_key_variable_without_its_secret_is_reported_as_botocore_saw_it(
    seaweedfs_server: Any,
    bucket: str,
    aws_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Worked out from the environment this said "environment"; the chain refuses it."""
    _write_credentials(aws_home, seaweedfs_server.access_key, seaweedfs_server.secret_key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAHALFSET00000QRST")
    code, report = _doctor(_url(seaweedfs_server, bucket, credential=False), capsys)
    assert code == EXIT_FAILED
    assert report["credential_method"] == "error"
    assert "missing: AWS_SECRET_ACCESS_KEY" in report["credential"]


def test_no_credential_anywhere_is_said_so(
    seaweedfs_server: Any, bucket: str, aws_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, report = _doctor(_url(seaweedfs_server, bucket, credential=False), capsys)
    assert code == EXIT_FAILED
    assert report["credential_method"] == "none"
