"""What a model needs to be run: `ModelInfo`, the one type of model metadata.

Its labels, background class, channels and units, sample rate, window, hop, normalisation,
whether it keeps state, and its post-processing. A run folder gives it (`train.runs.RunInfo
.model_info`, from config.json), a bundle extends it (`device.core.bundle.Bundle`, model.json) and
`model_config.h` is written from it (`export.carray.SketchConfig`); `read_model_info` is the one
check of these fields, whichever file they come from.

`channel_order` is the one channel-mapping policy: by name when the source names its channels
(a recording's header, a dataset, a stream's header line), by position only when it does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gesturekit.device.core.frame import ReferencePose
from gesturekit.device.core.windowing import Normalization
from gesturekit.errors import UserError

MAX_WINDOW = 100_000  # samples; the ring buffer holds two windows

# Post-processing defaults written into every bundle; `run` flags override them.
# `postprocess.per_class` may override any of them for one class: {label: {key: value}}.
# Times are in seconds, so settings survive a change of hop (`run --hop`, `export --hop`);
# `windows_for` turns them into window counts once, at the hop the detector runs at.
POSTPROCESS_RANGES = {"smoothing_s": (0.0, 3600.0), "threshold": (0.0, 1.0),
                      "min_on_s": (0.0, 3600.0), "refractory_s": (0.0, math.inf)}
DEFAULT_POSTPROCESS = {
    "smoothing_s": 1.0,  # average the window outputs of the last second
    "threshold": 0.6,  # smoothed confidence needed to announce
    "min_on_s": 0.6,  # the class stays on (top and confident) this long before it is announced
    "refractory_s": 1.0,  # silence after an event
}
# Bundles before format 4 counted windows; their hop turns the counts into seconds.
LEGACY_COUNTS = {"smoothing": "smoothing_s", "min_consecutive": "min_on_s"}


def windows_for(seconds: float, hop: int, rate_hz: float) -> int:
    """Windows a time span covers at `hop` samples between windows (at least 1): each window
    stands for one hop of time. model_config.h's gk_windows() computes the same in double."""
    return max(1, int(seconds / (hop / rate_hz) + 0.5))


def seconds_from_counts(values: dict, hop: int, rate_hz: float) -> dict:
    """Post-processing settings of a bundle before format 4 (window counts) in seconds."""
    hop_s = hop / rate_hz
    out = {LEGACY_COUNTS.get(k, k): (v * hop_s if k in LEGACY_COUNTS and isinstance(v, int | float)
                                     and not isinstance(v, bool) else v)
           for k, v in values.items() if k != "per_class"}
    if isinstance(values.get("per_class"), dict):
        out["per_class"] = {label: seconds_from_counts(s, hop, rate_hz) if isinstance(s, dict) else s
                            for label, s in values["per_class"].items()}
    return out


# A stream or recording further than this from the model's rate fills a window with another
# stretch of time than the model learned on: live a warning (the stream goes on), offline an error.
RATE_TOLERANCE = 0.1


@dataclass
class ModelInfo:
    labels: list[str]  # index = model output index
    background_label: str | None
    channels: list[str]  # model-input order
    units: dict[str, str]
    sample_rate_hz: float
    window: int
    hop: int
    normalization: Normalization
    stateful: bool  # reset variables (LSTM state) before every window
    postprocess: dict = field(default_factory=lambda: dict(DEFAULT_POSTPROCESS))
    event_classes: list[str] | None = None  # announced classes; None: every class but the background
    reference_pose: ReferencePose | None = None  # streams are turned into its frame (None: as they are)

    @property
    def background_index(self) -> int | None:
        return self.labels.index(self.background_label) if self.background_label else None

    @property
    def events(self) -> list[str]:
        """The classes announced as events (model order)."""
        return announced_classes(self.labels, self.background_label, self.event_classes)


def announced_classes(labels: list[str], background: str | None,
                      event_classes: list[str] | None) -> list[str]:
    """The classes announced as events, in model order: `event_classes` (None: every class),
    never the background, whatever a config says. The one place this rule lives."""
    chosen = set(labels) if event_classes is None else set(event_classes)
    return [label for label in labels if label in chosen and label != background]


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
        low, high = POSTPROCESS_RANGES[key]
        if (not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value)
                or not low <= value <= high):
            raise UserError(f"{prefix}{key} must be a finite number within {low:g}..{high:g} "
                            f"(got {value!r})")


