"""RetryPolicy refuses every value that would break or endlessly extend a retry loop."""

from __future__ import annotations

import math

import pytest

from storager import InvalidArgumentError
from storager.combinators import Retry, RetryPolicy
from storager.services.memory import MemoryStorage
from storager.testing.faulty import FaultyStorager

INTEGER_FIELDS = ["max_attempts", "buffer_limit"]
NUMBER_FIELDS = ["initial_backoff", "multiplier", "max_backoff", "jitter", "budget"]


@pytest.mark.parametrize("field", INTEGER_FIELDS + NUMBER_FIELDS)
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1, True, "1", None])
def test_every_field_refuses_non_finite_negative_bool_and_non_numbers(
    field: str, value: object
) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RetryPolicy(**{field: value})  # type: ignore[arg-type]
    assert field in str(info.value)
    assert info.value.op == "new" and info.value.service == "retry"


@pytest.mark.parametrize("field", INTEGER_FIELDS)
@pytest.mark.parametrize("value", [2.5, 3.0])
def test_integer_fields_refuse_floats(field: str, value: float) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [("max_attempts", 0), ("multiplier", 0.5), ("jitter", 1.5), ("jitter", -0.1)],
)
def test_fields_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(InvalidArgumentError, match=field):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_edge_values_are_accepted() -> None:
    policy = RetryPolicy(
        max_attempts=1,
        initial_backoff=0,
        multiplier=1,
        max_backoff=0.0,
        jitter=1,
        budget=0,
        buffer_limit=0,
    )
    assert policy.backoff(1, 0.5) == 0


def test_a_nan_backoff_can_no_longer_lose_the_error_being_retried() -> None:
    with pytest.raises(InvalidArgumentError, match="max_backoff"):
        Retry(FaultyStorager(MemoryStorage(), fail={"write": 1}), RetryPolicy(max_backoff=math.nan))
