"""Who signs, and for which region: the credential pair, else the AWS chain.

The ``credential`` pair (``hmac:ACCESS:SECRET``) is parsed here, once per store. Without
it, botocore's credential chain is asked (environment, config files, SSO, instance
metadata), and credentials that expire are refreshed by botocore when close to
expiry: :meth:`CredentialSource.current` asks for them before every request. botocore is
used for nothing else on the request path, and imported only when it is asked.
"""

from __future__ import annotations

import threading
from typing import Any

from storager._errors import PairInvalidError, PermissionDeniedError
from storager._sigv4 import Credentials

__all__ = ["CredentialSource", "parse_credential", "resolve_region"]


def parse_credential(credential: str) -> tuple[str, str]:
    """Return ``(access_key, secret_key)`` from ``hmac:ACCESS_KEY:SECRET_KEY``."""
    kind, _, rest = credential.partition(":")
    access, _, secret = rest.partition(":")
    if kind != "hmac" or not access or not secret:
        # Never echo the value: it may hold a secret.
        raise PairInvalidError(
            "new", "s3", "", "pair 'credential' must look like 'hmac:ACCESS_KEY:SECRET_KEY'"
        )
    return access, secret


def resolve_region(location: str | None) -> str:
    """The ``location`` pair, else the AWS configuration's region, else ``us-east-1``."""
    if location:
        return location
    region = _botocore_session().get_config_variable("region")
    return str(region) if region else "us-east-1"


def _botocore_session() -> Any:
    # Imported when first needed: botocore's session module and its client machinery
    # cost ~10 MiB of RSS and ~0.4 s of import, which a store opened with the
    # credential and location pairs never needs.
    import botocore.session

    return botocore.session.get_session()


class CredentialSource:
    """The credentials requests are signed with: static, or from botocore's chain."""

    def __init__(self, pair: tuple[str, str] | None) -> None:
        #: The ``credential`` pair's access key and secret; None when the chain is used.
        self.pair = pair
        self._static = Credentials(*pair) if pair is not None else None
        self._chain: Any = None  # asked on first use, and only without the pair
        self._lock = threading.Lock()
        self._last: tuple[object, Credentials] | None = None

    def current(self, op: str, path: str) -> Credentials:
        """Return the credentials to sign with now.

        Raises:
            PermissionDeniedError: Neither the pair nor the chain gave credentials.
        """
        if self._static is not None:
            return self._static
        if self._chain is None:
            with self._lock:
                if self._chain is None:
                    self._chain = _botocore_session().get_credentials() or False
        if self._chain is False:
            raise PermissionDeniedError(op, "s3", path, "no usable credentials found")
        frozen = self._chain.get_frozen_credentials()  # refreshes those close to expiry
        last = self._last
        if last is not None and last[0] == frozen:
            return last[1]
        credentials = Credentials(frozen.access_key, frozen.secret_key, frozen.token)
        with self._lock:
            self._last = (frozen, credentials)
        return credentials

    def __repr__(self) -> str:
        return "<CredentialSource pair>" if self.pair else "<CredentialSource AWS chain>"
