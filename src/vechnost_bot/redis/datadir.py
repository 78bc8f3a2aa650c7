"""Moved to :mod:`vechnost_bot.datadir` (the data dir is not Redis's alone); re-exported."""

from vechnost_bot.datadir import (
    DataDir,
    DataDirFiles,
    data_dir_lock,
    ensure_data_dir,
    file_size,
    read_int,
    read_tail,
    resolve_data_dir,
    write_private,
)

__all__ = [
    "DataDir",
    "DataDirFiles",
    "data_dir_lock",
    "ensure_data_dir",
    "file_size",
    "read_int",
    "read_tail",
    "resolve_data_dir",
    "write_private",
]
