"""fsspec adapter: every store, combinator trees included, for pandas, pyarrow, dask...

>>> import fsspec, storager
>>> from storager.fsspec import StoragerFileSystem
>>> fs = StoragerFileSystem(storager.open("memory://"))
>>> fs.pipe_file("a/b.txt", b"hi")
>>> fs.cat_file("a/b.txt")
b'hi'

URLs ``storager+<scheme>://...`` work with no import (the ``fsspec.specs`` entry point):
``pd.read_parquet("storager+s3://bucket/data/?endpoint=...")``. See docs/fsspec.md.
"""

from storager.fsspec._files import StoragerReadFile, StoragerWriteFile
from storager.fsspec._filesystem import StoragerFileSystem
from storager.fsspec._register import register
from storager.fsspec._urls import PREFIX, SplitUrl, split_url

__all__ = [
    "PREFIX",
    "SplitUrl",
    "StoragerFileSystem",
    "StoragerReadFile",
    "StoragerWriteFile",
    "register",
    "split_url",
]
