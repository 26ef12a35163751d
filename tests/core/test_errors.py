"""The error tree: one root, builtin bases, one message format, chaining, pickling."""

from __future__ import annotations

import pickle

import pytest

import storager
from storager import _errors
from storager._errors import (
    AlreadyExistsError,
    CapabilityInsufficientError,
    ConnectionStringInvalidError,
    InsufficientStorageError,
    InvalidArgumentError,
    NotFoundError,
    ObjectModeInvalidError,
    OperationTimeoutError,
    OutcomeUnknownError,
    PairInvalidError,
    PairRequiredError,
    PairUnsupportedError,
    PathInvalidError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitedError,
    ServiceInternalError,
    ServiceNotRegisteredError,
    StorageError,
    UnexpectedError,
)
from storager.services.memory import MemoryStorage

# Each error, its direct storager parent and the builtin it must also be, as the
# tree in storager/_errors.py's docstring draws them.
TREE: list[tuple[type[StorageError], type[StorageError], type[BaseException] | None]] = [
    (NotFoundError, StorageError, FileNotFoundError),
    (PermissionDeniedError, StorageError, PermissionError),
    (AlreadyExistsError, StorageError, FileExistsError),
    (ObjectModeInvalidError, StorageError, None),
    (PreconditionFailedError, StorageError, None),
    (PairUnsupportedError, StorageError, NotImplementedError),
    (CapabilityInsufficientError, StorageError, NotImplementedError),
    (InvalidArgumentError, StorageError, ValueError),
    (PairRequiredError, InvalidArgumentError, ValueError),
    (PairInvalidError, InvalidArgumentError, ValueError),
    (PathInvalidError, InvalidArgumentError, ValueError),
    (ConnectionStringInvalidError, InvalidArgumentError, ValueError),
    (ServiceNotRegisteredError, StorageError, None),
    (RateLimitedError, StorageError, None),
    (ServiceInternalError, StorageError, None),
    (OperationTimeoutError, StorageError, TimeoutError),
    (OutcomeUnknownError, StorageError, TimeoutError),
    (InsufficientStorageError, StorageError, OSError),
    (UnexpectedError, StorageError, None),
]


def test_the_tree_covers_every_public_error() -> None:
    listed = {cls.__name__ for cls, _, _ in TREE} | {"StorageError"}
    assert listed == set(_errors.__all__)
    assert all(getattr(storager, name) is getattr(_errors, name) for name in listed)


@pytest.mark.parametrize(
    ("cls", "parent", "builtin"), TREE, ids=lambda v: getattr(v, "__name__", "")
)
def test_each_error_has_its_storager_parent_and_builtin_base(
    cls: type[StorageError], parent: type[StorageError], builtin: type[BaseException] | None
) -> None:
    assert issubclass(cls, parent)
    assert issubclass(cls, StorageError)
    assert issubclass(cls, Exception)
    if builtin is not None:
        assert issubclass(cls, builtin)
    err = cls("read", "fs", "/a.txt")
    if builtin is not None:
        with pytest.raises(builtin):
            raise err


def test_errors_without_a_builtin_base_are_not_oserrors() -> None:
    for cls in (ObjectModeInvalidError, ServiceNotRegisteredError, UnexpectedError):
        assert not issubclass(cls, OSError | ValueError | NotImplementedError)


def test_message_reads_op_service_path_reason() -> None:
    err = PermissionDeniedError("write", "s3", "/dir/a.txt")
    assert str(err) == "write s3:/dir/a.txt: permission denied"
    assert (err.op, err.service, err.path, err.reason) == (
        "write",
        "s3",
        "/dir/a.txt",
        "permission denied",
    )


def test_message_uses_the_given_reason_over_the_default() -> None:
    assert str(NotFoundError("stat", "fs", "/x", "gone")) == "stat fs:/x: gone"


def test_message_without_service_or_path_stays_readable() -> None:
    assert str(StorageError("open")) == "open: storage error"
    assert str(PathInvalidError("read", "", "a")) == "read a: path invalid"
    assert str(ServiceNotRegisteredError("open", "nosuch")) == "open nosuch: service not registered"


def test_builtin_args_match_the_message() -> None:
    err = NotFoundError("read", "fs", "/a")
    assert err.args == ("read fs:/a: not found",)


def test_vendor_error_is_chained_as_cause() -> None:
    vendor = OSError(5, "Input/output error")
    try:
        try:
            raise vendor
        except OSError as exc:
            raise UnexpectedError("read", "fs", "/a", "io error") from exc
    except UnexpectedError as err:
        assert err.__cause__ is vendor


def test_a_store_chains_the_os_error_it_mapped() -> None:
    store = MemoryStorage()
    with pytest.raises(NotFoundError) as info:
        store.read("missing.txt")
    assert info.value.path == "/missing.txt"
    assert info.value.op == "read"


@pytest.mark.parametrize("cls", [cls for cls, _, _ in TREE] + [StorageError])
def test_errors_pickle_with_every_field(cls: type[StorageError]) -> None:
    err = cls("copy", "memory", "/a b/ü.txt", "reason given")
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is cls
    assert (clone.op, clone.service, clone.path, clone.reason) == (
        "copy",
        "memory",
        "/a b/ü.txt",
        "reason given",
    )
    assert str(clone) == str(err)
    assert clone.retryable is err.retryable


@pytest.mark.parametrize(("cls", "_p", "_b"), TREE, ids=lambda v: getattr(v, "__name__", ""))
def test_only_rate_limit_internal_and_timeout_errors_are_retryable(
    cls: type[StorageError], _p: object, _b: object
) -> None:
    retryable = {RateLimitedError, ServiceInternalError, OperationTimeoutError}
    assert cls("read").retryable is (cls in retryable)
    assert StorageError("read").retryable is False


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, storager.InvalidArgumentError),
        (401, storager.PermissionDeniedError),
        (403, storager.PermissionDeniedError),
        (404, storager.NotFoundError),
        (408, storager.OperationTimeoutError),
        (412, storager.PreconditionFailedError),
        (416, storager.InvalidArgumentError),
        (429, storager.RateLimitedError),
        (500, storager.ServiceInternalError),
        (503, storager.ServiceInternalError),
        (599, storager.ServiceInternalError),
        (200, None),
        (418, None),
    ],
)
def test_http_status_maps_to_one_storager_error(status: int, expected: type | None) -> None:
    from storager._service import http_status_error

    assert http_status_error(status) is expected
