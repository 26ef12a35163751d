"""Load and validate the TOML definitions into a small model."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"
SERVICES = ROOT / "services"

PAIR_TYPES = {"str", "int", "bool", "float", "str_map", "io_callback"}
#: The pair types a ``header = true`` pair may have (the header check reads text).
HEADER_TYPES = {"str", "str_map"}
PARAM_KINDS = {"path", "dir", "data", "multipart", "int", "parts"}
CAPABILITIES = ["Copier", "Mover", "Segmenter", "Appender", "Direr", "Linker", "Presigner"]


class DefinitionError(Exception):
    """A definition is incomplete or inconsistent."""


@dataclass(frozen=True)
class Pair:
    name: str
    scope: str
    type: str
    description: str
    defaultable: bool = False
    secret: bool = False
    choices: tuple[str, ...] = ()
    header: bool = False
    """Sent as a header or metadata entry on some service: codegen emits the header check."""


@dataclass(frozen=True)
class Param:
    name: str
    kind: str


@dataclass(frozen=True)
class Operation:
    name: str
    protocol: str
    description: str
    params: tuple[Param, ...]
    returns: str
    pairs: tuple[str, ...]
    contract: tuple[str, ...]


@dataclass(frozen=True)
class Feature:
    name: str
    type: str
    description: str


@dataclass
class Service:
    name: str
    description: str
    class_name: str
    capabilities: list[str]
    connection: dict[str, str]
    init_required: list[str]
    init_optional: list[str]
    op_pairs: dict[str, list[str]]  # operation -> accepted pairs (mandatory included)
    features: dict[str, Any]
    pairs: dict[str, Pair]  # service-specific pairs
    folder: Path
    notes: list[str] = field(default_factory=list)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    """Other connection-string schemes of the service, each with the init pairs it sets."""


@dataclass
class Model:
    pairs: dict[str, Pair]
    operations: dict[str, Operation]
    features: dict[str, Feature]
    infos_object: dict[str, dict[str, str]]
    infos_storage: dict[str, dict[str, str]]
    services: list[Service]

    def pair(self, service: Service, name: str) -> Pair:
        if name in service.pairs:
            return service.pairs[name]
        if name in self.pairs:
            return self.pairs[name]
        raise DefinitionError(f"{service.name}: unknown pair {name!r}")


def _load(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{path}: {exc}") from exc


def _need_description(where: str, body: dict[str, Any]) -> str:
    text = body.get("description")
    if not isinstance(text, str) or not text.strip():
        raise DefinitionError(f"{where}: a description is required")
    return text.strip()


def _pair(where: str, name: str, body: dict[str, Any]) -> Pair:
    kind = body.get("type")
    if kind not in PAIR_TYPES:
        raise DefinitionError(f"{where}: pair {name!r} has type {kind!r}, not one of {PAIR_TYPES}")
    scope = body.get("scope", "op")
    if scope not in ("init", "op"):
        raise DefinitionError(f"{where}: pair {name!r} has scope {scope!r}")
    header = body.get("header", False)
    if type(header) is not bool:
        raise DefinitionError(f"{where}: pair {name!r}: header must be true or false")
    if header and kind not in HEADER_TYPES:
        raise DefinitionError(f"{where}: pair {name!r} is a header but has type {kind!r}")
    if header and body.get("secret", False):
        raise DefinitionError(f"{where}: pair {name!r}: a header pair cannot be secret")
    choices = body.get("choices", [])
    if choices and (
        kind != "str"
        or not isinstance(choices, list)
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise DefinitionError(
            f"{where}: pair {name!r}: choices must be a list of non-empty strings on a str pair"
        )
    return Pair(
        name=name,
        scope=scope,
        type=kind,
        description=_need_description(f"{where}: pair {name!r}", body),
        defaultable=bool(body.get("defaultable", False)),
        secret=bool(body.get("secret", False)),
        choices=tuple(choices),
        header=header,
    )


def load_model(root: Path = ROOT) -> Model:
    """Read every definition and service.toml under ``root``, refusing anything incomplete."""
    definitions = root / "definitions"
    pairs = {
        name: _pair("pairs.toml", name, body)
        for name, body in _load(definitions / "pairs.toml").items()
    }
    operations: dict[str, Operation] = {}
    for name, body in _load(definitions / "operations.toml").items():
        where = f"operations.toml: operation {name!r}"
        params = tuple(Param(p["name"], p["kind"]) for p in body.get("params", []))
        for p in params:
            if p.kind not in PARAM_KINDS:
                raise DefinitionError(f"{where}: parameter kind {p.kind!r} unknown")
        for pair in body.get("pairs", []):
            if pair not in pairs:
                raise DefinitionError(f"{where}: pair {pair!r} is not in pairs.toml")
        operations[name] = Operation(
            name=name,
            protocol=body["protocol"],
            description=_need_description(where, body),
            params=params,
            returns=body["returns"],
            pairs=tuple(body.get("pairs", [])),
            contract=tuple(body.get("contract", [])),
        )
    features = {}
    for name, body in _load(definitions / "features.toml").items():
        if body.get("type") not in ("bool", "int"):
            raise DefinitionError(f"features.toml: feature {name!r} must be bool or int")
        features[name] = Feature(name, body["type"], _need_description(f"feature {name!r}", body))
    infos_object = _load(definitions / "infos_object.toml")
    infos_storage = _load(definitions / "infos_storage.toml")
    for file, infos in (("infos_object", infos_object), ("infos_storage", infos_storage)):
        for name, body in infos.items():
            _need_description(f"{file}.toml: info {name!r}", body)
    services = [
        _service(path.parent, _load(path), pairs, operations, features)
        for path in sorted((root / "services").glob("*/service.toml"))
    ]
    return Model(pairs, operations, features, infos_object, infos_storage, services)


def _service(
    folder: Path,
    body: dict[str, Any],
    global_pairs: dict[str, Pair],
    operations: dict[str, Operation],
    features: dict[str, Feature],
) -> Service:
    name = body.get("name", "")
    where = f"services/{folder.name}/service.toml"
    if name != folder.name:
        raise DefinitionError(f"{where}: name {name!r} must equal the folder name")
    own_pairs = {
        pname: _pair(where, pname, pbody) for pname, pbody in body.get("pairs", {}).items()
    }
    clash = set(own_pairs) & set(global_pairs)
    if clash:
        raise DefinitionError(f"{where}: pairs {sorted(clash)} are already global")
    known = {**global_pairs, **own_pairs}

    capabilities = list(body.get("capabilities", []))
    for cap in capabilities:
        if cap not in CAPABILITIES:
            raise DefinitionError(f"{where}: unknown capability {cap!r}")
    protocols = {"Storager", *capabilities}
    op_pairs: dict[str, list[str]] = {}
    declared_ops = body.get("operations", {})
    for op in declared_ops:
        if op not in operations:
            raise DefinitionError(f"{where}: unknown operation {op!r}")
        if operations[op].protocol not in protocols:
            raise DefinitionError(
                f"{where}: operation {op!r} needs capability {operations[op].protocol}"
            )
    for op in operations.values():
        if op.protocol not in protocols:
            continue
        extra = list(declared_ops.get(op.name, {}).get("pairs", []))
        for pname in extra:
            if pname not in known:
                raise DefinitionError(f"{where}: operation {op.name!r}: unknown pair {pname!r}")
            if known[pname].scope != "op":
                raise DefinitionError(f"{where}: pair {pname!r} is not an operation pair")
        op_pairs[op.name] = sorted(set(op.pairs) | set(extra))

    init = body.get("init", {})
    required = list(init.get("required", []))
    optional = list(init.get("optional", []))
    for pname in required + optional:
        if pname not in known or known[pname].scope != "init":
            raise DefinitionError(f"{where}: init pair {pname!r} is not an init pair")
    if "work_dir" not in optional:
        optional.insert(0, "work_dir")

    feats = dict(body.get("features", {}))
    for fname, value in feats.items():
        if fname not in features:
            raise DefinitionError(f"{where}: unknown feature {fname!r}")
        expected = bool if features[fname].type == "bool" else int
        if type(value) is not expected:
            raise DefinitionError(f"{where}: feature {fname!r} must be {features[fname].type}")

    connection = dict(body.get("connection", {}))
    aliases = connection.pop("aliases", {})
    for scheme, preset in aliases.items():
        if not isinstance(preset, dict) or not preset:
            raise DefinitionError(f"{where}: connection alias {scheme!r} must set init pairs")
        for pname, text in preset.items():
            if pname not in required + optional or not isinstance(text, str):
                raise DefinitionError(
                    f"{where}: connection alias {scheme!r}: {pname!r} is not an init pair "
                    "given as text"
                )
    for part in ("host", "path", "user", "port"):
        target = connection.get(part, "")
        if target and target not in required + optional:
            raise DefinitionError(f"{where}: connection {part} maps to unknown pair {target!r}")
    if "example" not in connection:
        raise DefinitionError(f"{where}: connection.example is required")

    return Service(
        name=name,
        description=_need_description(where, body),
        class_name=body.get("class", ""),
        capabilities=capabilities,
        connection=connection,
        aliases=aliases,
        init_required=required,
        init_optional=optional,
        op_pairs=op_pairs,
        features=feats,
        pairs=own_pairs,
        folder=folder,
        notes=list(body.get("notes", [])),
    )
