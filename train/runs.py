"""The run folder that `gesturekit train` writes and `export` / `evaluate` read.

`RUN/config.json` holds everything needed to reproduce the run (dataset path and options,
split, window, normalisation, model config, every phase hyper-parameter); `RUN/metrics.json`
the results; `RUN/model.keras` the final CNN-LSTM (input normalised windows (T, C), output
softmax probabilities); `RUN/cnn_head.keras` the phase-2 CNN head when the strategy has one.
`train` writes metrics.json last (and the whole folder beside its place, renamed in when whole):
`load_run`, and so every reader of a run, refuses a folder without it as an incomplete run.
`load_run` reads config.json's model fields (labels, channels, rate, window, ...) with the
bundle's own check into `RunInfo.model_info`, the `ModelInfo` that export puts in the bundle.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gesturekit.device.core.model_info import ModelInfo, read_model_info
from gesturekit.errors import UserError
from gesturekit.train.datasets import Windows, make_windows
from gesturekit.train.model import ModelConfig

RUN_FORMAT_VERSION = 1
CONFIG_JSON = "config.json"
METRICS_JSON = "metrics.json"
MODEL_FILES = {"cnn_lstm": "model.keras", "cnn_head": "cnn_head.keras"}


@dataclass
class RunInfo:
    root: Path
    config: dict
    metrics: dict
    model_info: ModelInfo  # of the run's CNN-LSTM (stateful), from config.json

    @property
    def model_config(self) -> ModelConfig:
        return ModelConfig(**self.config["model"])

    @property
    def split(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.config["split"].items()}


REQUIRED_KEYS = ("format_version", "dataset", "window", "hop", "purity", "split", "labels",
                 "channels", "sample_rate_hz", "normalization", "model")


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not readable JSON ({e})") from e
    if not isinstance(value, dict):
        raise UserError(f"{path}: expected a JSON object")
    return value


def load_run(path: str | os.PathLike) -> RunInfo:
    """Read a run folder's config and metrics; clear errors for anything that is not one."""
    root = Path(path)
    if not root.is_dir():
        raise UserError(f"{root}: not a run folder (make one with `gesturekit train DATA --out RUN`)")
    config_path = root / CONFIG_JSON
    if not config_path.is_file():
        raise UserError(f"{root}: run folder without {CONFIG_JSON}")
    metrics_path = root / METRICS_JSON
    if not metrics_path.is_file():  # training writes it last
        raise UserError(f"{root}: incomplete run (no {METRICS_JSON}); train again")
    if not (root / MODEL_FILES["cnn_lstm"]).is_file():
        raise UserError(f"{root}: run folder without a model ({MODEL_FILES['cnn_lstm']}); "
                        "train again")
    config = _read_json(config_path)
    missing = [k for k in REQUIRED_KEYS if k not in config]
    if missing:
        raise UserError(f"{config_path}: missing field(s) {', '.join(missing)}")
    version = config["format_version"]
    if not isinstance(version, int) or version > RUN_FORMAT_VERSION:
        raise UserError(f"{config_path}: format_version {version!r} is newer than this gesturekit "
                        f"understands ({RUN_FORMAT_VERSION}); upgrade gesturekit")
    metrics = _read_json(metrics_path)
    # config.json has the model's fields under model.json's names; the CNN-LSTM keeps state.
    model_info = read_model_info({"stateful": True, **config}, str(config_path))
    return RunInfo(root=root, config=config, metrics=metrics, model_info=model_info)


def load_keras_model(run: RunInfo, which: str = "cnn_lstm"):
    """The run's Keras 3 model (`cnn_lstm` = model.keras, `cnn_head` = cnn_head.keras).

    Loaded with compile=False so custom training objects (focal loss) are not needed.
    """
    if which not in MODEL_FILES:
        raise UserError(f"unknown model {which!r}; expected one of {', '.join(MODEL_FILES)}")
    path = run.root / MODEL_FILES[which]
    if not path.is_file():
        raise UserError(f"{path}: missing; the run (strategy {run.config.get('strategy')!r}) "
                        f"has no {which} model")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise UserError(f"{path}: corrupt or not a Keras model file ({e})") from e


def run_windows(run: RunInfo, subset: str = "train") -> Windows:
    """Windows of one split subset, normalised with the run's training statistics.

    Reloads the dataset the run was trained on and cuts it with the run's window, hop and
    purity, so export calibration and evaluation see exactly what training saw.
    """
    from gesturekit.train.datasets import load_dataset, turn_to_pose
    from gesturekit.train.imbalance import thin_fit_subjects

    split, model = run.split, run.model_info
    if subset not in split:
        raise UserError(f"unknown subset {subset!r}; expected one of {', '.join(split)}")
    dataset = load_dataset(run.config["dataset"]["path"], **run.config["dataset"].get("options", {}))
    if dataset.labels != model.labels:
        raise UserError(f"{run.config['dataset']['path']}: classes {dataset.labels} differ from "
                        f"the run's {model.labels}")
    if run.config.get("thin"):  # an extreme-imbalance run: the same thinning as in training
        dataset, _ = thin_fit_subjects(dataset, run.config["thin"], split["train"] + split["val"],
                                       int(run.config["seed"]))
    if model.reference_pose:  # the frame training turned every session into
        dataset, _ = turn_to_pose(dataset, model.reference_pose)
    windows = make_windows(dataset, split[subset], model.window, model.hop,
                           float(run.config["purity"]))
    windows.x = model.normalization.apply(windows.x)
    return windows
