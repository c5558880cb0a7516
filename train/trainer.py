"""`gesturekit train`: load, split, window, run the strategy's phases, evaluate on the test
subjects once, and write the run folder (config, metrics, models, histories, report).

The run is written into a temporary folder beside `--out` and renamed into place only when it
is whole (metrics.json last), so a training that fails or is killed, even with `--force` over
an earlier run, leaves that earlier run as it was."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gesturekit import __version__
from gesturekit.device.core.files import check_replaceable, replace_folder
from gesturekit.device.core.frame import triads
from gesturekit.device.core.windowing import Normalization, label_runs
from gesturekit.errors import UserError
from gesturekit.options import to_samples
from gesturekit.train import crossval
from gesturekit.train.config import TrainConfig
from gesturekit.train.datasets import (
    Dataset,
    Split,
    fit_reference_pose,
    load_dataset,
    make_windows,
    split_subjects,
    subject_order,
    turn_to_pose,
)
from gesturekit.train.fit import Arrays
from gesturekit.train.imbalance import thin_fit_subjects
from gesturekit.train.metrics import scores
from gesturekit.train.runs import CONFIG_JSON, METRICS_JSON, MODEL_FILES, RUN_FORMAT_VERSION


def resolve_window(cfg: TrainConfig, dataset: Dataset) -> dict:
    """Set `cfg.window`, `cfg.hop` and `cfg.train_hop` to samples at the dataset's rate and
    return how the window was chosen.

    The default window spans the median segment of the rarest class (fewest labelled samples,
    never the background): the gesture the model exists to catch, which a window mostly made
    of it recognises best. Rounded down to a multiple of 8 samples (the CNN pools by 4) and kept
    within 0.5-10 s: 2.56 s on UCI HAPT (SIT_TO_STAND), 2.88 s on the synthetic set (jump).
    The hop is half the window.
    """
    rate = dataset.sample_rate_hz
    if cfg.window is None:
        counts = dataset.class_counts()
        rarest = min((i for i, name in enumerate(dataset.labels)
                      if counts[i] and name != dataset.background_label), key=lambda i: counts[i])
        lengths = [b - a for s in dataset.sessions for a, b in label_runs(s.label_ids)
                   if s.label_ids[a] == rarest]
        median = float(np.median(lengths))
        cfg.window = max(8, int(np.clip(median, 0.5 * rate, 10 * rate)) // 8 * 8)
        rule = (f"median segment of the rarest class, {dataset.labels[rarest]} "
                f"({median / rate:.2f} s), rounded down to 8 samples")
    else:
        cfg.window = to_samples(cfg.window, rate, "--window")
        rule = "given"
    cfg.hop = to_samples(cfg.hop, rate, "--hop") if cfg.hop is not None else max(1, cfg.window // 2)
    if cfg.train_hop is not None:
        cfg.train_hop = to_samples(cfg.train_hop, rate, "--train-hop")
    return {"window_samples": cfg.window, "window_s": cfg.window / rate, "hop_samples": cfg.hop,
            "rule": rule}


def prepare_dataset(path: str, options: dict, cfg: TrainConfig) -> tuple[Dataset, object, dict]:
    """Load the dataset, split it by subject and apply extreme-imbalance thinning if asked."""
    dataset = load_dataset(path, **options)
    info = {"window": resolve_window(cfg, dataset)}
    check_dataset(dataset, cfg.window)
    split = split_subjects(dataset.subjects, cfg.seed, cfg.test_subjects, cfg.val_subjects,
                           train_subjects=cfg.train_subjects)
    if cfg.thin:
        dataset, info["thinning"] = thin_fit_subjects(dataset, cfg.thin, split.train + split.val,
                                                      cfg.seed)
    if cfg.reference_frame and dataset.reference_label:
        dataset, info["reference"] = turn_to_pose(dataset, fit_reference_pose(dataset, split.train))
    return dataset, split, info


def check_dataset(dataset: Dataset, window: int) -> None:
    present = [name for name, n in zip(dataset.labels, dataset.class_counts(), strict=True) if n]
    if len(present) < 2:
        raise UserError(f"{dataset.root}: {len(present)} labelled class(es) "
                        f"({', '.join(present) or 'none'}); training needs at least 2")
    longest = max(len(s.data) for s in dataset.sessions)
    if window > longest:
        raise UserError(f"--window {window} is longer than every session of {dataset.root} "
                        f"(longest {longest} samples); use a shorter window")


def _arrays(dataset: Dataset, subjects: list[str], cfg: TrainConfig, name: str,
            hop: int | None = None) -> Arrays:
    w = make_windows(dataset, subjects, cfg.window, hop or cfg.hop, cfg.purity)
    if len(w.y) == 0:
        raise UserError(f"no labelled windows for the {name} subjects {', '.join(subjects)} "
                        f"(window {cfg.window}, purity {cfg.purity}); choose other subjects "
                        "or a shorter window")
    return Arrays(w.x, w.y, w.subjects, w.sessions)


def per_group_scores(groups: np.ndarray, test: Arrays, pred: np.ndarray,
                     labels: list[str]) -> dict[str, dict]:
    """Macro-F1, balanced accuracy and accuracy of each test subject (or session) alone: a new
    person is what the model meets, and the mean over windows hides the person it fails."""
    out = {}
    for group in sorted(set(groups.tolist()), key=subject_order):
        mine = groups == group
        s = scores(test.y[mine], pred[mine], labels)
        out[group] = {k: s[k] for k in ("macro_f1", "balanced_accuracy", "accuracy", "windows")}
    return out


def _scope(distribute: str) -> tuple[Callable, int]:
    """The tf.distribute scope for building models and its number of replicas: none,
    mirrored (all local devices) or multi-worker (cluster from TF_CONFIG)."""
    if distribute == "none":
        return contextlib.nullcontext, 1
    import tensorflow as tf

    if distribute == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    else:
        if "TF_CONFIG" not in os.environ:
            raise UserError("--distribute multi-worker needs the cluster in TF_CONFIG")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return strategy.scope, strategy.num_replicas_in_sync


def fit_strategy(ctx) -> tuple[object, object | None, dict]:
    """The strategy's phases on one context: the CNN-LSTM, the phase-2 CNN head (three-phase
    only) and each phase's result."""
    from gesturekit.train import phases

    results = {}
    head = None
    if ctx.cfg.strategy == "three-phase":
        head, results["cnn"] = phases.train_cnn_head(ctx)
        model, results["lstm"] = phases.train_lstm(ctx, head)
    else:
        model, results["direct"] = phases.train_direct(ctx)
    return model, head, results


