"""Datasets: a folder of recording-format sessions, or the UCI HAPT raw layout (folder or zip).

Everything here is numpy only. A `Dataset` holds whole sessions with per-sample class ids;
`make_windows` cuts them with the shared windowing code of `gesturekit.device.windowing`.
"""

from __future__ import annotations

import io
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gesturekit.device.recording import (
    DATASET_TOML,
    HAPT_CHANNELS,
    HAPT_RATE_HZ,
    HAPT_SESSION,
    HAPT_UNITS,
    RecordingSpec,
    read_recording,
    read_spec,
)
from gesturekit.device.windowing import UNLABELLED, cut_windows, label_runs, window_labels
from gesturekit.errors import UserError


@dataclass
class Session:
    name: str  # path relative to the dataset root, or "exp01_user01" for HAPT
    subject: str
    data: np.ndarray  # (N, C) float32, channels in dataset order
    label_ids: np.ndarray  # (N,) int16 class index, UNLABELLED where there is none


@dataclass
class Dataset:
    name: str
    root: str
    sample_rate_hz: float
    channels: list[str]
    units: dict[str, str]
    labels: list[str]  # class index -> name
    background_label: str | None
    sessions: list[Session]
    options: dict = field(default_factory=dict)  # what `load_dataset` was given, to load it again

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sessions}, key=_subject_key)

    def class_counts(self) -> np.ndarray:
        """Labelled samples per class."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        for s in self.sessions:
            ids = s.label_ids[s.label_ids >= 0]
            counts += np.bincount(ids, minlength=len(self.labels))
        return counts

    def class_segments(self) -> np.ndarray:
        """Runs of consecutive samples with the same class, per class."""
        segments = np.zeros(len(self.labels), dtype=np.int64)
        for s in self.sessions:
            run_ids = np.array([s.label_ids[a] for a, _ in label_runs(s.label_ids)], dtype=np.int64)
            segments += np.bincount(run_ids[run_ids >= 0], minlength=len(self.labels))
        return segments


def _subject_key(subject: str):
    return (0, int(subject), "") if subject.isdigit() else (1, 0, subject)


def _subject_id(text: str) -> str:
    return str(int(text)) if text.isdigit() else text


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"{path}: not a readable zip file ({e}); expected the UCI HAPT zip") from None


def is_hapt(path: Path) -> bool:
    if path.is_file() and path.suffix == ".zip":
        with _open_zip(path) as z:
            return any(n.endswith("RawData/labels.txt") for n in z.namelist())
    return (path / "RawData" / "labels.txt").is_file()


def load_dataset(path: str | os.PathLike, **overrides) -> Dataset:
    """Load a dataset folder (recording format) or a UCI HAPT folder or zip.

    `overrides` are `dataset.toml` keys given on the command line; for HAPT only
    `background_label` applies (unlabelled time becomes that class).
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such dataset folder or file")
    if is_hapt(path):
        return load_hapt(path, background_label=overrides.get("background_label"))
    return load_recordings(path, **overrides)


def load_recordings(root: Path, **overrides) -> Dataset:
    """A folder of session CSVs (or one CSV) with an optional `dataset.toml`."""
    toml = root / DATASET_TOML if root.is_dir() else root.parent / DATASET_TOML
    spec = read_spec(toml) if toml.is_file() else RecordingSpec()
    spec = spec.merged(overrides)
    files = sorted(root.rglob("*.csv")) if root.is_dir() else [root]
    base = root if root.is_dir() else root.parent
    if not files:
        raise UserError(f"{root}: no .csv session files found")

    recordings = [read_recording(f, spec) for f in files]
    channels = recordings[0].channels
    for rec in recordings[1:]:
        if rec.channels != channels:
            raise UserError(f"{rec.path}:1: channels {rec.channels} differ from {channels} in "
                            f"{recordings[0].path}; list them in {DATASET_TOML} 'channels'")

    names = sorted({lab for rec in recordings for lab in np.unique(rec.labels) if lab})
    if spec.background_label and spec.background_label not in names:
        names = sorted([*names, spec.background_label])
    index = {name: i for i, name in enumerate(names)}
    sessions = []
    for f, rec in zip(files, recordings, strict=True):
        rel = f.relative_to(base).as_posix()
        if spec.subject_pattern:
            m = re.search(spec.subject_pattern, rel)
            if not m or not m.groups():
                raise UserError(f"{toml}: subject_pattern {spec.subject_pattern!r} does not match "
                                f"session file '{rel}' (or has no group)")
            subject = _subject_id(m.group(1))
        else:
            subject = rel  # no subjects: every session stands alone in splits
        labels = rec.labels
        if spec.background_label:
            labels = np.where(labels == "", spec.background_label, labels)
        ids = np.array([index.get(lab, UNLABELLED) for lab in labels], dtype=np.int16)
        sessions.append(Session(rel, subject, rec.data, ids))

    rate = spec.sample_rate_hz or _rate_from_time(recordings, root)
    return Dataset(
        name=root.name, root=str(root), sample_rate_hz=rate, channels=channels,
        units=dict(spec.units), labels=names, background_label=spec.background_label,
        sessions=sessions, options={k: v for k, v in overrides.items() if v is not None},
    )


