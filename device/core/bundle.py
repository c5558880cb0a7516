"""The model bundle: a folder with `model.json` and the model files.

The model carries its labels, channels, rate, window, hop and normalisation (`Bundle` extends
`device.core.model_info.ModelInfo`), so the runner checks a stream against it on load instead of
trusting command-line numbers. `export` writes
the bundle through `write_model_json`; everything that reads one goes through `load_bundle`.

Format 2 added `event_classes` (the classes announced as events; the others are states, shown
but never announced) and `postprocess.per_class` (settings per class, from `gesturekit
calibrate`). A format-1 bundle still loads: every class but the background is an event.
Format 3 added `reference_pose` (the frame streams are turned into, `device.core.frame`; null
for a model trained without one): an older gesturekit refuses such a bundle rather than run
the model on unturned samples.
Format 4 gives post-processing times in seconds (`smoothing_s`, `min_on_s`) instead of window
counts, so they survive a change of hop; an older bundle's counts are read as seconds at its hop.

`training.run` is the run folder relative to the bundle's folder (`../run`): a bundle works from
any working directory and can be moved (with its run, for what needs the run; `calibrate` reads
the split from `training.split` and needs no run).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from gesturekit.device.core.files import write_atomic
from gesturekit.device.core.model_info import ModelInfo, json_field, read_model_info
from gesturekit.errors import UserError

FORMAT_VERSION = 4
MODEL_JSON = "model.json"
MAX_MODEL_JSON_BYTES = 1 << 20
# model.json's keys in the order they have always been written (files stay byte-for-byte the same).
JSON_KEYS = ("format_version", "labels", "background_label", "channels", "units", "sample_rate_hz",
             "window", "hop", "normalization", "stateful", "files", "quantization", "ops",
             "postprocess", "training", "parity", "event_classes", "calibration", "reference_pose")


@dataclass(kw_only=True)
class Bundle(ModelInfo):
    """A model (`ModelInfo`) with its folder, its files and what export and calibrate found."""

    root: Path
    files: dict[str, str]  # kind ("float", "int8", "onnx", ...) -> file name in the bundle
    quantization: dict = field(default_factory=dict)  # {"input"|"output": {"scale", "zero_point"}}
    ops: dict = field(default_factory=dict)  # file name -> list of op names
    training: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    calibration: dict = field(default_factory=dict)  # what `gesturekit calibrate` chose, and on what
    format_version: int = FORMAT_VERSION

    def path(self, kind: str) -> Path:
        """Path of the model file of `kind`; a clear error when the bundle has none."""
        if kind not in self.files:
            raise UserError(f"{self.root}: bundle has no '{kind}' model "
                            f"(has: {', '.join(sorted(self.files))})")
        return self.root / self.files[kind]

    def run_folder(self) -> Path | None:
        """The run folder the bundle was exported from, if it is still there: `training.run`
        is relative to the bundle's folder, so a bundle moved together with its run still
        finds it. (Older bundles stored the path as export was given it: an absolute one still
        resolves, one relative to that working directory does not.)"""
        run = self.training.get("run")
        if not isinstance(run, str) or not run:
            return None
        path = self.root / run  # an absolute `run` stays itself
        return path if path.is_dir() else None

    def to_json(self) -> dict:
        d = asdict(self)
        d["normalization"] = self.normalization.to_dict()
        d["reference_pose"] = self.reference_pose.to_dict() if self.reference_pose else None
        return {key: d[key] for key in JSON_KEYS}


def write_model_json(bundle: Bundle) -> Path:
    """Write `model.json` into the bundle's folder (atomically: calibrate rewrites it in place)."""
    path = bundle.root / MODEL_JSON
    bundle.event_classes = bundle.events  # always explicit in the file
    bundle.format_version = FORMAT_VERSION  # its postprocess is in seconds now, whatever it was read as
    write_atomic(path, json.dumps(bundle.to_json(), indent=2) + "\n")
    return path


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
        return json_field(d, str(path), key, kind, required)

    version = get("format_version", int)
    if version < 1:
        raise UserError(f"{path}: format_version {version}; expected 1 to {FORMAT_VERSION}")
    if version > FORMAT_VERSION:
        raise UserError(f"{path}: format_version {version} is newer than this gesturekit "
                        f"understands ({FORMAT_VERSION}); upgrade gesturekit")
    model = read_model_info(d, str(path))
    files = get("files", dict)
    for kind, name in files.items():
        if not isinstance(name, str) or "/" in name or "\\" in name or name.startswith("."):
            raise UserError(f"{path}: files.{kind} must be a plain file name inside the bundle")
    return Bundle(
        **vars(model), root=root, files=files,
        quantization=get("quantization", dict, required=False) or {},
        ops=get("ops", dict, required=False) or {},
        training=get("training", dict, required=False) or {},
        parity=get("parity", dict, required=False) or {},
        calibration=get("calibration", dict, required=False) or {}, format_version=version,
    )
