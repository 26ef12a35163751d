"""Start-up: ``import storager`` and each command load only what they use.

Each check runs in a fresh interpreter, since this one has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

#: Modules that ``import storager`` loaded before it became lazy (half its time).
_HEAVY = ["asyncio", "storager.aio", "storager.tree", "storager.combinators"]


def _loaded_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter; return which of _HEAVY-like modules it loaded."""
    script = (
        f"{code}\nimport json, sys\n"
        "print(json.dumps({name: name in sys.modules for name in sys.argv[1:]}))"
    )
    names = [*_HEAVY, "storager.cli._bench", "storager.cli._doctor", "storager.cli._sync"]
    names += ["storager.cli._transfer", "storager.cli._parts"]
    result = subprocess.run(
        [sys.executable, "-c", script, *names],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    loaded: dict[str, bool] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_import_storager_loads_no_async_tree_or_combinator_module() -> None:
    loaded = _loaded_after("import storager")
    assert not any(loaded[name] for name in _HEAVY), loaded


def test_every_public_name_still_resolves_and_the_lazy_ones_load_on_use() -> None:
    code = (
        "import storager\n"
        "missing = [n for n in storager.__all__ if getattr(storager, n, None) is None]\n"
        "assert not missing, missing\n"
        "from storager import AsyncStorager, load, open_async\n"
        "from storager.aio import open_async as real\n"
        "assert open_async is real and load.__module__.startswith('storager.tree')\n"
        "assert storager.aio.async_view and storager.tree.TreeFile\n"
        "assert set(storager.__all__) <= set(dir(storager))\n"
        "try:\n    storager.no_such_name\nexcept AttributeError:\n    pass\n"
        "else:\n    raise SystemExit('no AttributeError')\n"
    )
    loaded = _loaded_after(code)
    assert all(loaded[name] for name in _HEAVY)


def test_ls_imports_no_other_command_and_no_combinators(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(b"a")
    code = (
        "import io, contextlib\n"
        "from storager.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert main(['ls', {str(tmp_path) + '/'!r}]) == 0\n"
        "assert 'a.txt' in out.getvalue(), out.getvalue()\n"
    )
    loaded = _loaded_after(code)
    assert not any(loaded.values()), loaded


def test_a_tree_argument_still_loads_the_trees(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "b.txt").write_bytes(b"b")
    config = tmp_path / "tree.toml"
    config.write_text(f'[trees.local]\nkind = "readonly"\ninner = "fs://{data}"\n')
    code = (
        "import io, contextlib\n"
        "from storager.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    assert main(['ls', '--config', {str(config)!r}, 'local:']) == 0\n"
        "assert 'b.txt' in out.getvalue(), out.getvalue()\n"
    )
    loaded = _loaded_after(code)
    assert loaded["storager.tree"] and loaded["storager.combinators"]