def _rate_from_time(recordings, root: Path) -> float:
    diffs = [np.diff(r.time) for r in recordings if r.time is not None and len(r.time) > 1]
    if not diffs:
        raise UserError(f"{root}: sample rate unknown; set sample_rate_hz in {DATASET_TOML} "
                        "(or --rate), or add a time column")
    step = float(np.median(np.concatenate(diffs)))
    if not step > 0:
        raise UserError(f"{root}: time column does not increase; cannot infer the sample rate")
    return round(1.0 / step, 3)


def session_file(dataset: Dataset, session: Session) -> Path | None:
    """The file a session was read from (for `simulate` and `plot`); None inside a zip."""
    root = Path(dataset.root)
    if root.is_file():
        return None if root.suffix == ".zip" else root
    if is_hapt(root):
        return root / "RawData" / f"acc_{session.name}.txt"
    return root / session.name


# --- UCI HAPT raw layout -------------------------------------------------------------------



class _HaptSource:
    """Reads members of the HAPT layout from a folder or from the UCI zip."""

    def __init__(self, path: Path):
        self.path = path
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
            self.names = [p.relative_to(path).as_posix() for p in (path / "RawData").iterdir()]
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
        if not np.isfinite(table).all():
            line = int(np.flatnonzero(~np.isfinite(table).all(axis=1))[0]) + 1
            raise UserError(f"{self.where(name)}:{line}: NaN or inf; expected finite numbers")
        return table


def hapt_activity_names(source: _HaptSource) -> list[str]:
    names = {}
    for i, line in enumerate(source.text("activity_labels.txt").splitlines(), 1):
        if line.strip():
            parts = line.split(maxsplit=1)
            if len(parts) != 2 or not parts[0].isdigit():
                raise UserError(f"{source.where('activity_labels.txt')}:{i}: {line.strip()!r}; "
                                "expected 'NUMBER NAME'")
            names[int(parts[0])] = parts[1].strip()
    return [names[k] for k in sorted(names)]


def load_hapt(path: Path, background_label: str | None = None) -> Dataset:
    """The UCI HAPT raw data: 61 sessions of 30 subjects, 50 Hz, acc in g, gyro in rad/s.

    `labels.txt` rows are (experiment, user, activity, first, last) with inclusive, 1-based
    sample ranges. Unlabelled samples are left out unless `background_label` names a class.
    """
    source = _HaptSource(path)
    names = hapt_activity_names(source)
    labels_table = source.table("RawData/labels.txt", 5).astype(np.int64)
    if background_label:
        names = [*names, background_label]
    sessions = []
    for name in sorted(n for n in source.names if HAPT_SESSION.search(n)):
        exp, user = HAPT_SESSION.search(name).groups()
        acc = source.table(name, 3)
        gyro = source.table(name.replace("acc_", "gyro_"), 3)
        if len(acc) != len(gyro):
            raise UserError(f"{source.where(name)}: {len(acc)} samples but the gyro file has "
                            f"{len(gyro)}; expected equal lengths")
        ids = np.full(len(acc), len(names) - 1 if background_label else UNLABELLED, np.int16)
        rows = labels_table[(labels_table[:, 0] == int(exp)) & (labels_table[:, 1] == int(user))]
        for _, _, activity, first, last in rows:
            if not (1 <= first <= last <= len(acc)) or not (1 <= activity <= len(names)):
                raise UserError(f"{source.where('RawData/labels.txt')}: row {exp} {user} "
                                f"{activity} {first} {last} is outside the session's "
                                f"{len(acc)} samples or the {len(names)} activities")
            ids[first - 1: last] = activity - 1
        sessions.append(Session(f"exp{exp}_user{user}", _subject_id(user),
                                np.hstack([acc, gyro]).astype(np.float32), ids))
    if not sessions:
        raise UserError(f"{source.where('RawData')}: no acc_expNN_userNN.txt sessions")
    return Dataset(
        name="hapt", root=str(path), sample_rate_hz=HAPT_RATE_HZ, channels=list(HAPT_CHANNELS),
        units=dict(HAPT_UNITS), labels=names, background_label=background_label,
        sessions=sessions,
        options={"background_label": background_label} if background_label else {},
    )


