"""doctor: which credential a store signs with, read back from the store itself.

For s3 the store holds a :class:`~storager.services.s3._credentials.CredentialSource`:
the URL's ``credential`` pair as our own parser read it, or botocore's credential chain,
whose resolved credential object carries the ``method`` of the provider that won
(``env``, ``shared-credentials-file``, ``sso``, ``iam-role``...). doctor reports that,
and the last four characters of the access key the store will sign with (as
``aws configure list`` does), so a key from an unexpected place shows. Nothing is
worked out again from the environment: a source the chain skipped is never named.

The source is read through the store's private ``_credentials`` attribute, the one
place it lives; a store without one (another service, or a future s3 without it)
makes :func:`credential_used` return None, and doctor then says what the service's
SDK is expected to use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from storager._errors import PermissionDeniedError
from storager._protocols import Storager

__all__ = ["CredentialUsed", "credential_used"]

#: What each of botocore's provider methods means, for a person.
_METHODS = {
    "env": "environment: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    "shared-credentials-file": "shared credentials file {credentials_file} (profile {profile!r})",
    "config-file": "AWS config file {config_file} (profile {profile!r})",
    "custom-process": "credential_process of the AWS config file (profile {profile!r})",
    "sso": "AWS SSO / IAM Identity Center login (profile {profile!r})",
    "login": "aws login session (profile {profile!r})",
    "assume-role": "an assumed role (role_arn of profile {profile!r})",
    "assume-role-with-web-identity": "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "container-role": "container credentials (ECS/EKS task role)",
    "iam-role": "the instance role (EC2 instance metadata)",
    "boto-config": "the boto2 config file",
    "ec2-credentials-file": "the EC2 credentials file",
}


@dataclass(frozen=True, slots=True)
class CredentialUsed:
    """The credential a store signs with.

    Attributes:
        method: Where it came from: ``url-pair``, botocore's provider method (``env``,
            ``shared-credentials-file``...), or ``none`` when the chain found nothing.
        text: The same, said for a person.
        key: The access key's last four characters behind ``****`` (``""`` if none).
    """

    method: str
    text: str
    key: str = ""


def _tail(access_key: str) -> str:
    return "****" + access_key[-4:] if access_key else ""


def credential_used(store: Storager) -> CredentialUsed | None:
    """Return the credential ``store`` signs with, or None when it does not tell."""
    from storager.services.s3._credentials import CredentialSource

    source: Any = getattr(store, "_credentials", None)
    if not isinstance(source, CredentialSource):
        return None
    if source.pair is not None:
        key = _tail(source.pair[0])
        return CredentialUsed("url-pair", f"the URL's credential pair (hmac:{key}:***)", key)
    try:
        signing = source.current("doctor", "")  # resolves the chain, as a request would
    except PermissionDeniedError:
        return CredentialUsed("none", "none: botocore's chain found no credentials")
    except Exception as exc:  # botocore's own errors (a half-set environment, a bad file)
        return CredentialUsed("error", f"botocore's chain failed: {type(exc).__name__}: {exc}")
    method = str(getattr(source._chain, "method", "") or "unknown")
    key = _tail(signing.access_key)
    template = _METHODS.get(method, "botocore's provider {method!r}")
    text = template.format(method=method, **_where())
    return CredentialUsed(method, f"{text} [botocore: {method}, key {key}]", key)


def _where() -> dict[str, str]:
    """The file names and profile botocore reads by default, for the message only."""
    return {
        "credentials_file": os.environ.get("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials"),
        "config_file": os.environ.get("AWS_CONFIG_FILE", "~/.aws/config"),
        "profile": os.environ.get("AWS_PROFILE")
        or os.environ.get("AWS_DEFAULT_PROFILE")
        or "default",
    }
