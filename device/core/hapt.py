"""The UCI HAPT raw layout, read in place from its folder or the UCI zip (numpy only).

`RawData/acc_expNN_userNN.txt` and `gyro_...` (50 Hz, acc in g, gyro in rad/s; the constants
are in `recording.py`), `RawData/labels.txt` (experiment, user, activity, first, last sample;
1-based, inclusive) and `activity_labels.txt`. The one reader for the dataset importer
(train/), `simulate` and `plot`; every file is checked (numbers, finite, equal lengths) and
bad input is a one-line `UserError` naming the file and line.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from gesturekit.device.core.windowing import UNLABELLED
from gesturekit.errors import UserError


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path}: not a readable zip file ({e}); expected the UCI HAPT zip") from None


def is_hapt(path: Path) -> bool:
    """True for a UCI HAPT folder or zip (one with `RawData/labels.txt`)."""
    if path.is_file() and path.suffix == ".zip":
        with _open_zip(path) as z:
            return any(n.endswith("RawData/labels.txt") for n in z.namelist())
    return (path / "RawData" / "labels.txt").is_file()


class HaptSource:
    """Reads members of the HAPT layout from a folder (the one holding `RawData/`) or from the
    UCI zip."""

    def __init__(self, path: Path):
        self.path = path
        self.label_rows: np.ndarray | None = None  # RawData/labels.txt, read on first use
        self._members: dict[str, bytes] | None = None  # a zip's files, read eagerly and closed
        if path.is_file():
            with _open_zip(path) as z:
                names = z.namelist()
                labels = next((n for n in names if n.endswith("RawData/labels.txt")), None)
                if labels is None:
                    raise UserError(f"{path}: no RawData/labels.txt; expected the UCI HAPT zip")
                self._prefix = labels[: -len("RawData/labels.txt")]
                try:
                    wanted = (self._prefix + "RawData/", self._prefix + "activity_labels.txt")
                    self._members = {n[len(self._prefix):]: z.read(n) for n in names
                                     if n.startswith(wanted) and not n.endswith("/")}
                except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
                    raise UserError(f"{path}: corrupt zip file ({e}); expected the UCI HAPT "
                                    "zip") from None
            self.names = list(self._members)
        else:
            self._prefix = ""
            raw = path / "RawData"  # absent when a lone session's folder is the source
            self.names = [p.relative_to(path).as_posix() for p in raw.iterdir()] if raw.is_dir() else []
            self.names += [n for n in ("activity_labels.txt",) if (path / n).is_file()]

    def where(self, name: str) -> str:
        return f"{self.path}/{name}" if self._members is None else f"{self.path}:{self._prefix}{name}"

    def text(self, name: str) -> str:
        try:
            if self._members is not None:
                raw = self._members[name]
            else:
                raw = (self.path / name).read_bytes()
        except (KeyError, FileNotFoundError):
            raise UserError(f"{self.where(name)}: missing; the HAPT layout needs it") from None
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise UserError(f"{self.where(name)}:{line}: byte 0x{raw[e.start]:02x} is not "
                            "ASCII; expected ASCII text") from None

    def table(self, name: str, columns: int) -> np.ndarray:
        try:
            table = np.loadtxt(io.StringIO(self.text(name)), ndmin=2)
        except ValueError as e:
            raise UserError(f"{self.where(name)}: expected {columns} numbers per line ({e})") from e
        if table.shape[1] != columns:
            raise UserError(f"{self.where(name)}: expected {columns} numbers per line, "
                            f"got {table.shape[1]}")
        with np.errstate(over="ignore"):  # samples are float32: beyond its range is inf
            finite = np.isfinite(table.astype(np.float32)).all(axis=1)
        if not finite.all():
            line = int(np.flatnonzero(~finite)[0]) + 1
            raise UserError(f"{self.where(name)}:{line}: NaN, inf or beyond float32's range; "
                            "expected finite sensor readings")
        return table

    def session(self, name: str) -> np.ndarray:
        """(N, 6) float32 of the session `RawData/acc_expNN_userNN.txt` and its gyro file."""
        acc = self.table(name, 3)
        gyro = self.table(name.replace("acc_", "gyro_"), 3)
        if len(acc) != len(gyro):
            raise UserError(f"{self.where(name)}: {len(acc)} samples but the gyro file has "
                            f"{len(gyro)}; expected equal lengths")
        return np.hstack([acc, gyro]).astype(np.float32)


def activity_names(source: HaptSource) -> list[str]:
    """Activity names by number (`activity_labels.txt`), in order: class index = number - 1."""
    names = {}
    for i, line in enumerate(source.text("activity_labels.txt").splitlines(), 1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise UserError(f"{source.where('activity_labels.txt')}:{i}: {line.strip()!r}; "
                                "expected 'NUMBER NAME'")
            names[int(parts[0])] = parts[1].strip()
    return [names[k] for k in sorted(names)]


def activity_ids(source: HaptSource, exp: int, user: int, n_samples: int,
                 activities: int) -> np.ndarray:
    """Per-sample activity of one session, as a class index (number - 1; UNLABELLED), from
    `RawData/labels.txt`: rows of (experiment, user, activity, first, last sample), 1-based and
    inclusive. The one place those rows become per-sample labels (training and `plot`)."""
    if source.label_rows is None:
        source.label_rows = source.table("RawData/labels.txt", 5).astype(np.int64)
    rows = source.label_rows
    ids = np.full(n_samples, UNLABELLED, np.int16)
    for _, _, activity, first, last in rows[(rows[:, 0] == exp) & (rows[:, 1] == user)]:
        if not (1 <= first <= last <= n_samples) or not (1 <= activity <= activities):
            raise UserError(f"{source.where('RawData/labels.txt')}: row {exp} {user} "
                            f"{activity} {first} {last} is outside the session's "
                            f"{n_samples} samples or the {activities} activities")
        ids[first - 1: last] = activity - 1
    return ids