# --- windows for training -------------------------------------------------------------------


@dataclass
class Windows:
    x: np.ndarray  # (W, window, C) float32, raw units (normalise with the training statistics)
    y: np.ndarray  # (W,) int64 class index
    subjects: np.ndarray  # (W,) str
    dropped: int  # windows left out for mixing labels (below the purity threshold)


def make_windows(dataset: Dataset, subjects: list[str] | None, window: int, hop: int,
                 purity: float) -> Windows:
    """Labelled windows of the given subjects' sessions (all subjects for None)."""
    wanted = set(subjects) if subjects is not None else None
    xs, ys, subs, dropped = [], [], [], 0
    for s in dataset.sessions:
        if wanted is not None and s.subject not in wanted:
            continue
        y = window_labels(s.label_ids, window, hop, len(dataset.labels), purity)
        keep = y >= 0
        dropped += int((~keep).sum())
        xs.append(cut_windows(s.data, window, hop)[keep])
        ys.append(y[keep])
        subs.append(np.full(int(keep.sum()), s.subject))
    if not xs:
        return Windows(np.zeros((0, window, len(dataset.channels)), np.float32),
                       np.zeros(0, np.int64), np.zeros(0, str), dropped)
    return Windows(np.concatenate(xs), np.concatenate(ys), np.concatenate(subs), dropped)


def balanced_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of up to `per_class` windows of every class, drawn with `seed` (the sandbox's
    subset, and export's calibration windows so rare classes are calibrated too)."""
    rng = np.random.default_rng(seed)
    picks = [rng.permutation(np.flatnonzero(y == k))[:per_class] for k in np.unique(y)]
    return np.sort(np.concatenate(picks))


# --- subject-wise splits --------------------------------------------------------------------


@dataclass
class Split:
    train: list[str]
    val: list[str]
    test: list[str]

    def to_dict(self) -> dict:
        return {"train": self.train, "val": self.val, "test": self.test}


def split_subjects(subjects: list[str], seed: int, test_subjects: list[str] | None = None,
                   val_subjects: list[str] | None = None, test_fraction: float = 0.2,
                   val_fraction: float = 0.2) -> Split:
    """Split by subject so no person's windows fall on both sides.

    Named test (and validation) subjects are used as given; otherwise they are drawn with
    `seed`. Validation subjects always come from the non-test subjects.
    """
    known = set(subjects)
    for name, given in (("test", test_subjects), ("validation", val_subjects)):
        missing = [s for s in given or [] if s not in known]
        if missing:
            raise UserError(f"{name} subjects {', '.join(missing)} are not in the dataset "
                            f"(subjects: {', '.join(subjects)})")
    both = [s for s in test_subjects or [] if s in set(val_subjects or [])]
    if both:
        raise UserError(f"subject(s) {', '.join(both)} named as both test and validation "
                        "subjects; expected disjoint --test-subjects and --val-subjects")
    if len(subjects) < 3:
        raise UserError(f"need at least 3 subjects (or sessions) for a train/validation/test "
                        f"split, the dataset has {len(subjects)}")
    rng = np.random.default_rng(seed)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    if test_subjects is None:
        n_test = max(1, round(test_fraction * len(subjects)))
        test_subjects = order[:n_test]
    rest = [s for s in order if s not in set(test_subjects)]
    if val_subjects is None:
        n_val = max(1, round(val_fraction * len(rest)))
        val_subjects = rest[:n_val]
    train = [s for s in rest if s not in set(val_subjects)]
    if not train:
        raise UserError("no subjects left for training after the test and validation subjects")
    key = _subject_key
    return Split(sorted(train, key=key), sorted(val_subjects, key=key), sorted(test_subjects, key=key))


def dataset_info(dataset: Dataset) -> dict:
    """Summary for `gesturekit data info`: the keys DESIGN lists, plus segments and imbalance."""
    counts = dataset.class_counts()
    present = counts[counts > 0]
    total = sum(len(s.data) for s in dataset.sessions)
    return {
        "dataset": dataset.root,
        "subjects": dataset.subjects,
        "sessions": len(dataset.sessions),
        "samples": total,
        "sample_rate_hz": dataset.sample_rate_hz,
        "channels": dataset.channels,
        "units": dataset.units,
        "classes": dict(zip(dataset.labels, counts.tolist(), strict=True)),
        "segments": dict(zip(dataset.labels, dataset.class_segments().tolist(), strict=True)),
        "unlabelled_samples": int(total - counts.sum()),
        "background_label": dataset.background_label,
        "imbalance_ratio": float(present.max() / present.min()) if len(present) else 0.0,
    }