def train_run(data: str, out: str | os.PathLike, cfg: TrainConfig, options: dict | None = None,
              force: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Train with `cfg` on the dataset at `data` and write the run folder `out`; returns metrics.

    Everything that can refuse the inputs (the output folder, the dataset, the split, the
    first windows) runs before anything is written; the run is then built beside `out` and
    swapped in whole."""
    out = Path(out)
    check_replaceable(out, force, CONFIG_JSON, "run folder")
    t0 = time.perf_counter()
    options = options or {}
    dataset, split, prepared = prepare_dataset(data, options, cfg)
    make_context, replicas = seeded_contexts(cfg, dataset, progress)
    ctx, norm = make_context(split.train, split.val, cfg)
    if cfg.trace_test:
        ctx.watch = _arrays(dataset, split.test, cfg, "test")
    run = _Training(data, options, cfg, dataset, prepared, replicas, make_context, progress, t0,
                    split, ctx, norm, seconds={"data": time.perf_counter() - t0})
    metrics = replace_folder(out, run.write)
    progress(summary_table(metrics))
    return metrics


def seeded_contexts(cfg: TrainConfig, dataset: Dataset,
                    progress: Callable[[str], None]) -> tuple[Callable, int]:
    """Seed Keras, TensorFlow and numpy, choose the distribution scope; returns a function
    that makes the phases' context for a set of subjects, and the scope's replicas."""
    import keras
    import tensorflow as tf

    from gesturekit.train import phases

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    scope, replicas = _scope(cfg.distribute)
    groups = triads(dataset.channels)

    def make_context(train_subjects: list[str], val_subjects: list[str],
                     run_cfg: TrainConfig) -> tuple[phases.Context, Normalization]:
        """Windows of these subjects, normalised with the training windows' statistics."""
        train = _arrays(dataset, train_subjects, run_cfg, "training", run_cfg.train_hop)
        val = _arrays(dataset, val_subjects, run_cfg, "validation") if val_subjects else None
        absent = [dataset.labels[i] for i in np.flatnonzero(np.bincount(train.y, minlength=len(
            dataset.labels)) == 0) if dataset.class_counts()[i] > 0]
        if absent:
            raise UserError(f"class(es) {', '.join(absent)} have no windows in the training split "
                            f"(subjects {', '.join(train_subjects)}); choose other --test-subjects/"
                            "--val-subjects, a shorter --window or a lower --purity")
        norm = Normalization.fit(train.x)
        return phases.Context(keras=keras, cfg=run_cfg, train=train, val=val, labels=dataset.labels,
                              normalize=norm.apply, scope=scope, aug_context=(groups, norm.std),
                              progress=progress), norm

    return make_context, replicas


@dataclass
class _Training:
    """One `train_run` after its inputs were accepted: `write` builds the run folder step by
    step; the folds may replace the split, context and normalisation with the final model's."""

    data: str
    options: dict
    cfg: TrainConfig
    dataset: Dataset
    prepared: dict
    replicas: int
    make_context: Callable
    progress: Callable[[str], None]
    t0: float
    split: Split
    ctx: object  # phases.Context
    norm: Normalization
    seconds: dict
    results: dict = field(default_factory=dict)
    cv: dict | None = None

    def write(self, work: Path) -> dict:
        """Sandbox, folds, fit, test, report, into `work` (a folder beside the run's place)."""
        from gesturekit.train.report import write_report

        self.progress(f"train: {self.cfg.strategy} on {self.dataset.name}, seed {self.cfg.seed}; "
                      f"subjects train {len(self.split.train)}, val {len(self.split.val)}, test "
                      f"{len(self.split.test)}; windows train {len(self.ctx.train.y)}, val "
                      f"{len(self.ctx.val.y)}")
        self.sandbox()
        self.cross_validate()
        config = self.config()
        (work / CONFIG_JSON).write_text(json.dumps(config, indent=2) + "\n")
        model, head = self.fit(work)
        test, test_scores, extra = self.test(model, head)
        self.seconds["total"] = time.perf_counter() - self.t0
        metrics = self.metrics(config, test, test_scores, extra)
        histories = {n: r["history"] for n, r in self.results.items() if "history" in r}
        write_report(work, test_scores, histories, metrics=metrics,
                     title=f"gesturekit run: {self.cfg.strategy}, seed {self.cfg.seed}")
        (work / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n")  # last: the run is whole
        return metrics

    def sandbox(self) -> None:
        """Phase 1: can the architecture learn a small balanced subset at all? (exit 3 if not)"""
        from gesturekit.train import phases

        if not self.cfg.sandbox:
            self.results["sandbox"] = {"passed": None, "skipped": True}
            return
        t = time.perf_counter()
        self.results["sandbox"] = phases.sandbox(self.ctx)
        self.seconds["sandbox"] = time.perf_counter() - t

    def cross_validate(self) -> None:
        """With --folds: score the strategy on subject folds, then set up the shipped model:
        every non-test subject, for the epochs the folds chose."""
        if not self.cfg.folds:
            return
        t = time.perf_counter()
        self.cv = crossval.cross_validate(
            self.cfg, self.split.train + self.split.val,
            lambda tr, va: fit_strategy(self.make_context(tr, va, self.cfg)[0])[2], self.progress)
        self.seconds["folds"] = time.perf_counter() - t
        self.split = Split(sorted(self.split.train + self.split.val, key=subject_order), [],
                           self.split.test)
        self.ctx, self.norm = self.make_context(self.split.train, [],
                                                crossval.final_config(self.cfg, self.cv["epochs"]))
        self.progress(f"final: {len(self.split.train)} subjects, {len(self.ctx.train.y)} windows, "
                      "epochs " + ", ".join(f"{p} {n}" for p, n in self.cv["epochs"].items()))

    def config(self) -> dict:
        """config.json: what the run was trained with and on, enough to cut its windows again."""
        d = self.dataset
        return {
            "format_version": RUN_FORMAT_VERSION, "gesturekit_version": __version__,
            "dataset": {"path": str(Path(self.data).resolve()), "options": self.options},
            **self.cfg.to_dict(),
            "split": self.split.to_dict(), "labels": d.labels, "channels": d.channels,
            "units": d.units, "sample_rate_hz": d.sample_rate_hz,
            "background_label": d.background_label, "normalization": self.norm.to_dict(),
            "reference_pose": self.prepared.get("reference", {}).get("pose"),
        }

    def fit(self, work: Path) -> tuple[object, object | None]:
        """The strategy's phases; the models and each phase's result written into `work`."""
        model, head, fitted = fit_strategy(self.ctx)
        self.results.update(fitted)
        self.seconds.update({name: sum(r["history"]["seconds"]) for name, r in fitted.items()})
        phase_dir = work / "phases"
        phase_dir.mkdir()
        if head is not None:
            head.save(work / MODEL_FILES["cnn_head"])
            head.save_weights(phase_dir / "cnn.weights.h5")
        model.save(work / MODEL_FILES["cnn_lstm"])
        for name, result in self.results.items():
            (phase_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
        return model, head

    def test(self, model, head) -> tuple[Arrays, dict, dict]:
        """The test subjects, touched here once: scores overall and per subject (and the
        three-phase CNN head's, for comparison)."""
        labels = self.dataset.labels
        test = _arrays(self.dataset, self.split.test, self.cfg, "test")
        x = self.norm.apply(test.x)
        pred = model.predict(x, batch_size=512, verbose=0).argmax(axis=1)
        test_scores = scores(test.y, pred, labels)
        test_scores["per_subject"] = per_group_scores(test.subjects, test, pred, labels)
        test_scores["per_session"] = per_group_scores(test.sessions, test, pred, labels)
        extra = {}
        if "cnn" in self.results:
            head_pred = head.predict(x, batch_size=512, verbose=0).argmax(axis=1)
            extra["cnn_head_test"] = {k: v for k, v in scores(test.y, head_pred, labels).items()
                                      if k in ("macro_f1", "balanced_accuracy", "accuracy")}
        return test, test_scores, extra

    def metrics(self, config: dict, test: Arrays, test_scores: dict, extra: dict) -> dict:
        """metrics.json."""
        labels, train_y, results = self.dataset.labels, self.ctx.train.y, self.results
        return {
            "strategy": self.cfg.strategy, "dataset": config["dataset"]["path"], "seed": self.cfg.seed,
            "split": self.split.to_dict(),
            "windows": {"train": int(len(train_y)),
                        "val": int(len(self.ctx.val.y)) if self.ctx.val is not None else 0,
                        "test": int(len(test.y))},
            "train_class_windows": dict(zip(labels, np.bincount(
                train_y, minlength=len(labels)).tolist(), strict=True)),
            "thinning": self.prepared.get("thinning", {}), "window": self.prepared["window"],
            "reference": self.prepared.get("reference"),
            "phases": {name: {k: v for k, v in r.items() if k != "history"}
                       for name, r in results.items()},
            # The final model's validation score next to its test score: their gap is how much
            # worse the model does on people it never saw than on the people it was chosen on.
            "validation_macro_f1": self.cv["val_macro_f1_mean"] if self.cv else
            results["lstm" if "lstm" in results else "direct"]["best_val_macro_f1"],
            "cross_validation": self.cv,
            "test": test_scores, **extra, "seconds": self.seconds,
            "distribute": {"strategy": self.cfg.distribute, "replicas": self.replicas},
        }


def summary_table(metrics: dict) -> str:
    """The short table printed at the end of training."""
    t = metrics["test"]
    lines = [f"\n{'phase':<8} {'epochs':>6} {'kept':>5} {'best':>5} {'val F1':>7} {'seconds':>8}"]
    for name, r in metrics["phases"].items():
        if "epochs" in r:
            lines.append(f"{name:<8} {r['epochs']:>6} {r.get('kept_epoch', r['best_epoch']):>5} "
                         f"{r['best_epoch']:>5} "
                         + (f"{r['best_val_macro_f1']:>7.3f}" if r["best_val_macro_f1"] is not None
                            else f"{'-':>7}") + f" {metrics['seconds'].get(name, 0):>8.1f}")
    cv = metrics.get("cross_validation")
    if cv:
        lines.append(f"\ncross-validation, {len(cv['folds'])} subject folds: validation macro-F1 "
                     + ", ".join(f"{f['val_macro_f1']:.3f}" for f in cv["folds"])
                     + f" = {cv['val_macro_f1_mean']:.3f} ± {cv['val_macro_f1_std']:.3f}")
    lines.append(f"\ntest ({metrics['windows']['test']} windows of subjects "
                 f"{', '.join(metrics['split']['test'])}): macro-F1 {t['macro_f1']:.3f}, balanced "
                 f"accuracy {t['balanced_accuracy']:.3f}, accuracy {t['accuracy']:.3f}")
    worst = min(t["per_subject"].items(), key=lambda kv: kv[1]["macro_f1"])
    lines.append(f"new people: validation macro-F1 {metrics['validation_macro_f1']:.3f}, test "
                 f"{t['macro_f1']:.3f} (gap {metrics['validation_macro_f1'] - t['macro_f1']:+.3f}); "
                 f"weakest test subject {worst[0]}: {worst[1]['macro_f1']:.3f}")
    if t["collapsed_classes"]:
        lines.append(f"COLLAPSED (zero recall): {', '.join(t['collapsed_classes'])}")
    if t["collapsed"]:
        lines.append(f"COLLAPSE: predicts {t['dominant_prediction']['label']} for "
                     f"{t['dominant_prediction']['share']:.0%} of test windows")
    lines.append(f"total {metrics['seconds']['total']:.0f} s")
    return "\n".join(lines)
