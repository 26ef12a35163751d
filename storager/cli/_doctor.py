"""doctor: what a URL opens, where its credential comes from, what the store can do, and
whether a write, stat, read, list and delete of a temporary object work.

The credential source is read back from the store where it tells (s3: the URL's pair, or
the provider of botocore's chain that won; ``_credential_used.py``); for other services
it is worked out from the URL and the environment in the order the service's SDK looks
(the first source present wins). Either way without its secret.
The round trip works on one object named ``.storager-doctor-<random>`` in the URL's
directory and deletes it, also after a failed step.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from storager._capability import OPERATIONS
from storager._errors import (
    NotFoundError,
    OperationTimeoutError,
    PermissionDeniedError,
    ServiceInternalError,
    StorageError,
    UnexpectedError,
)
from storager._protocols import Storager
from storager._registry import parse_connection_string, redact_url
from storager.cli._commands import Context, abs_path, classify
from storager.cli._credential_used import credential_used
from storager.cli._urls import Location

__all__ = ["RoundTrip", "cmd_doctor", "credential_source"]

#: The bytes the round trip writes and expects back.
_PAYLOAD = b"storager doctor round trip\n"


def _env(*names: str) -> str | None:
    return next((name for name in names if os.environ.get(name)), None)


def credential_source(scheme: str, pairs: dict[str, Any]) -> str:
    """Return which credential the service's SDK is expected to use, secrets left out.

    For a store that tells which it uses (s3), doctor reads that back instead.
    """
    given = pairs.get("credential")
    if given:
        kind = str(given).split(":", 1)[0]
        return f"the URL's credential pair ({kind}:***)"
    if scheme in ("fs", "memory"):
        return "none needed"
    if scheme == "s3":
        found = _env("AWS_ACCESS_KEY_ID")
        if found:
            return "environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
        profile = os.environ.get("AWS_PROFILE", "default")
        shared = Path(os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"))
        if shared.expanduser().is_file():
            return f"shared credentials file {shared} (profile {profile!r})"
        if _env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
            return "container credentials (ECS task role)"
        if _env("AWS_WEB_IDENTITY_TOKEN_FILE"):
            return "web identity token (EKS service account)"
        return "botocore's chain: SSO or config-file profile, else the instance role (if any)"
    if scheme == "gcs":
        found = _env("GOOGLE_APPLICATION_CREDENTIALS")
        if found:
            return f"key file from GOOGLE_APPLICATION_CREDENTIALS ({os.environ[found]})"
        return "Application Default Credentials (gcloud login, else the metadata server)"
    if scheme in ("azblob", "azure"):
        found = _env(
            "AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN"
        )
        if found:
            return f"environment: {found}"
        return "DefaultAzureCredential (environment, managed identity, az login)"
    if scheme == "sftp":
        if pairs.get("key_file"):
            return f"key file {pairs['key_file']}"
        agent = " (agent running)" if os.environ.get("SSH_AUTH_SOCK") else ""
        return f"the ssh agent{agent}, then the default keys in ~/.ssh"
    if scheme == "redis":
        return "none in the URL (the server's default user)"
    return "the service's own default"


def _resolved(loc: Location, store: Storager) -> dict[str, Any]:
    """Return what was opened: service, store URL, pairs (secrets as ***), endpoint, region."""
    meta = store.metadata()
    info: dict[str, Any] = {
        "argument": loc.arg,
        "service": meta.service,
        "name": meta.name,
        "work_dir": meta.work_dir,
    }
    if loc.tree:
        info["opened"] = f"tree {loc.tree!r} of the --config file"
        info["credential"] = "each node of the tree its own (see docs/trees.md)"
        return info
    cls, pairs = parse_connection_string(loc.store_url)
    secret = {name for name, spec in cls.init_pairs.items() if spec.secret}
    info["opened"] = redact_url(loc.store_url)
    info["pairs"] = {k: "***" if k in secret else str(v) for k, v in sorted(pairs.items())}
    scheme = loc.store_url.split("://", 1)[0].lower()
    if "endpoint" in cls.init_pairs:
        info["endpoint"] = pairs.get("endpoint") or "(the service's public endpoint)"
    if "location" in cls.init_pairs:
        region = pairs.get("location") or os.environ.get("AWS_REGION")
        region = region or os.environ.get("AWS_DEFAULT_REGION")
        info["region"] = region or "(default: us-east-1 or the config file's)"
    used = credential_used(store)
    if used is not None:
        info["credential"] = used.text
        info["credential_method"] = used.method
        info["credential_key"] = used.key
    else:
        info["credential"] = credential_source(scheme, pairs)
    return info


def capability_table(store: Storager) -> dict[str, Any]:
    """Return the store's operations by protocol and its features and limits."""
    cap = store.metadata().capability
    protocols: dict[str, bool] = {}
    for op, protocol in OPERATIONS.items():
        protocols[protocol] = protocols.get(protocol, True) and cap.supports(op)
    features = {f.name: getattr(cap, f.name) for f in fields(cap) if f.name != "operations"}
    return {"protocols": protocols, "features": features}


@dataclass
class RoundTrip:
    """The live round trip: each step's time in ms, and the first failure."""

    steps: dict[str, float]
    failed_step: str = ""
    error: str = ""
    fix: str = ""

    @property
    def ok(self) -> bool:
        """Whether every step passed."""
        return not self.failed_step


