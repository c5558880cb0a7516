"""The recording format: one CSV file per session plus an optional `dataset.toml`.

A session file has a header row: numeric channel columns, an optional time column and a
per-sample label column (empty = unlabelled). Writers append whole lines and flush them, so a
session cut short by a kill or a pulled cable is valid up to its last full line; readers drop
an unterminated last line for the same reason.
"""

from __future__ import annotations

import csv
import math
import os
import re
import tomllib
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gesturekit.device.core.files import write_atomic
from gesturekit.device.core.hapt import HaptSource
from gesturekit.errors import UserError

DEFAULT_LABEL_COLUMN = "label"
DATASET_TOML = "dataset.toml"
MAX_LINE_BYTES = 4096  # a recording line is a few hundred bytes; longer is not a recording
MAX_SPEC_BYTES = 1 << 16  # a dataset.toml is a dozen lines
FLOAT32_MAX = float(np.finfo(np.float32).max)  # samples are float32: larger is inf, not data
MAX_LABEL_CHARS = 200
TIME_COLUMN_NAMES = ("t", "time", "timestamp", "time_s", "time_ms")  # a time column by its name


# The UCI HAPT raw layout (`RawData/acc_expNN_userNN.txt` + `gyro_...`): 50 Hz, acc in g, gyro
# in rad/s. Read by the dataset importer (train/) and by `simulate`/`plot` for one session.
HAPT_SESSION = re.compile(r"acc_exp(\d+)_user(\d+)\.txt$")  # groups: experiment, user
HAPT_CHANNELS = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
HAPT_UNITS = {**dict.fromkeys(HAPT_CHANNELS[:3], "g"), **dict.fromkeys(HAPT_CHANNELS[3:], "rad/s")}
HAPT_RATE_HZ = 50.0
DEFAULT_REFERENCE_SECONDS = 3.0  # of the reference pose at the start of a session or stream

@dataclass
class RecordingSpec:
    """How to read the sessions of a dataset (the keys of `dataset.toml`)."""

    sample_rate_hz: float | None = None
    channels: list[str] | None = None  # None: every column but the time and label columns
    units: dict[str, str] = field(default_factory=dict)
    label_column: str = DEFAULT_LABEL_COLUMN
    time_column: str | None = None
    time_unit: str = "s"
    background_label: str | None = None
    subject_pattern: str | None = None
    # The pose every session starts in, and how many seconds of it set the session's frame
    # (`device.core.frame`)
    reference_label: str | None = None
    reference_seconds: float | None = None

    def merged(self, overrides: dict) -> RecordingSpec:
        """A copy with the non-None values of `overrides` (CLI flags) applied."""
        values = {k: v for k, v in overrides.items() if v is not None}
        check_spec_keys(values, "command-line options")
        if "subject_pattern" in values:
            check_subject_pattern(values["subject_pattern"], "--subject-pattern")
        return RecordingSpec(**{**self.__dict__, **values})


SPEC_KEYS = tuple(RecordingSpec.__dataclass_fields__)


def check_spec_keys(values: dict, where: str) -> None:
    """Refuse keys that are not part of the recording spec."""
    for key in values:
        if key not in SPEC_KEYS:
            raise UserError(f"{where}: unknown key '{key}' (expected one of: {', '.join(SPEC_KEYS)})")


def check_subject_pattern(pattern: str, where: str) -> None:
    """Refuse a pattern `re` cannot compile; a huge repetition count is an OverflowError."""
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as e:
        raise UserError(f"{where} is not a valid regex ({e})") from None