def json_field(d: dict, where: str, key: str, kind: type | tuple, required: bool = True):
    """`d[key]` when it has type `kind` (a bool is no number); None when optional and absent."""
    if key not in d:
        if required:
            raise UserError(f"{where}: missing field '{key}'")
        return None
    value = d[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise UserError(f"{where}: field '{key}' has the wrong type ({type(value).__name__})")
    return value


def read_model_info(d: dict, where: str) -> ModelInfo:
    """The model's fields of a parsed model.json or config.json, checked; every error names
    `where` (the file), the field and what was expected."""
    def get(key: str, kind: type | tuple, required: bool = True):
        return json_field(d, where, key, kind, required)

    labels = get("labels", list)
    channels = get("channels", list)
    if not labels or not all(isinstance(x, str) for x in labels):
        raise UserError(f"{where}: field 'labels' must be a non-empty list of names")
    if len(set(labels)) != len(labels):
        raise UserError(f"{where}: field 'labels' names a class twice ({labels})")
    if not channels or not all(isinstance(x, str) for x in channels):
        raise UserError(f"{where}: field 'channels' must be a non-empty list of names")
    background = get("background_label", (str, type(None)), required=False)  # null: none
    if background is not None and background not in labels:
        raise UserError(f"{where}: background_label {background!r} is not one of the labels")
    window, hop = get("window", int), get("hop", int)
    if not (0 < window <= MAX_WINDOW and 0 < hop <= MAX_WINDOW):
        raise UserError(f"{where}: window and hop must be within 1..{MAX_WINDOW} samples "
                        f"(got {window}, {hop})")
    rate = float(get("sample_rate_hz", (int, float)))
    if not 0 < rate < math.inf:
        raise UserError(f"{where}: sample_rate_hz must be a positive number (got {rate})")
    norm = get("normalization", dict)
    try:
        normalization = Normalization.from_dict(norm)
    except (KeyError, TypeError, ValueError) as e:
        raise UserError(f"{where}: field 'normalization' needs numeric 'mean' and 'std' ({e})") from e
    for name, values in (("mean", normalization.mean), ("std", normalization.std)):
        if values.shape != (len(channels),):
            raise UserError(f"{where}: normalization.{name} has {values.size} values for "
                            f"{len(channels)} channels")
    if not (np.isfinite(normalization.mean).all() and np.isfinite(normalization.std).all()
            and (normalization.std > 0).all()):
        raise UserError(f"{where}: normalization.mean must be finite and normalization.std "
                        "finite and positive")
    given = get("postprocess", dict, required=False) or {}
    if (get("format_version", int, required=False) or 1) < 4:  # window counts, before seconds
        given = seconds_from_counts(given, hop, rate)
    postprocess = check_postprocess({**DEFAULT_POSTPROCESS, **given}, f"{where}: ", labels)
    event_classes = get("event_classes", list, required=False)  # format 1: none (the default)
    if event_classes is not None:
        bad = [c for c in event_classes if not isinstance(c, str) or c not in labels]
        if bad or len(set(event_classes)) != len(event_classes):
            raise UserError(f"{where}: field 'event_classes' must name labels, each once "
                            f"(got {event_classes}; labels {labels})")
        if background is not None and background in event_classes:
            raise UserError(f"{where}: event_classes names the background class {background!r}, "
                            "which is never announced")
    pose = get("reference_pose", (dict, type(None)), required=False)  # format 3; null: none
    return ModelInfo(
        labels=labels, background_label=background, channels=channels,
        units=get("units", dict, required=False) or {}, sample_rate_hz=rate, window=window,
        hop=hop, normalization=normalization, stateful=bool(get("stateful", bool)),
        postprocess=postprocess, event_classes=event_classes,
        reference_pose=ReferencePose.from_dict(pose, where) if pose else None)


def rate_is_off(rate_hz: float, model_rate_hz: float) -> bool:
    """True when `rate_hz` is more than RATE_TOLERANCE from the model's sample rate: the one
    rate policy of `run` (a warning), the live view, `plot`, `evaluate` and `calibrate` (errors)."""
    return abs(rate_hz / model_rate_hz - 1.0) > RATE_TOLERANCE


def channel_order(channels: list[str], source: list[str] | int, where: str) -> list[int]:
    """The source's column of each of the model's `channels`: the one channel-mapping rule.

    `source` is the source's channel names when it has them (by name: every model channel must
    be among them, in any order; extra ones are left out), or, for a source that does not name
    them (a stream without a header line), its column count (by position: the counts must
    agree). `where` names the source in the error."""
    if isinstance(source, int):
        if source != len(channels):
            raise UserError(f"{where}: {source} unnamed columns; the model needs {len(channels)} "
                            f"({', '.join(channels)}, in this order)")
        return list(range(source))
    missing = [c for c in channels if c not in source]
    if missing:
        raise UserError(f"{where}: no channel(s) {', '.join(missing)}; the model needs "
                        f"{', '.join(channels)} (it has {', '.join(source)})")
    return [source.index(c) for c in channels]
