"""Writing files and folders so that a kill, a full disk or an exception never leaves half of
one where a reader looks, and never loses the one that was there before.

- `write_atomic(path, data)`: a file, written beside its target, fsynced and renamed over it.
- `check_replaceable(out, force, marker, what)`: the one rule for an output folder that
  exists: empty, it is used; otherwise only with --force, and only when it is one of ours.
- `replace_folder(final, build)`: a folder (a run, a bundle, a dataset) built by `build(tmp)`
  in a temporary folder beside `final`, fsynced, then swapped in with one rename. Until the
  swap a reader sees the old folder, whole; after it, the new one, whole. A `build` that
  raises, or a process killed before the swap, leaves the old folder untouched; the
  temporary folder is removed on failure, and one left by a killed process
  (`.NAME.partial-PID-...`, its process gone) is removed by the next `replace_folder` of the
  same target.

For the kill tests only: with `GK_TEST_PAUSE=<point>` in the environment the process stops at
that point of `replace_folder` ("built": the new folder is complete, the old still in place;
"swapped": the new one is in place, the old not yet removed), says so on stderr (`paused at
<point>`) and waits to be killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gesturekit.errors import UserError

T = TypeVar("T")
PAUSE_ENV = "GK_TEST_PAUSE"
_RENAME_EXCHANGE = 2  # linux/fs.h


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one rename: a reader (or a
    kill) never finds half a file, and a failure leaves the old file as it was."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def check_replaceable(out: Path, force: bool, marker: str, what: str) -> None:
    """Refuse, in one line, to replace an existing `out` that holds anything unless `force`,
    and even then unless it is a `what` (it holds `marker`): --force never deletes a folder of
    the user's that merely shares the name."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not force:
        raise UserError(f"{out}: already exists; choose another --out or pass --force")
    if not (out / marker).is_file():
        raise UserError(f"{out}: exists and is not a {what} (no {marker}); refusing to replace "
                        "it, choose another --out")


def replace_folder(final: str | os.PathLike, build: Callable[[Path], T]) -> T:
    """Build a folder with `build(tmp)` beside `final` and put it in `final`'s place in one
    rename (over the old folder, if any); returns what `build` returns. The caller decides
    beforehand whether `final` may be replaced."""
    # Absolute: "." or "sub/.." cannot be renamed, the folder they name can.
    final = Path(os.path.abspath(final))
    if final.is_symlink():  # replace the folder it points to, not the link
        final = final.resolve()
    if os.path.ismount(final):  # a rename cannot move a mount point: say so before any work
        raise UserError(f"{final}: a mount point; the folder is built beside it and renamed into "
                        "place, so choose a folder inside it")
    if final.parent.exists() and not final.parent.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(final.parent))
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final)
    work = Path(tempfile.mkdtemp(prefix=f"{_partial_prefix(final)}{os.getpid()}-",
                                 dir=final.parent))
    try:
        result = build(work)
        work.chmod(final.stat().st_mode & 0o7777 if final.is_dir() else 0o755)
        _fsync_tree(work)
        _pause("built")
        if final.exists() and _exchange(work, final):
            pass  # `work` now holds the old folder
        elif final.exists():  # no atomic exchange here: move the old aside, then the new in
            aside = Path(tempfile.mkdtemp(prefix=f"{_partial_prefix(final)}{os.getpid()}-old-",
                                          dir=final.parent))
            os.replace(final, aside)
            try:
                os.rename(work, final)
            except BaseException:
                os.rename(aside, final)
                raise
            work = aside
        else:
            os.rename(work, final)
        _fsync_dir(final.parent)
        _pause("swapped")
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    return result


def remove_stale(final: Path) -> None:
    """Remove the temporary folders beside `final` that killed processes left behind."""
    prefix = _partial_prefix(final)
    with contextlib.suppress(OSError):
        for entry in final.parent.iterdir():
            if not entry.name.startswith(prefix):
                continue
            pid = entry.name[len(prefix):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(entry, ignore_errors=True)


def _partial_prefix(final: Path) -> str:
    return f".{final.name}.partial-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system
    or file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # not here: rename in two steps
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under `root` on disk (the rename that follows is then safe
    against a power cut, not only against a kill)."""
    for folder, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(folder, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _pause(point: str) -> None:
    if os.environ.get(PAUSE_ENV) == point:
        print(f"paused at {point}", file=sys.stderr, flush=True)
        while True:
            time.sleep(60)
