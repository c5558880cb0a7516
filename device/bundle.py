"""The model bundle: a folder with `model.json` and the model files.

The model carries its labels, channels, rate, window, hop and normalisation, so the runner
checks a stream against it on load instead of trusting command-line numbers. `export` writes
the bundle through `write_model_json`; everything that reads one goes through `load_bundle`.

Format 2 added `event_classes` (the classes announced as events; the others are states, shown
but never announced) and `postprocess.per_class` (settings per class, from `gesturekit
calibrate`). A format-1 bundle still loads: every class but the background is an event.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gesturekit.device.windowing import Normalization
from gesturekit.errors import UserError

FORMAT_VERSION = 2
MODEL_JSON = "model.json"
MAX_MODEL_JSON_BYTES = 1 << 20
MAX_WINDOW = 100_000  # samples; the ring buffer holds two windows
# A stream or recording further than this from the model's rate fills a window with another
# stretch of time than the model learned on: live a warning (the stream goes on), offline an error.
RATE_TOLERANCE = 0.1

# Post-processing defaults written into every bundle; `run` flags override them.
# `postprocess.per_class` may override any of them for one class: {label: {key: value}}.
POSTPROCESS_RANGES = {"smoothing": (1, math.inf), "threshold": (0.0, 1.0),
                      "min_consecutive": (1, math.inf), "refractory_s": (0.0, math.inf)}
DEFAULT_POSTPROCESS = {
    "smoothing": 3,  # moving average over the last k window outputs
    "threshold": 0.6,  # smoothed confidence needed to announce
    "min_consecutive": 2,  # windows in a row that agree
    "refractory_s": 1.0,  # silence after an event
}


@dataclass
class Bundle:
    root: Path
    labels: list[str]  # index = model output index
    background_label: str | None
    channels: list[str]  # model-input order
    units: dict[str, str]
    sample_rate_hz: float
    window: int
    hop: int
    normalization: Normalization
    stateful: bool  # reset variables (LSTM state) before every window
    files: dict[str, str]  # kind ("float", "int8", "onnx", ...) -> file name in the bundle
    quantization: dict = field(default_factory=dict)  # {"input"|"output": {"scale", "zero_point"}}
    ops: dict = field(default_factory=dict)  # file name -> list of op names
    postprocess: dict = field(default_factory=lambda: dict(DEFAULT_POSTPROCESS))
    training: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    event_classes: list[str] | None = None  # announced classes; None: every class but the background
    calibration: dict = field(default_factory=dict)  # what `gesturekit calibrate` chose, and on what
    format_version: int = FORMAT_VERSION

    def path(self, kind: str) -> Path:
        """Path of the model file of `kind`; a clear error when the bundle has none."""
        if kind not in self.files:
            raise UserError(f"{self.root}: bundle has no '{kind}' model "
                            f"(has: {', '.join(sorted(self.files))})")
        return self.root / self.files[kind]

    @property
    def background_index(self) -> int | None:
        return self.labels.index(self.background_label) if self.background_label else None

    @property
    def events(self) -> list[str]:
        """The classes announced as events (model order)."""
        return default_events(self.labels, self.background_label, self.event_classes)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("root")
        d["normalization"] = self.normalization.to_dict()
        return {"format_version": d.pop("format_version"), **d}


def default_events(labels: list[str], background: str | None,
                   event_classes: list[str] | None) -> list[str]:
    """`event_classes` in model order; None means every class but the background."""
    chosen = set(labels) - {background} if event_classes is None else set(event_classes)
    return [label for label in labels if label in chosen]


def check_event_classes(event_classes: list[str] | None, labels: list[str],
                        background: str | None, where: str) -> list[str] | None:
    """Event classes a user named: known labels, not the background (None: the default)."""
    if event_classes is None:
        return None
    bad = [c for c in event_classes if c not in labels or c == background]
    if bad or not event_classes:
        raise UserError(f"{where}: --event-classes {','.join(event_classes)}: expected labels of "
                        f"the model other than the background ({', '.join(labels)})")
    return [label for label in labels if label in set(event_classes)]


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` with `data` (text is written as UTF-8) in one rename: a reader (or a
    Ctrl-C) never finds half a file, and a failure leaves the old file as it was."""
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


def write_model_json(bundle: Bundle) -> Path:
    """Write `model.json` into the bundle's folder (atomically: calibrate rewrites it in place)."""
    path = bundle.root / MODEL_JSON
    bundle.event_classes = bundle.events  # always explicit in the file
    write_atomic(path, json.dumps(bundle.to_json(), indent=2) + "\n")
    return path


def check_postprocess(values: dict, where: str = "", labels: list[str] | None = None) -> dict:
    """The one check of post-processing settings (a bundle's, or with `run` flags applied):
    known keys only, each a finite number of the right type within its range, and
    `per_class` overrides only for known `labels` (when given). `where` prefixes the error,
    e.g. the model.json path."""
    unknown = sorted(set(values) - set(DEFAULT_POSTPROCESS) - {"per_class"})
    if unknown:
        raise UserError(f"{where}unknown postprocess keys {unknown}; expected "
                        f"{', '.join(DEFAULT_POSTPROCESS)} or per_class")
    per_class = values.get("per_class", {})
    if not isinstance(per_class, dict):
        raise UserError(f"{where}postprocess.per_class must be an object {{label: settings}}")
    for label, settings in per_class.items():
        if labels is not None and label not in labels:
            raise UserError(f"{where}postprocess.per_class names {label!r}, not one of the labels")
        if not isinstance(settings, dict):
            raise UserError(f"{where}postprocess.per_class.{label} must be an object of settings")
        unknown = sorted(set(settings) - set(DEFAULT_POSTPROCESS))
        if unknown:
            raise UserError(f"{where}unknown postprocess.per_class.{label} keys {unknown}; "
                            f"expected {', '.join(DEFAULT_POSTPROCESS)}")
        _check_settings(settings, f"{where}postprocess.per_class.{label}.")
    _check_settings({k: v for k, v in values.items() if k != "per_class"}, f"{where}postprocess.")
    return values


