"""Datasets: a folder of recording-format sessions, or the UCI HAPT raw layout (folder or zip).

Everything here is numpy only. A `Dataset` holds whole sessions with per-sample class ids;
`make_windows` cuts them with the shared windowing code of `gesturekit.device.core.windowing`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from gesturekit.device.core.frame import (
    ReferencePose,
    accelerometer,
    degrees_between,
    gravity_direction,
    reference_samples,
    rotation_onto,
    triads,
    turn,
)
from gesturekit.device.core.hapt import HaptSource, activity_ids, activity_names, is_hapt
from gesturekit.device.core.model_info import rate_is_off
from gesturekit.device.core.recording import (
    DATASET_TOML,
    DEFAULT_REFERENCE_SECONDS,
    HAPT_CHANNELS,
    HAPT_RATE_HZ,
    HAPT_SESSION,
    HAPT_UNITS,
    Recording,
    RecordingSpec,
    find_spec,
    rate_from_time,
    read_recording,
    read_spec,
)
from gesturekit.device.core.windowing import UNLABELLED, cut_windows, label_runs, window_labels
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
    # The pose each session starts in (HAPT: STANDING): its first seconds set the session's frame
    reference_label: str | None = None
    reference_seconds: float = DEFAULT_REFERENCE_SECONDS

    @property
    def subjects(self) -> list[str]:
        return sorted({s.subject for s in self.sessions}, key=subject_order)

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


def subject_order(subject: str) -> tuple:
    """The one sort key for subjects: numbers in numeric order, then names alphabetically."""
    return (0, int(subject), "") if subject.isdigit() else (1, 0, subject)


def _subject_id(text: str) -> str:
    return str(int(text)) if text.isdigit() else text


def load_dataset(path: str | os.PathLike, **overrides) -> Dataset:
    """Load a dataset folder (recording format) or a UCI HAPT folder or zip.

    `overrides` are `dataset.toml` keys given on the command line; for HAPT only
    `background_label` (unlabelled time becomes that class) and the reference pose apply.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such dataset folder or file")
    if is_hapt(path):
        return load_hapt(path, overrides.get("background_label"), overrides.get("reference_label"),
                         overrides.get("reference_seconds"))
    return load_recordings(path, **overrides)


def load_recordings(root: Path, **overrides) -> Dataset:
    """A folder of session CSVs (or one CSV) with an optional `dataset.toml`."""
    toml = find_spec(root)
    spec = read_spec(toml) if toml else RecordingSpec()
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
                raise UserError(f"{toml or root}: subject_pattern {spec.subject_pattern!r} does not match "
                                f"session file '{rel}' (or has no group)")
            subject = _subject_id(m.group(1))
        else:
            subject = rel  # no subjects: every session stands alone in splits
        labels = rec.labels
        if spec.background_label:
            labels = np.where(labels == "", spec.background_label, labels)
        ids = np.array([index.get(lab, UNLABELLED) for lab in labels], dtype=np.int16)
        sessions.append(Session(rel, subject, rec.data, ids))

    rate = spec.sample_rate_hz or rate_from_time([r.time for r in recordings], spec, str(root),
                                                  channels)
    check_one_rate(recordings, rate, spec, "its sample_rate_hz" if spec.sample_rate_hz
                   else "the median step of its time columns")
    return Dataset(
        name=root.name, root=str(root), sample_rate_hz=rate, channels=channels,
        units=dict(spec.units), labels=names, background_label=spec.background_label,
        sessions=sessions, options={k: v for k, v in overrides.items() if v is not None},
        reference_label=spec.reference_label,
        reference_seconds=spec.reference_seconds or DEFAULT_REFERENCE_SECONDS,
    )


def check_one_rate(recordings: list[Recording], rate: float, spec: RecordingSpec, source: str) -> None:
    """Refuse a session whose time column gives another rate than the dataset's (`source` says
    where that came from): windows of the same length at two rates are different gestures."""
    for rec in recordings:
        if rec.time is None or len(rec.time) < 2:
            continue
        own = rate_from_time([rec.time], spec, rec.path)
        if rate_is_off(own, rate):
            raise UserError(f"{rec.path}: {own:g} Hz by its time column '{spec.time_column}', but "
                            f"the dataset is at {rate:g} Hz ({source}); expected one sample rate: "
                            "resample the session, or keep it in a dataset of its own")