def likely_fix(step: str, exc: BaseException) -> str:
    """Return the most likely fix for ``exc`` raised by ``step``."""
    if isinstance(exc, PermissionDeniedError):
        return (
            "the credential was refused or lacks permission for this step: check the "
            "credential source above and its rights on this bucket/directory (some S3 "
            "servers also answer so for a bucket that does not exist: check its name)"
        )
    if isinstance(exc, NotFoundError) and step == "write":
        return "the bucket, container or directory does not exist: create it or fix the name"
    if isinstance(exc, OperationTimeoutError | ServiceInternalError | UnexpectedError):
        return "check the endpoint and that the server is up and reachable from here"
    if step == "read" or step == "stat" or step == "list":
        return (
            "the object just written is not visible: the store may be eventually "
            "consistent, or writes go somewhere reads do not (check endpoint/work_dir)"
        )
    return "see the error; `storager doctor` on the bucket's top may tell more"


def round_trip(store: Storager, directory: str) -> RoundTrip:
    """Write, stat, read, list and delete a temporary object under ``directory``."""
    path = f"{directory}.storager-doctor-{secrets.token_hex(6)}"
    result = RoundTrip(steps={})

    def step(name: str, action: Callable[[], None]) -> bool:
        started = time.perf_counter()
        try:
            action()
        except (StorageError, OSError, AssertionError) as exc:
            result.failed_step, result.error = name, str(exc) or type(exc).__name__
            result.fix = likely_fix(name, exc)
            return False
        result.steps[name] = round((time.perf_counter() - started) * 1000, 2)
        return True

    def check_stat() -> None:
        length = store.stat(path).content_length
        if length != len(_PAYLOAD):
            raise AssertionError(f"stat reports {length} bytes, {len(_PAYLOAD)} were written")

    def check_read() -> None:
        if store.read(path) != _PAYLOAD:
            raise AssertionError("read returned other bytes than were written")

    def check_list() -> None:
        if not any(abs_path(o.path) == path for o in store.list(directory)):
            raise AssertionError(f"the listing of {directory} does not show the object")

    def check_delete() -> None:
        store.delete(path)
        try:
            store.stat(path)
        except NotFoundError:
            return
        raise AssertionError("the object is still there after delete")

    def do_write() -> None:
        store.write(path, _PAYLOAD)

    steps = [
        ("write", do_write),
        ("stat", check_stat),
        ("read", check_read),
        ("list", check_list),
        ("delete", check_delete),
    ]
    try:
        for name, action in steps:
            if not step(name, action):
                break
    finally:
        if "delete" not in result.steps and "write" in result.steps:
            with contextlib.suppress(StorageError):
                store.delete(path)
    return result


def cmd_doctor(args: argparse.Namespace, ctx: Context) -> None:
    """Show what URL opens and how, the capability table, and a live round trip."""
    loc = ctx.stores.locate(args.url)
    store = ctx.stores.get(loc)
    directory, single = classify(store, loc)
    if single is not None:
        directory = loc.path.rsplit("/", 1)[0] + "/"
    assert directory is not None
    info = _resolved(loc, store)
    cap = capability_table(store)
    trip = round_trip(store, directory)
    if args.json:
        ctx.stdout.write(
            json.dumps(
                {
                    **info,
                    "capability": cap,
                    "round_trip": {
                        "ok": trip.ok,
                        "ms": trip.steps,
                        "failed_step": trip.failed_step or None,
                        "error": trip.error or None,
                        "fix": trip.fix or None,
                    },
                }
            )
            + "\n"
        )
    else:
        _print(ctx, info, cap, trip, directory)
    if not trip.ok:
        raise DoctorFailed(trip.failed_step, trip.error)


class DoctorFailed(StorageError):
    """The round trip failed at one step (exit code 1)."""

    default_reason = "round trip failed"

    def __init__(self, step: str, error: str) -> None:
        super().__init__("doctor", "", step, f"round trip failed: {error}")


def _print(
    ctx: Context, info: dict[str, Any], cap: dict[str, Any], trip: RoundTrip, directory: str
) -> None:
    out = ctx.stdout
    out.write("opened\n")
    for key in ("argument", "opened", "service", "name", "work_dir", "endpoint", "region"):
        if key in info:
            out.write(f"  {key + ':':<12}{info[key]}\n")
    for key, value in info.get("pairs", {}).items():
        out.write(f"  {'pair:':<12}{key}={value}\n")
    out.write(f"  {'credential:':<12}{info['credential']}\n")
    out.write("capability\n")
    out.write("  " + "  ".join(f"{p} {'yes' if v else 'no'}" for p, v in cap["protocols"].items()))
    out.write("\n")
    for name, value in cap["features"].items():
        out.write(f"  {name + ':':<26}{'-' if value is None else value}\n")
    out.write(f"round trip in {directory}\n")
    for name in ("write", "stat", "read", "list", "delete"):
        if name in trip.steps:
            out.write(f"  {name:<8}ok  {trip.steps[name]:>9.2f} ms\n")
        elif name == trip.failed_step:
            out.write(f"  {name:<8}FAILED  {trip.error}\n")
            out.write(f"  likely fix: {trip.fix}\n")
            break
    out.write("verdict: " + ("ok\n" if trip.ok else f"FAILED at {trip.failed_step}\n"))
