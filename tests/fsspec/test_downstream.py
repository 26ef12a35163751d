"""Downstream libraries through storager+<scheme>:// URLs: pandas, pyarrow, duckdb, dask, zarr.

Each runs over memory, fs and s3 (SeaweedFS), with real data written and read back.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pytest

from storager.fsspec import StoragerFileSystem
from tests.services import test_s3

seaweedfs_bucket = test_s3.seaweedfs_bucket


@dataclass
class Target:
    """Where a test writes: a base URL, the options fsspec passes on, and its filesystem."""

    base: str  # storager+<scheme>://.../ without the query
    query: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return f"{self.base}{path}{self.query}"

    def fs(self) -> tuple[StoragerFileSystem, str]:
        fs, root = fsspec.url_to_fs(self.url(""), **self.options)
        assert isinstance(fs, StoragerFileSystem)
        return fs, root


@pytest.fixture(params=["memory", "fs", pytest.param("s3", marks=pytest.mark.s3)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    run = f"down-{secrets.token_hex(4)}"
    if request.param == "memory":
        yield Target(f"storager+memory://{run}/")
    elif request.param == "fs":
        yield Target(f"storager+fs://{tmp_path}/")
    else:
        bucket = request.getfixturevalue("seaweedfs_bucket")
        yield Target(
            f"storager+s3://{bucket.name}/{run}/",
            f"?endpoint={bucket.endpoint}&location=us-east-1",
            {"credential": bucket.credential},
        )


def _frame(rows: int = 200) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x": np.arange(rows, dtype="int64"),
            "y": np.linspace(0, 1, rows),
            "name": [f"n{i % 7}" for i in range(rows)],
        }
    )


def test_pandas_parquet_round_trip(target: Target) -> None:
    frame = _frame()
    frame.to_parquet(target.url("frame.parquet"), storage_options=target.options)
    back = pd.read_parquet(target.url("frame.parquet"), storage_options=target.options)
    pd.testing.assert_frame_equal(back, frame)


def test_pandas_csv_round_trip(target: Target) -> None:
    frame = _frame()
    frame.to_csv(target.url("frame.csv"), index=False, storage_options=target.options)
    back = pd.read_csv(target.url("frame.csv"), storage_options=target.options)
    pd.testing.assert_frame_equal(back, frame)


def test_pyarrow_dataset_of_several_files_with_a_filter(target: Target) -> None:
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    fs, root = target.fs()
    for part in range(3):
        table = pa.table({"x": list(range(part * 10, part * 10 + 10)), "part": [part] * 10})
        pq.write_table(table, f"{root}/ds/part-{part}.parquet", filesystem=fs)
    dataset = ds.dataset(f"{root}/ds", filesystem=fs, format="parquet")
    assert len(dataset.files) == 3
    picked = dataset.to_table(filter=(ds.field("x") >= 15) & (ds.field("x") < 22))
    assert sorted(picked.column("x").to_pylist()) == list(range(15, 22))
    assert sorted(set(picked.column("part").to_pylist())) == [1, 2]


def test_duckdb_reads_parquet_through_register_filesystem(target: Target) -> None:
    import duckdb

    fs, _ = target.fs()
    _frame().to_parquet(target.url("duck.parquet"), storage_options=target.options)
    with duckdb.connect() as con:
        con.register_filesystem(fs)
        # The URL without its query: the filesystem registered for the protocol serves it.
        query = f"select sum(x), count(*) from read_parquet('{target.base}duck.parquet')"
        rows = con.sql(query).fetchall()
    assert rows == [(sum(range(200)), 200)]


def test_zarr_array_round_trip(target: Target) -> None:
    import zarr
    from zarr.storage import FsspecStore

    store = FsspecStore.from_url(target.url("z.zarr"), storage_options=target.options)
    data = np.arange(1000, dtype="float32").reshape(25, 40)
    array = zarr.create_array(store, shape=data.shape, chunks=(10, 10), dtype="float32")
    array[:] = data
    back = zarr.open_array(
        FsspecStore.from_url(target.url("z.zarr"), storage_options=target.options), mode="r"
    )
    np.testing.assert_array_equal(back[:], data)
    np.testing.assert_array_equal(back[5:7, 38:], data[5:7, 38:])


def test_dask_read_parquet_over_a_mirror(tmp_path: Path) -> None:
    import dask
    import dask.dataframe as dd

    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    tree = tmp_path / "tree.toml"
    tree.write_text(
        "[trees.both]\n"
        'kind = "mirror"\n'
        f'targets.one = "fs://{tmp_path}/one"\n'
        f'targets.two = "fs://{tmp_path}/two"\n'
    )
    fs = StoragerFileSystem(tree=str(tree))
    frame = _frame(300)
    for part in range(3):
        chunk = frame.iloc[part * 100 : (part + 1) * 100]
        with fs.open(f"data/part-{part}.parquet", "wb") as f:
            chunk.to_parquet(f)
    assert (tmp_path / "two" / "data" / "part-2.parquet").is_file()  # written to both
    with dask.config.set(scheduler="threads"):
        loaded = dd.read_parquet("data/", filesystem=fs).compute()
    # dask reads strings back as another pandas string dtype: compare the values.
    pd.testing.assert_frame_equal(
        loaded.sort_values("x").reset_index(drop=True),
        frame.reset_index(drop=True),
        check_dtype=False,
    )