def session_file(dataset: Dataset, session: Session) -> Path | None:
    """The file a session was read from (for `simulate` and `plot`); None inside a zip."""
    root = Path(dataset.root)
    if root.is_file():
        return None if root.suffix == ".zip" else root
    if is_hapt(root):
        return root / "RawData" / f"acc_{session.name}.txt"
    return root / session.name


# --- UCI HAPT raw layout -------------------------------------------------------------------



def load_hapt(path: Path, background_label: str | None = None, reference_label: str | None = None,
              reference_seconds: float | None = None) -> Dataset:
    """The UCI HAPT raw data: 61 sessions of 30 subjects, 50 Hz, acc in g, gyro in rad/s.
    Every session starts with the person standing still: STANDING is the reference pose.

    `labels.txt` rows are (experiment, user, activity, first, last) with inclusive, 1-based
    sample ranges. Unlabelled samples (people moving between activities) are left out unless
    `background_label` names a class: a new last class, or an activity it names.
    """
    source = HaptSource(path)
    names = activity_names(source)
    activities = len(names)
    if background_label and background_label not in names:
        names = [*names, background_label]
    unlabelled = names.index(background_label) if background_label else UNLABELLED
    sessions = []
    for name in sorted(n for n in source.names if HAPT_SESSION.search(n)):
        exp, user = HAPT_SESSION.search(name).groups()
        data = source.session(name)
        ids = activity_ids(source, int(exp), int(user), len(data), activities)
        ids[ids == UNLABELLED] = unlabelled
        sessions.append(Session(f"exp{exp}_user{user}", _subject_id(user),
                                data, ids))
    if not sessions:
        raise UserError(f"{source.where('RawData')}: no acc_expNN_userNN.txt sessions")
    return Dataset(
        name="hapt", root=str(path), sample_rate_hz=HAPT_RATE_HZ, channels=list(HAPT_CHANNELS),
        units=dict(HAPT_UNITS), labels=names, background_label=background_label,
        sessions=sessions, reference_label=reference_label or "STANDING",
        reference_seconds=reference_seconds or DEFAULT_REFERENCE_SECONDS,
        options={k: v for k, v in (("background_label", background_label),
                                   ("reference_label", reference_label),
                                   ("reference_seconds", reference_seconds)) if v},
    )


# --- the reference-pose frame ---------------------------------------------------------------


def fit_reference_pose(dataset: Dataset, train_subjects: list[str]) -> ReferencePose:
    """The dataset's reference pose with its gravity: the median direction over the training
    subjects' sessions (`device.core.frame`)."""
    pose = ReferencePose(dataset.reference_label, dataset.reference_seconds)
    found = _pose_gravity(dataset, pose)
    train = [g for s in dataset.sessions if s.subject in train_subjects
             if (g := found[s.name]) is not None]
    if not train:
        raise UserError(f"{dataset.root}: no training session has a {pose.label!r} sample to set "
                        "the reference pose's gravity; name another reference_label")
    target = np.median(train, axis=0)
    return replace(pose, gravity=tuple(float(v) for v in target / np.linalg.norm(target)))


def turn_to_pose(dataset: Dataset, pose: ReferencePose) -> tuple[Dataset, dict]:
    """The dataset with each session turned so that the gravity of its reference pose (the first
    `pose.seconds` of its first run of `pose.label`) points along `pose.gravity`; and what was
    done: the pose, each session's angle, the sessions without the pose (left as they are)."""
    found, target = _pose_gravity(dataset, pose), np.asarray(pose.gravity)
    groups, sessions, degrees = triads(dataset.channels), [], {}
    for s in dataset.sessions:
        if (g := found[s.name]) is not None:
            s = replace(s, data=turn(s.data, groups, rotation_onto(g, target)))
            degrees[s.name] = round(degrees_between(g, target), 2)
        sessions.append(s)
    return replace(dataset, sessions=sessions), {
        "pose": pose.to_dict(), "degrees": degrees,
        "without_pose": [name for name, g in found.items() if g is None]}


