"""Training configuration: defaults, `--quick` budgets, a JSON or TOML config file, flags.

Everything here is saved into `RUN/config.json`, so a run can be repeated from it.
"""

from __future__ import annotations

import json
import tomllib
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from gesturekit.errors import UserError
from gesturekit.options import (
    ANY,
    AT_LEAST_ONE,
    NON_NEGATIVE,
    OPEN_UNIT,
    POSITIVE,
    PROBABILITY,
    SHARE,
    Range,
    expectation,
    in_range,
    parse_length,
)
from gesturekit.train.augment import AugmentConfig
from gesturekit.train.fit import KEEP, SCHEDULES, PhaseBudget
from gesturekit.train.imbalance import LOSSES, check_weight_mode
from gesturekit.train.model import ModelConfig

STRATEGIES = ("direct", "three-phase")
DISTRIBUTE = ("none", "mirrored", "multi-worker")


@dataclass
class SandboxConfig:
    # balanced subset of the training split
    windows_per_class: int = field(default=40, metadata=in_range(AT_LEAST_ONE))
    epochs: int = field(default=40, metadata=in_range(AT_LEAST_ONE))
    batch_size: int = field(default=32, metadata=in_range(AT_LEAST_ONE))
    learning_rate: float = field(default=3e-3, metadata=in_range(POSITIVE))
    # the subset must be (nearly) learnable
    min_train_accuracy: float = field(default=0.8, metadata=in_range(PROBABILITY))
    # and beat chance on unseen subjects
    min_val_balanced_accuracy_x_chance: float = field(default=2.0, metadata=in_range(NON_NEGATIVE))


@dataclass
class TrainConfig:
    # Default from bench/train_hapt.py (HAPT, 3 seeds): direct with inverse weights beat
    # three-phase by 0.02 macro-F1 at natural imbalance and at 50x (docs/benchmarks.md).
    strategy: str = "direct"
    seed: int = field(default=0, metadata=in_range(NON_NEGATIVE))  # numpy refuses negative seeds
    # Window and hops: samples (128), seconds ("2.5s"), or None: the window from the dataset
    # (`trainer.resolve_window`: its rarest class's median segment), the hop half of it and
    # the training hop equal to the hop. The run's config.json holds the samples it used.
    window: int | str | None = None
    hop: int | str | None = None
    purity: float = field(default=0.6, metadata=in_range(SHARE))
    train_hop: int | str | None = None  # denser training windows (more offsets of rare gestures)
    test_subjects: list[str] | None = None
    val_subjects: list[str] | None = None
    train_subjects: list[str] | None = None  # config only: train on these alone (learning curves)
    # > 1: subject-wise cross-validation, then the final model on every subject (1: refused)
    folds: int = field(default=0, metadata=in_range(NON_NEGATIVE))
    sandbox: bool = True
    cnn_weights: str = "sqrt"  # phase 2 (three-phase)
    lstm_weights: str = "inverse"  # phase 3 (three-phase)
    direct_weights: str = "inverse"  # the single phase of `direct`
    beta: float = field(default=0.999, metadata=in_range(OPEN_UNIT))  # for `effective` weights
    loss: str = "crossentropy"  # every phase
    gamma: float = field(default=2.0, metadata=in_range(NON_NEGATIVE))  # focal loss
    deterministic: bool = False  # TF op determinism: 1.3x slower; CPU runs repeat without it
    # Research only: each epoch's test macro-F1 in the phase histories (learning curves on new
    # people, to compare stopping rules); nothing is chosen by it.
    trace_test: bool = False
    distribute: str = "none"
    # Turn each session so that the gravity of the dataset's reference pose matches the
    # training median (`datasets.turn_to_pose`), when the dataset names one: how a sensor sits
    # tilts it as much as two postures differ (HAPT 5 seeds +0.03 paired, bench/train_stopping.py)
    reference_frame: bool = True
    thin: dict | None = None  # {"classes": [...], "min_ratio": 50}: extreme-imbalance experiments
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sandbox_phase: SandboxConfig = field(default_factory=SandboxConfig)
    # Validation macro-F1 on four people swings by 0.05 from epoch to epoch while the model still
    # improves, so no rule that picks an epoch by it is steady (a lucky early peak kept one HAPT
    # run at 0.751): every epoch of the budget runs and the last is kept. HAPT, 5 seeds, two
    # threads: 0.790 +- 0.025 -> 0.805 +- 0.003 (0.831 +- 0.012 with the reference frame);
    # bench/train_stopping.py replays the rules. Three-phase: worst of 5 HAPT seeds 0.748 -> 0.805.
    cnn: PhaseBudget = field(default_factory=lambda: PhaseBudget(40, 12, 8, 64, 1e-3, "last"))
    lstm: PhaseBudget = field(default_factory=lambda: PhaseBudget(40, 12, 8, 64, 1e-3, "last"))
    direct: PhaseBudget = field(default_factory=lambda: PhaseBudget(100, 15, 25, 64, 1e-3, "last"))

    def to_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        if self.strategy not in STRATEGIES:
            raise UserError(f"--strategy: unknown training strategy {self.strategy!r}; expected "
                            f"one of {', '.join(STRATEGIES)}")
        for name, flag in (("cnn_weights", "--cnn-weights"), ("lstm_weights", "--lstm-weights"),
                           ("direct_weights", "--weights")):
            check_weight_mode(getattr(self, name), f"{flag} (config key {name})")
        for phase in ("cnn", "lstm", "direct"):
            if getattr(self, phase).keep not in KEEP:
                raise UserError(f"config key {phase}.keep: expected one of {', '.join(KEEP)} "
                                f"(got {getattr(self, phase).keep!r})")
            if getattr(self, phase).schedule not in SCHEDULES:
                raise UserError(f"config key {phase}.schedule: expected one of "
                                f"{', '.join(SCHEDULES)} (got {getattr(self, phase).schedule!r})")
        if self.loss not in LOSSES:
            raise UserError(f"--loss: unknown loss {self.loss!r}; expected one of {', '.join(LOSSES)}")
        if self.distribute not in DISTRIBUTE:
            raise UserError(f"--distribute: unknown {self.distribute!r}; expected one of "
                            f"{', '.join(DISTRIBUTE)}")
        for name in ("window", "hop", "train_hop"):
            length = getattr(self, name)
            if length is not None:
                parse_length(length, f"--{name.replace('_', '-')}")
        if self.folds == 1:
            raise UserError(f"--folds: expected 0 (off) or at least 2 folds (got {self.folds})")


