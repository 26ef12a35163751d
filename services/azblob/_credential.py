"""The azblob ``credential`` pair: its forms, and the adlfs arguments each becomes.

Forms of ``credential``:

``shared_key:ACCOUNT:KEY``
    The account name and its access key (base64, as the portal shows it).
``connection_string:CONNECTION_STRING``
    An Azure Storage connection string, as the portal shows it. The ``endpoint`` pair,
    when given, replaces its ``BlobEndpoint``.
``sas:ACCOUNT:TOKEN``
    A shared access signature (the query string, with or without its leading ``?``).
``anonymous``
    No authentication: public containers only.

When ``credential`` is absent, the environment decides, in this order:
``AZURE_STORAGE_CONNECTION_STRING``; ``AZURE_STORAGE_ACCOUNT_KEY`` with the account from
the ``account_name`` pair or ``AZURE_STORAGE_ACCOUNT_NAME``; then adlfs's own chain
for that account (``AZURE_STORAGE_SAS_TOKEN``, the ``AZURE_STORAGE_CLIENT_*`` service
principal, or ``DefaultAzureCredential``).

Explicit credentials always become a connection string: adlfs reads
``AZURE_STORAGE_CONNECTION_STRING`` itself and prefers it over an account key, so a
connection string is the one form that the environment cannot override.

No error raised here quotes the pair's value: it holds secrets.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from storager._endpoints import check_endpoint
from storager._errors import PairInvalidError, PairRequiredError

__all__ = ["FORMS", "adlfs_options"]

SERVICE = "azblob"
#: The forms the ``credential`` pair takes, for error messages and docs.
FORMS = "'shared_key:ACCOUNT:KEY', 'connection_string:...', 'sas:ACCOUNT:TOKEN' or 'anonymous'"


def adlfs_options(
    credential: str | None,
    endpoint: str | None,
    account_name: str | None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Return the keyword arguments that make ``AzureBlobFileSystem`` connect as asked.

    Raises:
        PairInvalidError: ``credential`` or ``endpoint`` is malformed.
        PairRequiredError: nothing names the account to connect to.
    """
    env = os.environ if environ is None else environ
    if endpoint is not None:
        _check_endpoint(endpoint)
    if credential is not None:
        return {"connection_string": _from_credential(credential, endpoint)}
    from_env = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if from_env:
        return {"connection_string": _with_endpoint(from_env, endpoint)}
    account = account_name or env.get("AZURE_STORAGE_ACCOUNT_NAME")
    key = env.get("AZURE_STORAGE_ACCOUNT_KEY")
    if account and key:
        return {"connection_string": _shared_key(account, key, endpoint)}
    if not account:
        raise PairRequiredError(
            "new",
            SERVICE,
            "",
            "no account: give the credential pair (" + FORMS + "), the account_name pair, "
            "or set AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT_NAME",
        )
    options: dict[str, Any] = {"account_name": account}
    if endpoint is not None:
        parts = urlsplit(endpoint)
        if parts.scheme != "https":
            # adlfs builds https://{account_host}; tokens are refused over http anyway.
            raise PairInvalidError(
                "new",
                SERVICE,
                "",
                "an http endpoint needs a credential pair or a connection string: "
                "adlfs's credential chain connects over https only",
            )
        options["account_host"] = parts.netloc + parts.path.rstrip("/")
    return options


def _from_credential(credential: str, endpoint: str | None) -> str:
    kind, _, rest = credential.partition(":")
    if kind == "shared_key":
        account, _, key = rest.partition(":")
        if account and key:
            return _shared_key(account, key, endpoint)
    elif kind == "connection_string":
        if rest:
            return _with_endpoint(rest, endpoint)
    elif kind == "sas":
        account, _, token = rest.partition(":")
        if account and token:
            _check_value("the SAS token", token)
            blob_endpoint = endpoint or f"https://{account}.blob.core.windows.net"
            return f"BlobEndpoint={blob_endpoint};SharedAccessSignature={token.lstrip('?')}"
    elif kind == "anonymous" and not rest:
        if endpoint is None:
            raise PairRequiredError(
                "new", SERVICE, "", "an anonymous credential needs the endpoint pair"
            )
        return f"BlobEndpoint={endpoint};"
    raise PairInvalidError("new", SERVICE, "", f"pair 'credential' must be {FORMS}")


def _shared_key(account: str, key: str, endpoint: str | None) -> str:
    _check_value("the account name", account)
    _check_value("the account key", key)
    if endpoint is None:
        return (
            f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
            "EndpointSuffix=core.windows.net"
        )
    protocol = urlsplit(endpoint).scheme
    return (
        f"DefaultEndpointsProtocol={protocol};AccountName={account};AccountKey={key};"
        f"BlobEndpoint={endpoint};"
    )


def _with_endpoint(connection_string: str, endpoint: str | None) -> str:
    """Return ``connection_string`` with its BlobEndpoint replaced by ``endpoint``."""
    if endpoint is None:
        return connection_string
    fields = [
        part
        for part in connection_string.split(";")
        if part and part.partition("=")[0].strip().lower() != "blobendpoint"
    ]
    return ";".join([*fields, f"BlobEndpoint={endpoint}", ""])


def _check_endpoint(endpoint: str) -> None:
    check_endpoint(SERVICE, endpoint)
    if ";" in endpoint:
        # The endpoint goes into a connection string, whose fields ';' separates.
        raise PairInvalidError("new", SERVICE, "", "pair 'endpoint' may not hold ';'")


def _check_value(what: str, value: str) -> None:
    if ";" in value or any(ch.isspace() for ch in value):
        raise PairInvalidError(
            "new", SERVICE, "", f"pair 'credential': {what} may not hold ';' or spaces"
        )