def _check_settings(values: dict, prefix: str) -> None:
    for key, value in values.items():
        kind = int if isinstance(DEFAULT_POSTPROCESS[key], int) else (int, float)
        low, high = POSTPROCESS_RANGES[key]
        if (not isinstance(value, kind) or isinstance(value, bool) or not math.isfinite(value)
                or not low <= value <= high):
            raise UserError(f"{prefix}{key} must be a finite "
                            f"{'whole number' if kind is int else 'number'} within "
                            f"{low:g}..{high:g} (got {value!r})")


def load_bundle(root: str | os.PathLike) -> Bundle:
    """Read and check a bundle folder; every error names the field and what was expected."""
    root = Path(root)
    path = root / MODEL_JSON
    if not path.is_file():
        raise UserError(f"{root}: not a model bundle (no {MODEL_JSON}); make one with "
                        "`gesturekit export RUN --out BUNDLE`")
    if path.stat().st_size > MAX_MODEL_JSON_BYTES:
        raise UserError(f"{path}: larger than {MAX_MODEL_JSON_BYTES} bytes; not a model.json")
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise UserError(f"{path}: expected a JSON object")

    def get(key: str, kind: type | tuple, required: bool = True):
        if key not in d:
            if required:
                raise UserError(f"{path}: missing field '{key}'")
            return None
        value = d[key]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            raise UserError(f"{path}: field '{key}' has the wrong type ({type(value).__name__})")
        return value

    version = get("format_version", int)
    if version < 1:
        raise UserError(f"{path}: format_version {version}; expected 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise UserError(f"{path}: format_version {version} is newer than this gesturekit "
                        f"understands ({FORMAT_VERSION}); upgrade gesturekit")
    labels = get("labels", list)
    channels = get("channels", list)
    if not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{path}: field 'labels' must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise UserError(f"{path}: field 'labels' names a class twice ({labels})")
    if not channels or not all(isinstance(x, str) for x in channels):
        raise UserError(f"{path}: field 'channels' must be a non-empty list of names")
    background = get("background_label", (str, type(None)), required=False)  # null: none
    if background is not None and background not in labels:
        raise UserError(f"{path}: background_label {background!r} is not one of the labels")
    window, hop = get("window", int), get("hop", int)
    if not (0 < window <= MAX_WINDOW and 0 < hop <= MAX_WINDOW):
        raise UserError(f"{path}: window and hop must be within 1..{MAX_WINDOW} samples "
                        f"(got {window}, {hop})")
    rate = float(get("sample_rate_hz", (int, float)))
    if not 0 < rate < math.inf:
        raise UserError(f"{path}: sample_rate_hz must be a positive number (got {rate})")
    norm = get("normalization", dict)
    try:
        normalization = Normalization.from_dict(norm)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path}: field 'normalization' needs numeric 'mean' and 'std' ({e})") from e
    for name, values in (("mean", normalization.mean), ("std", normalization.std)):
        if values.shape != (len(channels),):
            raise UserError(f"{path}: normalization.{name} has {values.size} values for "
                            f"{len(channels)} channels")
    if not (np.isfinite(normalization.mean).all() and np.isfinite(normalization.std).all()
            and (normalization.std > 0).all()):
        raise UserError(f"{path}: normalization.mean must be finite and normalization.std "
                        "finite and positive")
    files = get("files", dict)
    for kind, name in files.items():
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise UserError(f"{path}: files.{kind} must be a plain file name inside the bundle")
    postprocess = check_postprocess(
        {**DEFAULT_POSTPROCESS, **(get("postprocess", dict, required=False) or {})}, f"{path}: ",
        labels)
    event_classes = get("event_classes", list, required=False)  # format 1: none (the default)
    if event_classes is not None:
        bad = [c for c in event_classes if not isinstance(c, str) or c not in labels]
        if bad or len(set(event_classes)) != len(event_classes):
            raise UserError(f"{path}: field 'event_classes' must name labels, each once "
                            f"(got {event_classes}; labels {labels})")
        if background is not None and background in event_classes:
            raise UserError(f"{path}: event_classes names the background class {background!r}, "
                            "which is never announced")
    return Bundle(
        root=root, labels=labels, background_label=background, channels=channels,
        units=get("units", dict, required=False) or {}, sample_rate_hz=rate, window=window,
        hop=hop, normalization=normalization, stateful=bool(get("stateful", bool)), files=files,
        quantization=get("quantization", dict, required=False) or {},
        ops=get("ops", dict, required=False) or {}, postprocess=postprocess,
        training=get("training", dict, required=False) or {},
        parity=get("parity", dict, required=False) or {}, event_classes=event_classes,
        calibration=get("calibration", dict, required=False) or {}, format_version=version,
    )


def rate_is_off(rate_hz: float, model_rate_hz: float) -> bool:
    """True when `rate_hz` is more than RATE_TOLERANCE from the model's sample rate: the one
    rate policy of `run` (a warning), the live view, `plot`, `evaluate` and `calibrate` (errors)."""
    return abs(rate_hz / model_rate_hz - 1.0) > RATE_TOLERANCE