def read_spec(path: str | os.PathLike) -> RecordingSpec:
    """Read and check a `dataset.toml`."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise UserError(f"{path}: larger than {MAX_SPEC_BYTES} bytes; not a dataset.toml")
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read ({e})") from e
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{path}: not valid TOML ({e})") from e
    check_spec_keys(values, str(path))
    expected = {
        "sample_rate_hz": (int, float),
        "channels": list,
        "units": dict,
        "label_column": str,
        "time_column": str,
        "time_unit": str,
        "background_label": str,
        "subject_pattern": str,
        "reference_label": str,
        "reference_seconds": (int, float),
    }
    for key, value in values.items():
        if not isinstance(value, expected[key]) or isinstance(value, bool):
            raise UserError(f"{path}: key '{key}' has the wrong type ({type(value).__name__})")
    if "channels" in values and not all(isinstance(c, str) for c in values["channels"]):
        raise UserError(f"{path}: key 'channels' must be a list of column names")
    if not all(isinstance(u, str) for u in values.get("units", {}).values()):
        raise UserError(f"{path}: key 'units' must map channel names to unit names, "
                        'e.g. { ax = "g" }')
    if values.get("time_unit", "s") not in ("s", "ms"):
        raise UserError(f"{path}: key 'time_unit' must be \"s\" or \"ms\", got {values['time_unit']!r}")
    if "sample_rate_hz" in values and not 0 < values["sample_rate_hz"] < math.inf:
        raise UserError(f"{path}: key 'sample_rate_hz' must be a positive number of Hz")
    if "subject_pattern" in values:
        check_subject_pattern(values["subject_pattern"], f"{path}: key 'subject_pattern'")
    if "reference_seconds" in values and not 0 < values["reference_seconds"] < math.inf:
        raise UserError(f"{path}: key 'reference_seconds' must be a positive number of seconds")
    spec = RecordingSpec(**values)
    spec.sample_rate_hz = float(spec.sample_rate_hz) if spec.sample_rate_hz else None
    return spec


def find_spec(path: str | os.PathLike) -> Path | None:
    """The `dataset.toml` that describes `path`: at the root of a dataset folder; for a session
    file, the nearest one in its folder or the two above (a dataset may have sub-folders)."""
    path = Path(path)
    folders = [path] if path.is_dir() else list(path.parents)[:3]
    return next((d / DATASET_TOML for d in folders if (d / DATASET_TOML).is_file()), None)


def rate_from_time(times: list[np.ndarray | None], spec: RecordingSpec, where: str,
                   columns: list[str] = ()) -> float:
    """The sample rate of sessions from their time columns (read as seconds): one over the
    median step of them all, rounded to a thousandth of a hertz. `columns`: the sessions'
    other columns, to name a time column that is there but not declared."""
    steps = [np.diff(t) for t in times if t is not None and len(t) > 1]
    if not steps:
        named = next((c for c in columns if c.lower() in TIME_COLUMN_NAMES), None)
        if spec.time_column is None and named is not None:
            raise UserError(f"{where}: sample rate unknown; column '{named}' looks like a time "
                            f"column: declare it (time_column = \"{named}\" in {DATASET_TOML}, or "
                            f"--time-column {named}), or set sample_rate_hz (or --rate)")
        raise UserError(f"{where}: sample rate unknown; set sample_rate_hz in {DATASET_TOML} "
                        "(or --rate), or add a time column")
    step = float(np.median(np.concatenate(steps)))
    if not step > 0:
        raise UserError(f"{where}: time column '{spec.time_column}' does not increase (median "
                        f"step {step:g}); fix the times, or give the rate (--rate)")
    return round(1.0 / step, 3)


def write_spec(path: str | os.PathLike, spec: RecordingSpec) -> None:
    """Write a `dataset.toml` with the spec's set keys (a tiny TOML writer for flat values)."""

    def value(v) -> str:
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in spec.__dict__.items() if v not in (None, {}, [])]
    write_atomic(path, "\n".join(lines) + "\n")


def label_problem(label: str) -> str | None:
    """Why `label` cannot be a recording's label, or None. What the writer accepts the reader
    reads back exactly: the label field is CSV-quoted when it holds a comma or a quote, and
    the reader strips spaces and reads one sample per line, so a label must not begin or end
    with a space, nor hold control characters, line breaks or non-UTF-8 text."""
    if len(label) > MAX_LABEL_CHARS:
        return f"longer than {MAX_LABEL_CHARS} characters"
    for ch in label:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            return f"holds the control character or line break {ch!r}"
    if label != label.strip():
        return "begins or ends with a space"
    return None


def csv_field(text: str) -> str:
    """`text` as one CSV field: quoted (quotes doubled) when it holds a comma or a quote."""
    return f'"{text.replace(chr(34), chr(34) * 2)}"' if "," in text or '"' in text else text


@dataclass
class Recording:
    """One session: samples (N, C) float32 in channel order, labels (N,) str ("" = unlabelled)."""

    path: str
    channels: list[str]
    data: np.ndarray
    labels: np.ndarray
    time: np.ndarray | None = None


