"""One run per folder at a time: `filelock` on `<run folder>/.run.lock`, held for the run's life. The operating
system drops the lock when its process ends, however it ends (kill -9 too), so no stale lock is ever left to
clean up. The file holds the holder's pid, which the refusal names."""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LOCK_FILE = ".run.lock"

_held: dict[Path, FileLock] = {}  # folder -> open lock file: a process asking again for its own folder is let in


class RunFolderBusy(BlockingIOError):
    pass


def is_held_here(folder: str | Path) -> bool:
    return Path(folder).resolve() in _held


def hold(folder: str | Path) -> bool:
    """Lock `folder` (created if needed) for this process -> whether this call took the lock (False: this
    process held it already). Raises RunFolderBusy naming the folder and the other run's pid."""
    folder = Path(folder).resolve()
    if folder in _held:
        return False
    fix = "choose another hydra.run.dir (sweeps: hydra.sweep.dir)"
    lock = FileLock(folder / LOCK_FILE, timeout=0, thread_local=False)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except Timeout:  # before OSError, which it is
        pid = (folder / LOCK_FILE).read_text().strip() or "unknown"
        raise RunFolderBusy(f"{folder} is in use by another run (pid {pid}); wait for it to end or {fix}") from None
    except OSError as error:
        raise OSError(
            error.errno, f"cannot write to the run folder {folder}: {error.strerror or error}; {fix}"
        ) from None
    (folder / LOCK_FILE).write_text(str(os.getpid()))  # another descriptor: the lock's own stays held
    _held[folder] = lock
    return True


def release(folder: str | Path) -> None:
    lock = _held.pop(Path(folder).resolve(), None)
    if lock is not None:
        lock.release()


def is_secondary_process() -> bool:
    """A DDP worker (Lightning restarts the script per rank) or a later SLURM task: the folder is rank 0's."""
    return any(os.environ.get(name, "0") != "0" for name in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


@contextmanager
def holding(folder: str | Path) -> Iterator[None]:
    """The lock around a run (a no-op in DDP workers, and where this process holds the folder already)."""
    taken = not is_secondary_process() and hold(folder)
    try:
        yield
    finally:
        if taken:
            release(folder)