QUICK = {
    # Mixup pays off over a full budget; in a handful of epochs it only slows learning.
    "augment": {"mixup_alpha": 0.0},
    "sandbox_phase": {"windows_per_class": 24, "epochs": 40},
    "cnn": {"epochs": 6, "min_epochs": 6, "patience": 6},
    "lstm": {"epochs": 6, "min_epochs": 6, "patience": 6},
    "direct": {"epochs": 8, "min_epochs": 8, "patience": 8},
}

# The tables of a config file: their keys are checked and set one by one.
NESTED = {"model": ModelConfig, "augment": AugmentConfig, "sandbox_phase": SandboxConfig,
          "cnn": PhaseBudget, "lstm": PhaseBudget, "direct": PhaseBudget}


# What a value of each field type is called in messages.
_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               dict: "a table of settings", type(None): "null"}
_ITEM_NAMES = {int: "integers", str: "strings"}


def _fits(value, hint) -> bool:
    """Whether `value` (from JSON or TOML) is of the field type `hint`. A bool is no number
    (True would be 1 epoch), and an integer field takes no 3.0."""
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return any(_fits(value, h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _kind_name(hint) -> str:
    if typing.get_origin(hint) in (types.UnionType, typing.Union):
        return " or ".join(_kind_name(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        return f"a list of {_ITEM_NAMES[item]}"
    return _KIND_NAMES[hint]


def check_value(value, hint, bounds: Range, where: str) -> None:
    """A config value against its field's type and range (`in_range` metadata; applied to each
    item of a list): a user error naming `where` (file and key) and what was expected."""
    numbers = value if isinstance(value, list) else [value]
    if _fits(value, hint) and all(v in bounds for v in numbers if isinstance(v, int | float)):
        return
    kind = float if float in typing.get_args(hint) or hint is float else int
    wanted = (expectation(kind, bounds) if bounds != ANY and not typing.get_origin(hint)
              else _kind_name(hint) + ("" if bounds == ANY else f", each {bounds}"))
    raise UserError(f"{where}: expected {wanted}, got {json.dumps(value, default=str)}")


def _check_values(cls: type, values: dict, where: str, prefix: str = "") -> None:
    """Every key of `values` is a field of `cls` with a value of its type and range; `prefix`
    names the table they are in ("direct.")."""
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    for key, value in values.items():
        if key not in known:
            raise UserError(f"{where}: unknown key '{prefix}{key}' (expected one of "
                            f"{', '.join(sorted(known))})")
        if cls is TrainConfig and key in NESTED:
            if not isinstance(value, dict):
                raise UserError(f"{where}: key '{key}' must be a table of settings")
            _check_values(NESTED[key], value, where, f"{key}.")
        else:
            check_value(value, hints[key], known[key].metadata.get("range", ANY),
                        f"{where}: key '{prefix}{key}'")


def apply_values(cfg: TrainConfig, values: dict, where: str) -> TrainConfig:
    """Set fields from a (nested) dict; an unknown key or a value of the wrong type or out of
    range is a user error naming `where` and the key."""
    _check_values(TrainConfig, values, where)
    for key, value in values.items():
        if key in NESTED:
            current = asdict(getattr(cfg, key)) if getattr(cfg, key) is not None else {}
            setattr(cfg, key, NESTED[key](**{**current, **value}))
        else:
            setattr(cfg, key, value)
    return cfg


def read_config_file(path: str) -> dict:
    """A JSON (.json) or TOML (anything else) file of TrainConfig keys."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise UserError(f"{p}: cannot read config file ({e.strerror})") from e
    try:
        values = json.loads(text) if p.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise UserError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'TOML'} ({e})") from e
    if not isinstance(values, dict):
        raise UserError(f"{p}: expected an object of settings")
    return values


def build_config(file: str | None = None, quick: bool = False, **flags) -> TrainConfig:
    """Defaults, then `--quick` budgets, then the config file, then flags (None = not given)."""
    cfg = TrainConfig()
    if quick:
        apply_values(cfg, QUICK, "--quick")
    if file:
        apply_values(cfg, read_config_file(file), file)
    apply_values(cfg, {k: v for k, v in flags.items() if v is not None}, "command line")
    cfg.check()
    return cfg