def _number(text: str, where: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{where}: column '{column}': {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UserError(f"{where}: column '{column}': {text} is not a finite number")
    return value


def _next_row(rows, path: Path, line: int) -> list[str]:
    """The CSV row of `line`; a quoted field that runs past its line is an error (one sample
    per line), as is anything the csv module refuses."""
    try:
        row = next(rows)
    except csv.Error as e:
        raise UserError(f"{path}:{line}: not valid CSV ({e})") from None
    if rows.line_num != line:
        raise UserError(f"{path}:{line}: a quoted field runs over the end of the line; "
                        "expected one sample per line")
    return row


def read_recording(path: str | os.PathLike, spec: RecordingSpec | None = None) -> Recording:
    """Read one session CSV; errors name the file, line and column.

    An unterminated last line (a writer killed mid-line) is dropped, not an error.
    """
    spec = spec or RecordingSpec()
    path = Path(path)
    lines = _csv_lines(path)
    rows = csv.reader(lines)
    header = [h.strip() for h in _next_row(rows, path, 1)]
    label_idx, time_idx, channels, chan_idx = _columns(header, spec, path)
    values = np.empty((len(lines) - 1, len(chan_idx)))  # as parsed; float32 once checked
    times = np.empty(len(lines) - 1) if time_idx is not None else None
    labels: list[str] = []
    for n in range(len(lines) - 1):
        where = f"{path}:{n + 2}"
        row = _next_row(rows, path, n + 2)
        if len(row) != len(header):
            raise UserError(f"{where}: expected {len(header)} fields ({','.join(header)}), got {len(row)}")
        values[n] = [_number(row[i], where, header[i]) for i in chan_idx]
        if times is not None:
            times[n] = _number(row[time_idx], where, header[time_idx])
        labels.append(row[label_idx].strip())
    _check_float32(values, lines, header, chan_idx, path)
    if times is not None and spec.time_unit == "ms":
        times = times / 1000.0
    return Recording(str(path), channels, values.astype(np.float32), np.array(labels, dtype=str),
                     times)


def _check_float32(values: np.ndarray, lines: list[str], header: list[str], chan_idx: list[int],
                   path: Path) -> None:
    """Samples are float32: the first of the parsed `values` beyond its range is an error
    naming its line, column and text (stored, it would be inf)."""
    bad = np.argwhere(np.abs(values) > FLOAT32_MAX)
    if not len(bad):
        return
    n, j = (int(v) for v in bad[0])
    i = chan_idx[j]
    text = next(csv.reader([lines[n + 1]]))[i].strip()
    raise UserError(f"{path}:{n + 2}: column '{header[i]}': {text} is beyond float32's range "
                    f"(±{FLOAT32_MAX:.4g}); expected a sensor reading")


def _csv_lines(path: Path) -> list[str]:
    """The file's whole lines (the header and at least one sample), each with its line end."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: byte {e.start}: not UTF-8 text; expected a CSV recording") from e
    # Lines end at "\n" only (str.splitlines would also split at \x1c, \u2028, ...).
    lines = text.split("\n")
    lines = [line + "\n" for line in lines[:-1]]  # the last piece is unterminated: dropped
    if not lines:
        raise UserError(f"{path}: empty file; expected a header row of column names")
    if len(lines) == 1:
        raise UserError(f"{path}: a header row and no samples (a recording stopped before its "
                        "first sample?); expected sample lines after it: remove the file or record again")
    for n, line in enumerate(lines):
        if len(line) > MAX_LINE_BYTES:
            raise UserError(f"{path}:{n + 1}: line longer than {MAX_LINE_BYTES} characters; "
                            "expected one sample per line")
    return lines


def _columns(header: list[str], spec: RecordingSpec,
             path: Path) -> tuple[int, int | None, list[str], list[int]]:
    """Where the label, time and channel columns are: (label, time or None, channel names,
    channel indices); the spec's channels by name, else every other column in order."""
    if len(set(header)) != len(header):
        raise UserError(f"{path}:1: duplicate column names in header {header}")

    def column(name: str, what: str) -> int:
        if name not in header:
            raise UserError(f"{path}:1: no {what} column '{name}' in header (have: {', '.join(header)})")
        return header.index(name)

    label_idx = column(spec.label_column, "label")
    time_idx = column(spec.time_column, "time") if spec.time_column else None
    if spec.channels is not None:
        channels = list(spec.channels)
        chan_idx = [column(c, "channel") for c in channels]
    else:
        chan_idx = [i for i in range(len(header)) if i not in (label_idx, time_idx)]
        channels = [header[i] for i in chan_idx]
    if not chan_idx:
        raise UserError(f"{path}:1: no channel columns in header {header}")
    return label_idx, time_idx, channels, chan_idx


class RecordingWriter:
    """Appends sample batches to a session CSV, durably.

    Every `append` writes whole lines, flushes and fsyncs, so a kill leaves a file that is
    valid up to its last full line. Opening an existing file resumes it: an unterminated last
    line is cut off first and the header must match.
    """

    def __init__(self, path: str | os.PathLike, channels: list[str], time_column: str | None = "t",
                 label_column: str = DEFAULT_LABEL_COLUMN, decimals: int = 5):
        self.path = Path(path)
        self.header = ([time_column] if time_column else []) + list(channels) + [label_column]
        self._has_time = time_column is not None
        self._fmt = f"{{:.{decimals}f}}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = not self.path.exists()
        self._file = open(self.path, "a+b")  # noqa: SIM115 - closed by close()/__exit__
        self._file.seek(0)
        existing = self._file.read()
        self._bytes_before = 0
        if existing:
            cut = existing.rfind(b"\n") + 1
            self._bytes_before = cut
            if cut < len(existing):
                self._file.truncate(cut)  # drop the interrupted line; samples before it stay
            first = existing.split(b"\n", 1)[0].decode("utf-8", "replace").strip()
            if first.split(",") != self.header:
                self._file.close()
                raise UserError(f"{self.path}:1: existing header {first!r} does not match "
                                f"{','.join(self.header)!r}; choose another file")
            self.samples_before = max(existing[:cut].count(b"\n") - 1, 0)
        else:
            self.samples_before = 0
            self._write_lines([",".join(self.header)])

    def _write_lines(self, lines: list[str]) -> None:
        self._file.seek(0, os.SEEK_END)
        self._file.write(("\n".join(lines) + "\n").encode("utf-8"))
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, data: np.ndarray, labels: list[str] | str, times: np.ndarray | None = None) -> None:
        """Append samples (N, C) with one label each (or one label for all). A label the
        reader could not read back (`label_problem`) is refused before anything is written."""
        data = np.atleast_2d(data)
        if isinstance(labels, str):
            labels = [labels] * len(data)
        if self._has_time and times is None:
            raise ValueError("this recording has a time column: pass times")
        fields_of = {}
        for label in set(labels[:len(data)]):
            problem = label_problem(label)
            if problem:
                raise UserError(f"{self.path}: label {label!r} {problem}; choose another label")
            fields_of[label] = csv_field(label)
        fmt = self._fmt
        lines = []
        for i, row in enumerate(data):
            fields = ([fmt.format(times[i])] if self._has_time else [])
            fields += [fmt.format(v) for v in row] + [fields_of[labels[i]]]
            lines.append(",".join(fields))
        if lines:
            self._write_lines(lines)

    def close(self) -> None:
        self._file.close()

    def discard(self) -> None:
        """Take back what this writer wrote: a file it created is removed, a resumed one cut
        back to where it ended."""
        self.close()
        if self.created:
            self.path.unlink(missing_ok=True)
        else:
            os.truncate(self.path, self._bytes_before)

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Session:
    data: np.ndarray  # (N, C) float32
    channels: list[str]
    sample_rate_hz: float


def load_session(path: str | os.PathLike, rate_hz: float | None = None) -> Session:
    """A recording-format CSV (rate from a nearby dataset.toml, the time column or `rate_hz`)
    or a HAPT raw session file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such recording file")
    if HAPT_SESSION.search(path.name):  # its gyro file beside it
        return Session(HaptSource(path.parent).session(path.name), list(HAPT_CHANNELS), HAPT_RATE_HZ)
    toml = find_spec(path)
    spec = read_spec(toml) if toml else RecordingSpec()
    rec = read_recording(path, spec)
    rate = rate_hz or spec.sample_rate_hz or rate_from_time([rec.time], spec, str(path), rec.channels)
    return Session(rec.data, rec.channels, float(rate))
