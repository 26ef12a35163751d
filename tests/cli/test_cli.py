"""The storager command line, run in-process through main(argv) on fs tmp dirs."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tracemalloc
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from storager.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main, split_url

NESTED = {
    "a.txt": b"alpha\n",
    "sub dir/b c.txt": b"bee see\n",
    "sub dir/ünï/cödé 😀.bin": bytes(range(256)),
    "deep/1/2/3/4/leaf.txt": b"leaf",
    "odd/@&%+#.txt": b"odd names",
}


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for rel, data in NESTED.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# -- URL rule ---------------------------------------------------------------------------


def test_local_path_opens_fs_at_root_and_names_the_absolute_path(tmp_path: Path) -> None:
    loc = split_url(str(tmp_path / "a.txt"))
    assert loc.store_url == "fs:///"
    assert loc.path == str(tmp_path / "a.txt")
    assert not loc.is_dir


def test_trailing_slash_names_a_directory(tmp_path: Path) -> None:
    assert split_url(str(tmp_path) + "/").is_dir
    assert split_url("fs:///tmp/x/").path == "/tmp/x/"


def test_fs_url_path_is_the_object_path_and_percent_decoded() -> None:
    loc = split_url("fs:///tmp/a%20b/c.txt?work_dir=/sub/")
    assert loc.store_url == "fs:///?work_dir=/sub/"
    assert loc.path == "/tmp/a b/c.txt"


def test_memory_url_path_is_the_object_path_and_the_store_opens_at_top() -> None:
    loc = split_url("memory:///dir/a.txt?default_content_type=text/plain")
    assert loc.store_url == "memory://?default_content_type=text/plain"
    assert loc.path == "/dir/a.txt"


# -- ls --------------------------------------------------------------------------------


def test_ls_lists_one_level_with_directories_ending_in_slash(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", str(tree)]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == ["a.txt", "deep/", "odd/", "sub dir/"]


def test_ls_long_shows_size_mtime_and_type(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "-l", str(tree) + "/"]) == EXIT_OK
    lines = {line.split()[-1]: line.split() for line in capsys.readouterr().out.splitlines()}
    size, mtime, kind, _ = lines["a.txt"]
    assert (size, kind) == ("6", "file")
    assert datetime.fromisoformat(mtime).tzinfo is not None
    assert lines["deep/"][2] == "dir"


def test_ls_recursive_lists_every_file_relative_to_the_directory(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", "-r", "fs://" + quote(str(tree))]) == EXIT_OK
    assert sorted(capsys.readouterr().out.splitlines()) == sorted(NESTED)


def test_ls_json_prints_one_object_per_line(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "-r", "--json", str(tree)]) == EXIT_OK
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by_path = {row["path"]: row for row in rows}
    assert set(by_path) == set(NESTED)
    assert by_path["a.txt"]["content_length"] == 6
    assert by_path["a.txt"]["type"] == "file"
    assert by_path["a.txt"]["mode"] == ["READ"]


def test_ls_of_a_file_shows_that_file(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "-l", str(tree / "a.txt")]) == EXIT_OK
    assert capsys.readouterr().out.split()[0] == "6"


def test_ls_of_an_empty_directory_prints_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["ls", str(tmp_path / "empty")]) == EXIT_OK
    assert capsys.readouterr().out == ""


def test_ls_of_a_missing_directory_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", str(tmp_path / "nope") + "/"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith("storager: stat fs:")
    assert "nope" in err and "not found" in err


# -- stat ------------------------------------------------------------------------------


def test_stat_prints_the_objects_fields(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stat", str(tree / "a.txt")]) == EXIT_OK
    fields = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert fields["path"] == str(tree / "a.txt")
    assert fields["content_length"] == "6"
    assert fields["mode"] == "READ"
    assert "last_modified" in fields


def test_stat_json_reports_a_directory(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stat", "--json", str(tree / "sub dir")]) == EXIT_OK
    data = json.loads(capsys.readouterr().out)
    assert data["type"] == "dir"
    assert data["path"] == str(tree / "sub dir") + "/"


def test_stat_of_a_missing_object_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stat", str(tmp_path / "missing.txt")]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err == f"storager: stat fs:{tmp_path / 'missing.txt'}: not found\n"


# -- cat -------------------------------------------------------------------------------


def test_cat_streams_the_whole_object(
    tree: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["cat", str(tree / "sub dir/ünï/cödé 😀.bin")]) == EXIT_OK
    assert capsysbinary.readouterr().out == bytes(range(256))


def test_cat_offset_and_size_give_exactly_that_range(
    tree: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    path = str(tree / "sub dir/ünï/cödé 😀.bin")
    assert main(["cat", "--offset", "10", "--size", "5", path]) == EXIT_OK
    assert capsysbinary.readouterr().out == bytes(range(10, 15))
    assert main(["cat", "--offset", "250", path]) == EXIT_OK
    assert capsysbinary.readouterr().out == bytes(range(250, 256))


def test_cat_of_a_missing_object_exits_1_naming_op_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.txt"
    assert main(["cat", str(missing)]) == EXIT_FAILED
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err == f"storager: open_reader fs:{missing}: not found\n"


def test_cat_negative_offset_is_a_usage_error(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cat", "--offset", "-1", str(tree / "a.txt")]) == EXIT_USAGE
    assert "must not be negative" in capsys.readouterr().err


# -- cp --------------------------------------------------------------------------------


def test_cp_copies_an_object_to_a_new_path(tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out" / "copy.txt"
    assert main(["cp", str(tree / "a.txt"), str(dst)]) == EXIT_OK
    assert dst.read_bytes() == NESTED["a.txt"]


def test_cp_into_an_existing_directory_keeps_the_name(tree: Path, tmp_path: Path) -> None:
    (tmp_path / "into").mkdir()
    assert main(["cp", str(tree / "a.txt"), str(tmp_path / "into")]) == EXIT_OK
    assert (tmp_path / "into" / "a.txt").read_bytes() == NESTED["a.txt"]


def test_cp_overwrites_the_destination(tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "dst.txt"
    dst.write_bytes(b"old content that is longer")
    assert main(["cp", str(tree / "a.txt"), "fs://" + quote(str(dst))]) == EXIT_OK
    assert dst.read_bytes() == NESTED["a.txt"]


def test_cp_r_copies_a_tree_with_spaces_and_unicode_keeping_relative_paths(
    tree: Path, tmp_path: Path
) -> None:
    dst = tmp_path / "dst tree ü"
    assert main(["cp", "-r", str(tree), "fs://" + quote(str(dst)) + "/"]) == EXIT_OK
    assert files_under(dst) == NESTED


def test_cp_r_copies_a_subtree(tree: Path, tmp_path: Path) -> None:
    dst = tmp_path / "part"
    assert main(["cp", "-r", str(tree / "sub dir") + "/", str(dst)]) == EXIT_OK
    assert files_under(dst) == {
        "b c.txt": NESTED["sub dir/b c.txt"],
        "ünï/cödé 😀.bin": NESTED["sub dir/ünï/cödé 😀.bin"],
    }


def test_cp_r_into_itself_is_refused(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cp", "-r", str(tree), str(tree / "inner")]) == EXIT_USAGE
    assert "into itself" in capsys.readouterr().err
    assert not (tree / "inner").exists()


def test_cp_of_a_directory_without_r_fails(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cp", str(tree) + "/", str(tmp_path / "x")]) == EXIT_FAILED
    assert "use -r" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cp_from_stdin_writes_the_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = os.urandom(3 << 20)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(payload)))
    dst = tmp_path / "from stdin.bin"
    assert main(["cp", "-", str(dst)]) == EXIT_OK
    assert dst.read_bytes() == payload


def test_cp_from_stdin_to_a_directory_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cp", "-", str(tmp_path) + "/"]) == EXIT_USAGE
    assert "needs an object name" in capsys.readouterr().err


def test_cp_to_stdout_streams_the_object(
    tree: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["cp", str(tree / "sub dir/ünï/cödé 😀.bin"), "-"]) == EXIT_OK
    assert capsysbinary.readouterr().out == bytes(range(256))


def test_cp_progress_is_reported_only_when_asked(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["cp", str(tree / "a.txt"), str(tmp_path / "p1")]) == EXIT_OK
    assert capsys.readouterr().err == ""  # stderr is not a tty here
    assert main(["cp", "--progress", str(tree / "a.txt"), str(tmp_path / "p2")]) == EXIT_OK
    err = capsys.readouterr().err
    assert "a.txt: 6/6 bytes (100%)" in err


def test_cp_of_64_mib_streams_and_keeps_the_sha256(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    digest = hashlib.sha256()
    with src.open("wb") as fh:
        for _ in range(64):
            block = os.urandom(1 << 20)
            digest.update(block)
            fh.write(block)
    dst = tmp_path / "copy" / "big.bin"
    tracemalloc.start()
    try:
        assert main(["cp", str(src), str(dst)]) == EXIT_OK
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    copied = hashlib.sha256()
    with dst.open("rb") as fh:
        while block := fh.read(1 << 20):
            copied.update(block)
    assert copied.hexdigest() == digest.hexdigest()
    assert peak < 16 << 20, f"cp held {peak} bytes at once: it must stream"


# -- rm --------------------------------------------------------------------------------


def test_rm_deletes_one_object(tree: Path) -> None:
    assert main(["rm", str(tree / "a.txt")]) == EXIT_OK
    assert not (tree / "a.txt").exists()
    assert (tree / "sub dir" / "b c.txt").exists()


def test_rm_of_a_missing_object_succeeds(tmp_path: Path) -> None:
    assert main(["rm", str(tmp_path / "never.txt")]) == EXIT_OK


def test_rm_r_deletes_everything_under_the_directory(tree: Path) -> None:
    sibling = tree.parent / "src-sibling.txt"
    sibling.write_bytes(b"keep")
    assert main(["rm", "-r", str(tree)]) == EXIT_OK
    assert not tree.exists()
    assert sibling.read_bytes() == b"keep"


def test_rm_of_a_non_empty_directory_without_r_fails(
    tree: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rm", str(tree / "sub dir") + "/"]) == EXIT_FAILED
    assert "directory not empty" in capsys.readouterr().err
    assert (tree / "sub dir" / "b c.txt").exists()


# -- errors and exit codes ---------------------------------------------------------------


def test_unknown_scheme_exits_2_naming_the_scheme(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "nosuch://bucket/x"]) == EXIT_USAGE
    assert capsys.readouterr().err == (
        "storager: open nosuch://bucket/x: no service for scheme 'nosuch'\n"
    )


def test_bad_url_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stat", "fs://host:99x/tmp/a"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("storager: open fs://host:99x/tmp/a: malformed URL")
    assert "Traceback" not in err


def test_unknown_pair_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", f"fs://{tmp_path}/?colour=blue"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("storager: open fs://")
    assert "unknown key 'colour'" in err


def test_a_secret_in_the_url_never_reaches_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ls", "memory:///x/?credential=hmac:AK:TOPSECRET"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "TOPSECRET" not in err
    assert "credential=***" in err


def test_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cp", "only-one"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("storager: the following arguments are required: DST")
    assert "usage: storager cp" in err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == EXIT_USAGE
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


# -- a real process ------------------------------------------------------------------------


def run_cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "storager", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_python_m_storager_pipes_stdin_to_an_object_and_back(tmp_path: Path) -> None:
    payload = os.urandom(100_000)
    dst = tmp_path / "piped ü.bin"
    written = run_cli("cp", "-", str(dst), stdin=payload)
    assert (written.returncode, written.stderr) == (0, b"")
    read = run_cli("cat", "fs://" + quote(str(dst)))
    assert (read.returncode, read.stdout) == (0, payload)
    missing = run_cli("cat", str(tmp_path / "missing"))
    assert missing.returncode == 1
    assert missing.stderr.decode().startswith("storager: open_reader fs:")
    assert b"Traceback" not in missing.stderr
    unknown = run_cli("ls", "nosuch://x")
    assert unknown.returncode == 2
    assert b"Traceback" not in unknown.stderr
