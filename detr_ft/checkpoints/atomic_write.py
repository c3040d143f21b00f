"""Write a file whole or not at all: into a temporary sibling, flushed to disk, then renamed over the target.
A killed process or a full disk never leaves a half-written file, and the previous file stays whole. The one
place detr_ft does this (checkpoints, exports, the feature cache); it imports nothing of detr_ft's."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yields a fresh temporary path beside `path` to write; on leaving the block without an error it is fsynced
    (unless `durable` is False: a cache file lost in a crash is only recomputed) and renamed to `path` (one atomic
    step, parallel writers never see a partial file); on an error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        if durable:
            with open(temporary, "rb+") as file:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)  # left only when the write failed


def write_bytes_atomically(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text_atomically(path: str | Path, text: str) -> Path:
    with atomic_path(path) as temporary:
        temporary.write_text(text)
    return Path(path)
