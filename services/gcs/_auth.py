"""The forms the gcs ``credential`` pair takes, turned into what gcsfs's ``token`` expects.

=========================  ====================================================
``token:anon``             no authentication: public data, or an emulator
``token:ACCESS_TOKEN``     an OAuth2 bearer token used as is (never refreshed),
                           such as the output of ``gcloud auth print-access-token``
``file:/path/key.json``    a service-account key file, or an authorized-user file
                           written by ``gcloud auth application-default login``
``env``                    Application Default Credentials: the file named by
                           ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's default
                           login, then the GCE/GKE metadata server
absent                     the same as ``env``
=========================  ====================================================

Nothing here puts a credential's value into a message.
"""

from __future__ import annotations

import os

from storager._errors import PairInvalidError

__all__ = ["FORMS", "token_for"]

#: The accepted forms, for error messages.
FORMS = "'token:anon', 'token:ACCESS_TOKEN', 'file:/path/key.json' or 'env'"


def token_for(credential: str | None) -> object:
    """Return gcsfs's ``token`` argument for a ``credential`` pair value.

    Raises:
        PairInvalidError: The value has none of the accepted forms, or names a file
            that does not exist. The message never includes the value.
    """
    if credential is None or credential == "env":
        return "google_default"
    kind, sep, value = credential.partition(":")
    if sep and kind == "token" and value:
        if value == "anon":
            return "anon"
        from google.oauth2.credentials import Credentials

        # google-auth's constructor is untyped; the value is only ever a str here.
        return Credentials(token=value)  # type: ignore[no-untyped-call]
    if sep and kind == "file" and value:
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise PairInvalidError(
                "new", "gcs", "", "pair 'credential': the file it names does not exist"
            )
        return path
    raise PairInvalidError("new", "gcs", "", f"pair 'credential' must be one of {FORMS}")