def _pose_gravity(dataset: Dataset, pose: ReferencePose) -> dict[str, np.ndarray | None]:
    """Each session's gravity direction in the pose (None: no sample of the pose's class)."""
    if pose.label not in dataset.labels:
        raise UserError(f"{dataset.root}: reference_label {pose.label!r} is not one of its classes "
                        f"({', '.join(dataset.labels)})")
    acc = accelerometer(dataset.channels, dataset.units, dataset.root)
    samples = reference_samples(pose.seconds, dataset.sample_rate_hz)
    label_id = dataset.labels.index(pose.label)
    return {s.name: pose_gravity(s.data[:, acc], s.label_ids == label_id, samples)
            for s in dataset.sessions}


def pose_gravity(acc: np.ndarray, in_pose: np.ndarray, samples: int) -> np.ndarray | None:
    """The gravity direction of accelerometer samples (N, 3) over the first `samples` of the
    first run where `in_pose` (N,) holds; None when it never does."""
    first = next(((a, b) for a, b in label_runs(in_pose.astype(np.int8)) if in_pose[a]), None)
    return gravity_direction(acc[first[0]:min(first[1], first[0] + samples)]) if first else None


# --- windows for training -------------------------------------------------------------------


@dataclass
class Windows:
    x: np.ndarray  # (W, window, C) float32, raw units (normalise with the training statistics)
    y: np.ndarray  # (W,) int64 class index
    subjects: np.ndarray  # (W,) str
    dropped: int  # windows left out for mixing labels (below the purity threshold)
    sessions: np.ndarray | None = None  # (W,) str, the session each window was cut from


def make_windows(dataset: Dataset, subjects: list[str] | None, window: int, hop: int,
                 purity: float) -> Windows:
    """Labelled windows of the given subjects' sessions (all subjects for None)."""
    wanted = set(subjects) if subjects is not None else None
    xs, ys, subs, names, dropped = [], [], [], [], 0
    for s in dataset.sessions:
        if wanted is not None and s.subject not in wanted:
            continue
        y = window_labels(s.label_ids, window, hop, len(dataset.labels), purity)
        keep = y >= 0
        dropped += int((~keep).sum())
        xs.append(cut_windows(s.data, window, hop)[keep])
        ys.append(y[keep])
        subs.append(np.full(int(keep.sum()), s.subject))
        names.append(np.full(int(keep.sum()), s.name))
    if not xs:
        return Windows(np.zeros((0, window, len(dataset.channels)), np.float32),
                       np.zeros(0, np.int64), np.zeros(0, str), dropped, np.zeros(0, str))
    return Windows(np.concatenate(xs), np.concatenate(ys), np.concatenate(subs), dropped,
                   np.concatenate(names))


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
                   val_fraction: float = 0.2, train_subjects: list[str] | None = None) -> Split:
    """Split by subject so no person's windows fall on both sides.

    Named test (and validation) subjects are used as given; otherwise they are drawn with
    `seed`. Validation subjects always come from the non-test subjects. Training uses every
    other subject, or only `train_subjects` (a learning curve: fewer people, same test).
    """
    known = set(subjects)
    for name, given in (("test", test_subjects), ("validation", val_subjects),
                        ("training", train_subjects)):
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
    if train_subjects is not None:
        taken = [s for s in train_subjects if s not in set(train)]
        if taken:
            raise UserError(f"training subject(s) {', '.join(taken)} are test or validation "
                            f"subjects; expected some of {', '.join(train)}")
        train = list(train_subjects)
    if not train:
        raise UserError("no subjects left for training after the test and validation subjects")
    key = subject_order
    return Split(sorted(train, key=key), sorted(val_subjects, key=key), sorted(test_subjects, key=key))


def dataset_info(dataset: Dataset) -> dict:
    """Summary for `gesturekit data info`: the keys docs/design.md lists, plus segments and imbalance."""
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
        "reference_label": dataset.reference_label,
        "reference_seconds": dataset.reference_seconds,
        "imbalance_ratio": float(present.max() / present.min()) if len(present) else 0.0,
    }
