"""`gesturekit train`: load, split, window, run the strategy's phases, evaluate on the test
subjects once, and write the run folder (config, metrics, models, histories, report)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from gesturekit import __version__
from gesturekit.device.windowing import Normalization
from gesturekit.errors import UserError
from gesturekit.train.augment import channel_triads
from gesturekit.train.config import TrainConfig
from gesturekit.train.datasets import Dataset, load_dataset, make_windows, split_subjects
from gesturekit.train.fit import Arrays
from gesturekit.train.imbalance import imbalance_ratio, thin_to_ratio
from gesturekit.train.metrics import scores
from gesturekit.train.runs import CONFIG_JSON, METRICS_JSON, MODEL_FILES, RUN_FORMAT_VERSION


def prepare_dataset(path: str, options: dict, cfg: TrainConfig) -> tuple[Dataset, object, dict]:
    """Load the dataset, split it by subject and apply extreme-imbalance thinning if asked.

    Shared with `runs.run_windows` (through the saved config), so a run's windows can be cut
    again exactly.
    """
    dataset = load_dataset(path, **options)
    check_dataset(dataset, cfg.window)
    split = split_subjects(dataset.subjects, cfg.seed, cfg.test_subjects, cfg.val_subjects)
    info = {}
    if cfg.thin:
        fit_subjects = split.train + split.val  # never the test subjects
        before = imbalance_ratio(dataset, fit_subjects)
        dataset, keep = thin_to_ratio(dataset, cfg.thin["classes"], fit_subjects,
                                      cfg.thin["min_ratio"], cfg.seed)
        info = {"keep_fraction": keep, "ratio_before": before,
                "ratio_after": imbalance_ratio(dataset, fit_subjects)}
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
    return Arrays(w.x, w.y)


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


def train_run(data: str, out: str | os.PathLike, cfg: TrainConfig, options: dict | None = None,
              force: bool = False, progress: Callable[[str], None] = print) -> dict:
    """Train with `cfg` on the dataset at `data` and write the run folder `out`; returns metrics."""
    from gesturekit.train import phases
    from gesturekit.train.report import write_report

    out = Path(out)
    replace = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if replace:
        if not force:
            raise UserError(f"{out}: exists and is not empty; choose another --out or pass --force")
        if not (out / CONFIG_JSON).is_file():
            raise UserError(f"{out}: exists and is not a run folder (no {CONFIG_JSON}); "
                            "refusing to replace it, choose another --out")
    options = options or {}
    t0 = time.perf_counter()
    dataset, split, thin_info = prepare_dataset(data, options, cfg)
    train = _arrays(dataset, split.train, cfg, "training", cfg.train_hop)
    val = _arrays(dataset, split.val, cfg, "validation")
    absent = [dataset.labels[i] for i in np.flatnonzero(np.bincount(train.y, minlength=len(
        dataset.labels)) == 0) if dataset.class_counts()[i] > 0]
    if absent:
        raise UserError(f"class(es) {', '.join(absent)} have no windows in the training split "
                        f"(subjects {', '.join(split.train)}); choose other --test-subjects/"
                        "--val-subjects, a shorter --window or a lower --purity")
    norm = Normalization.fit(train.x)
    seconds = {"data": time.perf_counter() - t0}

    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()
    scope, replicas = _scope(cfg.distribute)
    ctx = phases.Context(keras=keras, cfg=cfg, train=train, val=val, labels=dataset.labels,
                         normalize=norm.apply, scope=scope,
                         aug_context=(channel_triads(dataset.channels, dataset.units), norm.std),
                         progress=progress)
    if replace:  # only now that the dataset loaded and split: a bad --data keeps the old run
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": RUN_FORMAT_VERSION, "gesturekit_version": __version__,
        "dataset": {"path": str(Path(data).resolve()), "options": options},
        **cfg.to_dict(),
        "split": split.to_dict(), "labels": dataset.labels, "channels": dataset.channels,
        "units": dataset.units, "sample_rate_hz": dataset.sample_rate_hz,
        "background_label": dataset.background_label, "normalization": norm.to_dict(),
    }
    (out / CONFIG_JSON).write_text(json.dumps(config, indent=2) + "\n")
    phase_dir = out / "phases"
    phase_dir.mkdir()
    results: dict = {}

    progress(f"train: {cfg.strategy} on {dataset.name}, seed {cfg.seed}; subjects train "
             f"{len(split.train)}, val {len(split.val)}, test {len(split.test)}; windows train "
             f"{len(train.y)}, val {len(val.y)}")
    if cfg.sandbox:
        t = time.perf_counter()
        results["sandbox"] = phases.sandbox(ctx)
        seconds["sandbox"] = time.perf_counter() - t
    else:
        results["sandbox"] = {"passed": None, "skipped": True}
    if cfg.strategy == "three-phase":
        t = time.perf_counter()
        head, results["cnn"] = phases.train_cnn_head(ctx)
        seconds["cnn"] = time.perf_counter() - t
        head.save(out / MODEL_FILES["cnn_head"])
        head.save_weights(phase_dir / "cnn.weights.h5")
        t = time.perf_counter()
        model, results["lstm"] = phases.train_lstm(ctx, head)
        seconds["lstm"] = time.perf_counter() - t
        model.save_weights(phase_dir / "lstm.weights.h5")
    else:
        t = time.perf_counter()
        model, results["direct"] = phases.train_direct(ctx)
        seconds["direct"] = time.perf_counter() - t
    model.save(out / MODEL_FILES["cnn_lstm"])
    for name, result in results.items():
        (phase_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")

    # The test subjects are touched here, once, for the final report.
    test = _arrays(dataset, split.test, cfg, "test")
    pred = model.predict(norm.apply(test.x), batch_size=512, verbose=0).argmax(axis=1)
    test_scores = scores(test.y, pred, dataset.labels)
    extra = {}
    if "cnn" in results:
        head_pred = head.predict(norm.apply(test.x), batch_size=512, verbose=0).argmax(axis=1)
        extra["cnn_head_test"] = {k: v for k, v in scores(test.y, head_pred, dataset.labels).items()
                                  if k in ("macro_f1", "balanced_accuracy", "accuracy")}
    seconds["total"] = time.perf_counter() - t0
    metrics = {
        "strategy": cfg.strategy, "dataset": config["dataset"]["path"], "seed": cfg.seed,
        "split": split.to_dict(),
        "windows": {"train": int(len(train.y)), "val": int(len(val.y)), "test": int(len(test.y))},
        "train_class_windows": dict(zip(dataset.labels, np.bincount(
            train.y, minlength=len(dataset.labels)).tolist(), strict=True)),
        "thinning": thin_info,
        "phases": {name: {k: v for k, v in r.items() if k != "history"}
                   for name, r in results.items()},
        "test": test_scores, **extra, "seconds": seconds,
        "distribute": {"strategy": cfg.distribute, "replicas": replicas},
    }
    (out / METRICS_JSON).write_text(json.dumps(metrics, indent=2) + "\n")
    write_report(out, test_scores, {n: r["history"] for n, r in results.items() if "history" in r},
                 title=f"gesturekit run: {cfg.strategy}, seed {cfg.seed}", metrics=metrics)
    progress(summary_table(metrics))
    return metrics


def summary_table(metrics: dict) -> str:
    """The short table printed at the end of training."""
    t = metrics["test"]
    lines = [f"\n{'phase':<8} {'epochs':>6} {'best':>5} {'val F1':>7} {'seconds':>8}"]
    for name, r in metrics["phases"].items():
        if "epochs" in r:
            lines.append(f"{name:<8} {r['epochs']:>6} {r['best_epoch']:>5} "
                         f"{r['best_val_macro_f1']:>7.3f} {metrics['seconds'].get(name, 0):>8.1f}")
    lines.append(f"\ntest ({metrics['windows']['test']} windows of subjects "
                 f"{', '.join(metrics['split']['test'])}): macro-F1 {t['macro_f1']:.3f}, balanced "
                 f"accuracy {t['balanced_accuracy']:.3f}, accuracy {t['accuracy']:.3f}")
    if t["collapsed_classes"]:
        lines.append(f"COLLAPSED (zero recall): {', '.join(t['collapsed_classes'])}")
    if t["collapsed"]:
        lines.append(f"COLLAPSE: predicts {t['dominant_prediction']['label']} for "
                     f"{t['dominant_prediction']['share']:.0%} of test windows")
    lines.append(f"total {metrics['seconds']['total']:.0f} s")
    return "\n".join(lines)
