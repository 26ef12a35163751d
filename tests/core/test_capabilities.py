"""A service implements exactly those capability protocols its service.toml declares."""

from __future__ import annotations

import importlib
import tomllib
from pathlib import Path
from typing import Any

import pytest

from storager import Appender, Copier, Direr, Linker, Mover, Presigner, Segmenter, Storager
from storager._capability import OPERATIONS
from storager._protocols import CAPABILITIES
from storager.services.fs import FsStorage
from storager.services.memory import MemoryStorage

ROOT = Path(__file__).resolve().parents[2]
SERVICE_TOMLS = sorted(ROOT.glob("services/*/service.toml"))


def load(toml_path: Path) -> tuple[dict[str, Any], type]:
    with toml_path.open("rb") as fh:
        body = tomllib.load(fh)
    module = importlib.import_module(f"storager.services.{toml_path.parent.name}")
    return body, getattr(module, body["class"])


def test_fs_and_memory_are_among_the_services_checked() -> None:
    names = {p.parent.name for p in SERVICE_TOMLS}
    assert {"fs", "memory"} <= names


@pytest.mark.parametrize("toml_path", SERVICE_TOMLS, ids=lambda p: p.parent.name)
def test_a_service_inherits_exactly_the_capability_protocols_it_declares(
    toml_path: Path,
) -> None:
    body, cls = load(toml_path)
    declared = set(body.get("capabilities", []))
    in_mro = {name for name, protocol in CAPABILITIES.items() if protocol in cls.__mro__}
    assert in_mro == declared
    assert Storager in cls.__mro__


@pytest.mark.parametrize("toml_path", SERVICE_TOMLS, ids=lambda p: p.parent.name)
def test_a_services_capability_operations_match_its_declared_protocols(
    toml_path: Path,
) -> None:
    body, cls = load(toml_path)
    protocols = {"Storager", *body.get("capabilities", [])}
    expected = {op for op, protocol in OPERATIONS.items() if protocol in protocols}
    assert set(cls.capability.operations) == expected
    for op in expected:
        assert callable(getattr(cls, op)), f"{cls.__name__} lacks {op}"
        assert cls.capability.supports(op)
    for op in set(OPERATIONS) - expected:
        assert not cls.capability.supports(op)


@pytest.mark.parametrize("toml_path", SERVICE_TOMLS, ids=lambda p: p.parent.name)
def test_a_services_operation_pairs_include_those_its_toml_adds(toml_path: Path) -> None:
    body, cls = load(toml_path)
    for op, spec in body.get("operations", {}).items():
        for pair in spec.get("pairs", []):
            assert cls.capability.accepts(op, pair), f"{op} should accept {pair}"


def test_isinstance_says_yes_to_declared_capabilities_and_no_to_the_rest(
    tmp_path: Path,
) -> None:
    fs = FsStorage(root=str(tmp_path))
    memory = MemoryStorage()
    everything = (Copier, Mover, Segmenter, Appender, Direr, Linker, Presigner)
    assert all(isinstance(memory, protocol) for protocol in (Storager, *everything))
    assert [isinstance(fs, p) for p in everything] == [True, True, False, True, True, False, False]
    assert isinstance(fs, Storager)


def test_isinstance_is_nominal_a_look_alike_is_not_a_copier() -> None:
    class LooksLikeACopier:
        def copy(self, src: str, dst: str, **pairs: Any) -> None:
            return None

    assert not isinstance(LooksLikeACopier(), Copier)
    assert not isinstance(object(), Storager)
    assert not issubclass(LooksLikeACopier, Copier)
    assert issubclass(MemoryStorage, Copier)
