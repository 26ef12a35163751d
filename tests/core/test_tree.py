"""storager.load: store trees from TOML, on memory and fs stores."""

from __future__ import annotations

import inspect
import io
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

import storager
import storager.combinators
from storager import (
    ConnectionStringInvalidError,
    InvalidArgumentError,
    NotFoundError,
    PairInvalidError,
    PermissionDeniedError,
    Storager,
)
from storager.combinators import (
    Audited,
    Cached,
    Delegate,
    Failover,
    Logged,
    Mirror,
    Prefixed,
    ReadOnly,
    Retry,
    RetryPolicy,
    Router,
    Timeout,
    Wrapper,
    describe,
)
from storager.tree import (
    MAX_DEPTH,
    NodeKind,
    Pair,
    Shape,
    Slot,
    TreeFile,
    node_kind,
    register_kind,
    string,
)


def write(tmp_path: Path, text: str, name: str = "tree.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_text(tmp_path: Path, text: str, tree: str | None = None, **env: str) -> Storager:
    return storager.load(write(tmp_path, text), tree, env=env)


def load_error(
    tmp_path: Path, text: str, tree: str | None = None, **env: str
) -> ConnectionStringInvalidError:
    with pytest.raises(ConnectionStringInvalidError) as info:
        load_text(tmp_path, text, tree, **env)
    return info.value


def mem() -> Storager:
    return storager.open("memory://")


# -- every combinator loads, and describe() of the loaded tree matches the file ------------

#: Each kind as TOML, and the same tree built in Python.
KINDS: dict[str, tuple[str, Callable[[Path], Storager]]] = {
    "retry": (
        'kind = "retry"\ninner = "memory://"\npolicy = { max_attempts = 3, budget = 7.5 }',
        lambda _: Retry(mem(), RetryPolicy(max_attempts=3, budget=7.5)),
    ),
    "timeout": (
        'kind = "timeout"\ninner = "memory://"\nseconds = 2.5\nper_op = { list = "none" }',
        lambda _: Timeout(mem(), 2.5, per_op={"list": None}),
    ),
    "logged": (
        'kind = "logged"\ninner = "memory://"\nlogger = "tree.test"\nlevel = "DEBUG"',
        lambda _: Logged(mem(), logger=logging.getLogger("tree.test"), level=logging.DEBUG),
    ),
    "readonly": ('kind = "readonly"\ninner = "memory://"', lambda _: ReadOnly(mem())),
    "prefixed": (
        'kind = "prefixed"\ninner = "memory://"\nprefix = "users/ann"',
        lambda _: Prefixed(mem(), "users/ann"),
    ),
    "audited": (
        'kind = "audited"\ninner = "memory://"\nlog_store = "memory://"\nprefix = "log/"',
        lambda _: Audited(mem(), mem(), prefix="log/"),
    ),
    "cached": (
        'kind = "cached"\nfront = "memory://"\nback = "fs://{root}"\nmax_bytes = "1 MiB"',
        lambda root: Cached(mem(), storager.open(f"fs://{root}"), max_bytes=1 << 20),
    ),
    "mirror": (
        'kind = "mirror"\nwrite = "parallel"\nread = "race"\n'
        'targets = { one = "memory://", two = "fs://{root}" }',
        lambda root: Mirror(
            {"one": mem(), "two": storager.open(f"fs://{root}")}, write="parallel", read="race"
        ),
    ),
    "failover": (
        'kind = "failover"\nprimary = "memory://"\nalternatives = ["memory://", "fs://{root}"]\n'
        "probe_interval = 1",
        lambda root: Failover(mem(), mem(), storager.open(f"fs://{root}"), probe_interval=1),
    ),
    "router": (
        'kind = "router"\nmounts = { "logs/" = "memory://", "" = "fs://{root}" }',
        lambda root: Router({"logs/": mem(), "": storager.open(f"fs://{root}")}),
    ),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_combinator_loads_and_describes_like_the_same_tree_built_in_code(
    tmp_path: Path, kind: str
) -> None:
    text, build = KINDS[kind]
    root = tmp_path / "root"
    root.mkdir()
    loaded = load_text(tmp_path, f"[trees.t]\n{text.replace('{root}', str(root))}\n")
    expected = build(root)
    try:
        assert type(loaded).__name__ == type(expected).__name__
        assert describe(loaded) == describe(expected)
        assert describe(loaded, "mermaid") == describe(expected, "mermaid")
    finally:
        loaded.close()
        expected.close()


def test_a_nested_tree_describes_as_written_and_works(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    store = load_text(
        tmp_path,
        f"""
        [trees.photos]
        kind = "retry"
        policy = {{ max_attempts = 4, budget = 9 }}

        [trees.photos.inner]
        kind = "mirror"
        write = "sequential"
        targets.fast = "memory://"
        targets.disk = {{ kind = "fs", root = "{root}" }}
        """,
    )
    assert describe(store) == (
        "retry attempts=4 budget=9s [Copier,Mover,Appender,Direr]\n"
        "└── inner: mirror write=sequential read=first "
        "[Copier,Mover,Appender,Direr]\n"
        "    ├── fast: memory / [Copier,Mover,Segmenter,Appender,Direr,Linker,Presigner]\n"
        "    └── disk: fs / [Copier,Mover,Appender,Direr]"
    )
    store.write("cat.jpg", b"meow")
    assert (root / "cat.jpg").read_bytes() == b"meow"
    assert store.read("cat.jpg") == b"meow"


def test_loaded_combinators_behave_as_configured(tmp_path: Path) -> None:
    store = load_text(
        tmp_path,
        """
        default = "t"
        [trees.t]
        kind = "router"
        mounts."public/" = { kind = "readonly", inner = { tree = "shared" } }
        mounts."" = { tree = "shared" }

        [trees.shared]
        kind = "memory"
        """,
    )
    with pytest.raises(PermissionDeniedError):
        store.write("public/a.txt", b"no")
    store.write("b.txt", b"yes")
    assert store.read("b.txt") == b"yes"


def test_every_combinator_has_a_kind_that_maps_its_constructor() -> None:
    combinators = [
        obj
        for obj in vars(storager.combinators).values()
        if isinstance(obj, type) and issubclass(obj, Wrapper) and obj not in (Wrapper, Delegate)
    ]
    assert len(combinators) >= 10
    for cls in combinators:
        kind = node_kind(cls.combinator)
        assert kind is not None, cls
        params = inspect.signature(cls.__init__).parameters
        for key in [*kind.slots, *kind.pairs, *kind.code_only]:
            assert key in params, (cls, key)


@pytest.mark.parametrize(
    ("codec_toml", "codec"),
    [
        ('{ kind = "reed_solomon", data = 2, parity = 1 }', ("ReedSolomon", (2, 1))),
        ('{ kind = "replicas", n = 2 }', ("Replicas", (2,))),
        ('{ kind = "stripes" }', ("Stripes", ())),
    ],
)
def test_a_striped_tree_loads_with_each_codec_and_spreads_chunks_over_its_backends(
    tmp_path: Path, codec_toml: str, codec: tuple[str, tuple[int, ...]]
) -> None:
    import storager.combinators.striped as striped

    trees = TreeFile.read(
        write(
            tmp_path,
            f"""
            [trees.big]
            kind = "striped"
            codec = {codec_toml}
            chunk_size = "4 KiB"
            placement = "round_robin"
            quotas = {{ a = "1 MiB" }}
            backends = {{ a = {{ tree = "a" }}, b = {{ tree = "b" }}, c = {{ tree = "c" }} }}
            manifests = "memory://"
            [trees.a]
            kind = "memory"
            [trees.b]
            kind = "memory"
            [trees.c]
            kind = "memory"
            """,
        )
    )
    store = trees.build("big")
    name, args = codec
    expected = striped.Striped(
        {"a": mem(), "b": mem(), "c": mem()},
        codec=getattr(striped, name)(*args),
        chunk_size=4 << 10,
        placement="round_robin",
        quotas={"a": 1 << 20},
        manifests=mem(),
    )
    try:
        assert describe(store) == describe(expected)
        data = bytes(range(256)) * 100
        store.write("big.bin", data)
        assert store.read("big.bin") == data
        for backend in "abc":
            assert list(trees.build(backend).list("", list_mode="prefix")), backend
    finally:
        trees.close()
        expected.close()


def test_a_striped_codec_is_checked_where_it_is_written(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        '[trees.t]\nkind = "striped"\nmanifests = "memory://"\n'
        'backends = { a = "memory://" }\ncodec = { kind = "raid5" }',
    )
    assert "trees.t.codec.kind: expected one of 'reed_solomon', 'replicas', 'stripes'" in str(err)
    err = load_error(
        tmp_path,
        '[trees.t]\nkind = "striped"\nmanifests = "memory://"\n'
        'backends = { a = "memory://" }\ncodec = { kind = "replicas", n = 3 }',
    )
    assert "trees.t: new striped: replicas(3) writes 3 fragments per stripe" in str(err)


# -- several trees, a default, references ------------------------------------------------

SEVERAL = """
default = "b"
[trees.a]
kind = "prefixed"
inner = { tree = "base" }
prefix = "a"
[trees.b]
kind = "prefixed"
inner = { tree = "base" }
prefix = "b"
[trees.base]
kind = "memory"
"""


def test_a_tree_is_picked_by_name_or_by_the_default(tmp_path: Path) -> None:
    path = write(tmp_path, SEVERAL)
    assert describe(storager.load(path)).startswith("prefixed /b/")
    assert describe(storager.load(path, "a")).startswith("prefixed /a/")


def test_a_file_with_one_tree_needs_no_default(tmp_path: Path) -> None:
    assert describe(load_text(tmp_path, '[trees.only]\nkind = "memory"')).startswith("memory")


def test_several_trees_without_a_default_must_be_named(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[trees.a]\nkind = "memory"\n[trees.b]\nkind = "memory"')
    assert "several trees (a, b)" in str(err)
    assert str(tmp_path / "tree.toml") in str(err)


def test_an_unknown_tree_name_lists_the_trees(tmp_path: Path) -> None:
    err = load_error(tmp_path, SEVERAL, "c")
    assert "no tree named 'c' (trees: a, b, base)" in str(err)


def test_trees_referring_to_one_tree_share_one_store(tmp_path: Path) -> None:
    trees = TreeFile.read(write(tmp_path, SEVERAL))
    a, b = trees.build("a"), trees.build("b")
    a.write("x", b"1")
    b.write("y", b"2")
    base = trees.build("base")
    assert base.read("a/x") == b"1" and base.read("b/y") == b"2"
    assert trees.build("a") is a
    assert trees.names == ("a", "b", "base") and trees.default == "b"
    trees.close()


def test_a_reference_to_an_unknown_tree_names_the_node(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[trees.a]\nkind = "readonly"\ninner = { tree = "nope" }')
    assert "trees.a.inner.tree: names no tree of this file (trees: a)" in str(err)


def test_a_cycle_of_references_is_refused_naming_the_chain(tmp_path: Path) -> None:
    err = load_error(
        tmp_path,
        """
        [trees.a]
        kind = "mirror"
        targets = { one = "memory://", two = { tree = "b" } }
        [trees.b]
        kind = "retry"
        inner = { tree = "a" }
        """,
        "a",
    )
    assert "cycle (trees.a.targets.two.tree -> trees.b.inner.tree)" in str(err)
    err = load_error(tmp_path, '[trees.a]\nkind = "readonly"\ninner = { tree = "a" }')
    assert "trees.a.inner.tree: the trees refer to each other in a cycle" in str(err)


# -- errors name the file, the node path and what was wrong ------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[trees.t]\nkind = "mirror"\ntargets = { a = { kind = "mirorr" } }',
            "trees.t.targets.a.kind: unknown kind 'mirorr': no combinator (audited, cached,",
        ),
        ('[trees.t]\nkind = "cached"\nfront = "memory://"', "trees.t: cached needs back (a node)"),
        (
            '[trees.t]\nkind = "failover"\nprimary = "memory://"\nalternatives = ["memory://", 3]',
            "trees.t.alternatives[1]: a node is a connection string",
        ),
        (
            '[trees.t]\nkind = "timeout"\ninner = "memory://"\nseconds = "soon"',
            "trees.t.seconds: expected a number; the string given is not one",
        ),
        (
            '[trees.t]\nkind = "timeout"\ninner = "memory://"',
            "trees.t: timeout needs seconds",
        ),
        (
            '[trees.t]\nkind = "mirror"\nwrite = "sometimes"\ntargets.a = "memory://"',
            "trees.t: new mirror: write must be one of sequential, parallel, not 'sometimes'",
        ),
        (
            '[trees.t]\nkind = "retry"\ninner = "memory://"\npolicy = { attempts = 3 }',
            "trees.t.policy.attempts: unknown key (known: max_attempts,",
        ),
        (
            '[trees.t]\nkind = "retry"\ninner = "memory://"\npolicy = { max_attempts = 0 }',
            "trees.t.policy: max_attempts must be an int >= 1, not 0",
        ),
        (
            '[trees.t]\nkind = "readonly"\ninner = "memory://"\nsecret_sauce = 1',
            "trees.t.secret_sauce: unknown key (a readonly node takes kind, inner)",
        ),
        (
            '[trees.t]\nkind = "logged"\ninner = "memory://"\non_success = "os:system"',
            "trees.t.on_success: logged's on_success takes code (a callable)",
        ),
        (
            '[trees.t]\nkind = "readonly"\ninner = { kind = "memory", color = "red" }',
            "trees.t.inner.color: unknown pair of memory (known: default_content_type,",
        ),
        ('[trees.t]\nkind = "fs"', "trees.t: fs needs the pair root"),
        (
            '[trees.t]\nkind = "readonly"\ninner = "memory://?colour=red"',
            "trees.t.inner: open memory:memory://?colour=***: unknown key 'colour'",
        ),
        ('[trees.t]\nkind = "readonly"\ninner = { size = 3 }', "trees.t.inner: missing kind"),
        ('[trees."a b"]\nkind = "memory"', 'trees."a b": a tree name is letters, digits'),
        ('default = "x"\n[trees.t]\nkind = "memory"', "default: names no tree of this file"),
        ('[tree.t]\nkind = "memory"', "tree: unknown key (a tree file has default, trees)"),
        ('[trees.t]\nkind = "memory"\nwork_dir = ', "not valid TOML: Invalid value"),
        ("x = 1\n", "x: unknown key"),
        (
            '[trees.t]\nkind = "mirror"\ntargets = { kind = "memory" }',
            "trees.t.targets: expected a table of nodes, each under its own name",
        ),
    ],
)
def test_a_bad_file_is_a_clear_error_naming_file_node_and_problem(
    tmp_path: Path, text: str, expected: str
) -> None:
    err = load_error(tmp_path, text)
    assert str(err).startswith(f"load {tmp_path / 'tree.toml'}: ")
    assert expected in str(err)


def test_a_service_refusing_its_pairs_keeps_its_error_class(tmp_path: Path) -> None:
    with pytest.raises(PairInvalidError, match=r"trees\.t: new s3: pair 'name' must be a bucket"):
        load_text(tmp_path, '[trees.t]\nkind = "s3"\nname = ""')


def test_nodes_nested_too_deep_are_refused(tmp_path: Path) -> None:
    node = '"memory://"'
    for _ in range(MAX_DEPTH + 2):
        node = f'{{ kind = "readonly", inner = {node} }}'
    err = load_error(tmp_path, f'[trees.t]\nkind = "readonly"\ninner = {node}')
    assert f"nested more than {MAX_DEPTH} deep" in str(err)


def test_toml_nested_beyond_the_parser_is_refused(tmp_path: Path) -> None:
    err = load_error(tmp_path, "x = " + "[" * 5000 + "]" * 5000)
    assert "nested too deeply" in str(err)


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="load"):
        storager.load(tmp_path / "absent.toml")


def test_an_open_file_loads_too(tmp_path: Path) -> None:
    assert storager.load(io.BytesIO(b'[trees.t]\nkind = "memory"')).read is not None
    store = storager.load(io.StringIO('[trees.t]\nkind = "memory"'))
    store.write("a", b"1")
    assert store.read("a") == b"1"


# -- ${VAR}: the environment and nothing else --------------------------------------------


def test_variables_fill_pairs_and_connection_strings(tmp_path: Path) -> None:
    root = tmp_path / "disk"
    root.mkdir()
    store = load_text(
        tmp_path,
        """
        [trees.t]
        kind = "timeout"
        seconds = "${SECONDS}"
        inner = "fs://${ROOT}?work_dir=/${DIR}/"
        """,
        SECONDS="3",
        ROOT=str(root),
        DIR="sub",
    )
    assert describe(store).startswith("timeout 3s")
    store.write("a.txt", b"x")
    assert (root / "sub" / "a.txt").read_bytes() == b"x"


def test_a_variable_cannot_add_pairs_to_a_connection_string(tmp_path: Path) -> None:
    odd = tmp_path / "a&work_dir=x?y=1#z"
    odd.mkdir()
    store = load_text(tmp_path, '[trees.t]\nkind = "fs"\nroot = "${R}"', R=str(odd))
    store.write("f", b"1")
    url_store = load_text(tmp_path, '[trees.t]\ninner = "fs://${R}"\nkind = "readonly"', R=str(odd))
    assert url_store.read("f") == b"1"
    assert (odd / "f").read_bytes() == b"1"


def test_an_unset_variable_is_named(tmp_path: Path) -> None:
    err = load_error(tmp_path, '[trees.t]\nkind = "fs"\nroot = "/x/${NOT_SET_HERE}"')
    assert "trees.t.root: environment variable NOT_SET_HERE is not set" in str(err)


def test_values_from_the_environment_never_appear_in_errors(tmp_path: Path) -> None:
    secret = "hunter2-very-secret"
    for text in (
        '[trees.t]\nkind = "mirror"\nwrite = "${S}"\ntargets.a = "memory://"',
        '[trees.t]\nkind = "readonly"\ninner = "memory://?x=${S}"',
        '[trees.t]\nkind = "readonly"\ninner = "${S}://"',
        '[trees.t]\nkind = "s3"\nname = "b"\nmax_connections = "${S}"',
    ):
        with pytest.raises(InvalidArgumentError) as info:
            load_text(tmp_path, text, S=secret)
        shown = str(info.value)
        assert secret not in shown and "hunter2" not in shown, shown
        assert "trees.t" in shown


@pytest.mark.parametrize(
    "text",
    ["${HOME:-/tmp}", "${$(id)}", "${A${B}}", "${ HOME}", "${", "${}"],
)
def test_only_plain_variable_names_are_expanded(tmp_path: Path, text: str) -> None:
    err = load_error(tmp_path, f'[trees.t]\nkind = "memory"\nwork_dir = "{text}"', HOME="/h")
    assert "trees.t.work_dir" in str(err)


def test_expanded_values_are_not_expanded_again_and_double_dollar_is_literal(
    tmp_path: Path,
) -> None:
    store = load_text(
        tmp_path,
        '[trees.t]\nkind = "memory"\nwork_dir = "/$${A}/${B}/"',
        B="${A}",
        A="leak",
    )
    assert store.metadata().work_dir == "/${A}/${A}/"


def test_a_file_reads_only_the_environment_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TREE_TEST_DIR", "from-os")
    path = write(tmp_path, '[trees.t]\nkind = "memory"\nwork_dir = "/${TREE_TEST_DIR}/"')
    assert storager.load(path).metadata().work_dir == "/from-os/"
    with pytest.raises(ConnectionStringInvalidError, match="TREE_TEST_DIR is not set"):
        storager.load(path, env={})


def test_a_variable_in_an_unused_tree_need_not_be_set(tmp_path: Path) -> None:
    text = '[trees.a]\nkind = "memory"\n[trees.b]\nkind = "fs"\nroot = "${UNSET_ROOT}"'
    assert load_text(tmp_path, text, "a").metadata().service == "memory"


# -- the registry ------------------------------------------------------------------------


def test_a_third_party_kind_registers_how_its_arguments_map(tmp_path: Path) -> None:
    class Tagged(ReadOnly):
        def __init__(self, inner: Storager, *, tag: str) -> None:
            super().__init__(inner)
            self.tag = tag

        def describe_label(self) -> str:
            return f"tagged {self.tag}"

    register_kind(NodeKind("tagged", Tagged, {"inner": Slot(Shape.ONE)}, {"tag": Pair(string)}))
    store = load_text(tmp_path, '[trees.t]\nkind = "tagged"\ntag = "blue"\ninner = "memory://"')
    assert describe(store).startswith("tagged blue")


def test_the_example_in_docs_trees_md_is_a_valid_tree_file() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "trees.md").read_text()
    example = doc.split("```toml\n", 1)[1].split("```", 1)[0]
    trees = TreeFile.read(io.StringIO(example), env={})
    assert trees.names == ("photos", "archive") and trees.default == "photos"


def test_a_node_that_fails_closes_the_children_it_built(tmp_path: Path) -> None:
    closed: list[str] = []

    class Tracked(ReadOnly):
        def _close(self) -> None:
            closed.append("tracked")

    register_kind(NodeKind("tracked", Tracked, {"inner": Slot(Shape.ONE)}))
    err = load_error(
        tmp_path,
        '[trees.t]\nkind = "mirror"\n'
        'targets.a = { kind = "tracked", inner = "memory://" }\n'
        'targets.b = "memory://?bogus=1"',
    )
    assert "trees.t.targets.b: " in str(err)
    assert closed == ["tracked"]
