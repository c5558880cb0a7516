"""Stopping and checkpoint rules: which epoch of a run a noisy validation score should pick.

One `gesturekit train` per seed and thread count runs its whole epoch budget (no early stop)
with `trace_test`, so each epoch's validation macro-F1, validation loss and test macro-F1 are
in the run's history. Training is the same up to any epoch whatever stops it later (each
epoch's shuffling and augmentation are seeded by seed and epoch), so every rule below is
replayed on that history and picks the epoch a run with that rule would have kept: the test
score it reports is the score of that run (checked: plain `gesturekit train` runs keeping the
last epoch score exactly the replayed "last of 100"; docs/generalization.md).

    .venv/bin/python bench/train_stopping.py --data hapt=PATH --seeds 0,1,2,3,4 --threads default,1

Printed, and written to bench/results/train_stopping.json (with the cells of earlier
invocations): per rule and thread count, test
macro-F1 mean ± std, the worst seed, epochs trained, the difference from the rule used before
issue 21 (paired by seed and thread count) and from the same rule without the variant.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "train_stopping.json"
TEST_SUBJECTS = {"hapt": "2,4,9,10,12,13,18,20,24", "synth": "2,5"}
EPOCHS = 100  # the direct phase's budget at the CLI default
# Variant -> config settings on top of the trace. "reference": the reference-pose frame (the
# dataset's resting pose: HAPT's standing, the synthetic set's idle), paired with "none" by seed.
VARIANTS = {"none": {"reference_frame": False}, "reference": {"reference_frame": True},
            # the learning rate falling to 0 over the 100 epochs (with the frame): not replayable
            # from the others, its own runs
            "cosine": {"reference_frame": True, "direct": {"schedule": "cosine"}}}


def replay(history: dict, score: str = "val_macro_f1", patience: int = 25, min_epochs: int = 15,
           smooth: int = 1, pick: str = "end", fixed: int = 0) -> tuple[int, int]:
    """(epoch kept, epochs trained) of a rule on one run's history (epochs from 1).

    The rule keeps the best of a score (validation macro-F1, higher is better; validation loss,
    lower) averaged over the last `smooth` epochs, stops `patience` epochs after it (not
    before `min_epochs`), and keeps the weights of the window's last epoch (`pick="end"`) or of
    its best raw epoch (`pick="best"`). `fixed`: the last of that many epochs, no validation."""
    if fixed:
        return fixed, fixed
    raw = history[score]
    sign = -1.0 if score == "val_loss" else 1.0
    best, best_epoch = -float("inf"), 0
    for e in range(1, len(raw) + 1):
        window = raw[max(0, e - smooth):e]
        value = sign * statistics.mean(window)
        if value > best:
            best, best_epoch = value, e
        if e >= min_epochs and e - best_epoch >= patience:
            break
    if pick == "best":
        first = max(1, best_epoch - smooth + 1)
        window = raw[first - 1:best_epoch]
        chosen = first + (window.index(max(window)) if sign > 0 else window.index(min(window)))
        return chosen, e
    return best_epoch, e


RULES = {
    "before: best F1, patience 25, min 15": dict(score="val_macro_f1", patience=25, min_epochs=15),
    "best F1, patience 10": dict(score="val_macro_f1", patience=10, min_epochs=15),
    "best F1, min 40": dict(score="val_macro_f1", patience=25, min_epochs=40),
    "best F1, min 60": dict(score="val_macro_f1", patience=25, min_epochs=60),
    "F1 mean of 3, patience 25": dict(score="val_macro_f1", patience=25, min_epochs=15, smooth=3),
    "F1 mean of 5, patience 25": dict(score="val_macro_f1", patience=25, min_epochs=15, smooth=5),
    "F1 mean of 7, patience 25": dict(score="val_macro_f1", patience=25, min_epochs=15, smooth=7),
    "F1 mean of 5, min 40": dict(score="val_macro_f1", patience=25, min_epochs=40, smooth=5),
    "F1 mean of 5, best in it": dict(score="val_macro_f1", patience=25, min_epochs=15, smooth=5,
                                     pick="best"),
    "F1 mean of 9, patience 25": dict(score="val_macro_f1", patience=25, min_epochs=15, smooth=9),
    "val loss, patience 25": dict(score="val_loss", patience=25, min_epochs=15),
    "val loss mean of 5": dict(score="val_loss", patience=25, min_epochs=15, smooth=5),
    **{f"last of {n}": dict(fixed=n) for n in (40, 60, 80, 100)},
}


def run_trace(dataset: str, data: Path, seed: int, threads: str, variant: str, runs: Path) -> dict:
    """One full-budget `gesturekit train` with the test trace; returns its cell."""
    suffix = "" if variant == "none" else f"-{variant}"
    out = runs / f"{dataset}-{threads}t-s{seed}{suffix}"
    config = runs / f"trace-{dataset}{suffix}.json"
    settings = VARIANTS[variant]
    config.write_text(json.dumps({"trace_test": True, **settings, "direct": {
        **settings.get("direct", {}), "epochs": EPOCHS, "min_epochs": EPOCHS}}))
    env = dict(os.environ)
    if threads != "default":  # "default": what TensorFlow takes on this machine, as a user runs
        env.update(TF_NUM_INTRAOP_THREADS=threads, TF_NUM_INTEROP_THREADS=threads)
    if not (out / "metrics.json").is_file():
        proc = subprocess.run(
            [sys.executable, "-m", "gesturekit.cli", "train", str(data), "--out", str(out),
             "--force", "--seed", str(seed), "--test-subjects", TEST_SUBJECTS[dataset],
             "--config", str(config)], capture_output=True, text=True, env=env, cwd=REPO)
        if proc.returncode != 0:
            raise SystemExit(f"{out}: {proc.stderr.strip().splitlines()[-1:]}")
    h = json.loads((out / "phases" / "direct.json").read_text())["history"]
    return {"dataset": dataset, "seed": seed, "threads": threads, "variant": variant, "run": str(out),
            **{k: h[k] for k in ("val_macro_f1", "val_loss", "test_macro_f1", "loss")}}


def rule_rows(cells: list[dict]) -> list[dict]:
    """Per dataset, thread count, variant and rule: the test macro-F1 of the epoch each seed's
    run keeps; `paired` against the rule in use, `vs_none` against the same rule without the
    variant (same seeds)."""
    groups: dict[tuple, list[dict]] = {}
    for c in sorted(cells, key=lambda c: c["seed"]):
        groups.setdefault((c["dataset"], c["threads"], c.get("variant", "none")), []).append(c)
    kept = {key: {name: [c["test_macro_f1"][replay(c, **rule)[0] - 1] for c in mine]
                  for name, rule in RULES.items()} for key, mine in groups.items()}
    rows = []
    for (dataset, threads, variant), mine in sorted(groups.items()):
        seeds = [c["seed"] for c in mine]
        plain = groups.get((dataset, threads, "none"), [])
        for name, rule in RULES.items():
            f1 = kept[dataset, threads, variant][name]
            base = kept[dataset, threads, variant][next(iter(RULES))]
            pairs = [(a, b) for a, c in zip(f1, mine, strict=True) for b, p in
                     zip(kept.get((dataset, threads, "none"), {}).get(name, []), plain, strict=True)
                     if p["seed"] == c["seed"]]
            rows.append({"dataset": dataset, "threads": threads, "variant": variant, "rule": name,
                         "seeds": seeds, "test_macro_f1": f1, "mean": statistics.mean(f1),
                         "std": statistics.stdev(f1) if len(f1) > 1 else 0.0, "worst": min(f1),
                         "paired": statistics.mean(a - b for a, b in zip(f1, base, strict=True)),
                         "vs_none": statistics.mean(a - b for a, b in pairs) if pairs else None,
                         "epochs_kept": [replay(c, **rule)[0] for c in mine],
                         "epochs_trained": statistics.mean(replay(c, **rule)[1] for c in mine)})
    return rows


def print_rows(rows: list[dict]) -> None:
    print(f"\n{'data':<6}{'threads':>8} {'variant':<10} {'rule':<38}{'mean ± std':>14}{'worst':>7}"
          f"{'paired':>8}{'vs none':>8}{'epochs':>7}  per seed")
    for r in rows:
        vs = "" if r["vs_none"] is None or r["variant"] == "none" else f"{r['vs_none']:+.3f}"
        print(f"{r['dataset']:<6}{r['threads']:>8} {r['variant']:<10} {r['rule']:<38}"
              f"{r['mean']:>8.3f}±{r['std']:.3f}{r['worst']:>7.3f}{r['paired']:>+8.3f}{vs:>8}"
              f"{r['epochs_trained']:>7.0f}  "
              + " ".join(f"{v:.3f}" for v in r["test_macro_f1"]))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", default=[], help="hapt=PATH and/or synth")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--threads", default="default,1",
                        help="comma-separated: default (TensorFlow's choice) and/or counts")
    parser.add_argument("--variants", default="none", help=f"comma-separated: {', '.join(VARIANTS)}")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once")
    parser.add_argument("--runs-dir", default=Path(tempfile.gettempdir()) / "gk-stopping", type=Path)
    args = parser.parse_args(argv)
    args.runs_dir.mkdir(parents=True, exist_ok=True)
    datasets = dict(item.split("=", 1) if "=" in item else (item, None) for item in args.data)
    paths = {}
    for name, path in (datasets or {"synth": None}).items():
        if path is None:
            path = args.runs_dir / "synth-data"
            if not (path / "dataset.toml").is_file():
                subprocess.run([sys.executable, "-m", "gesturekit.cli", "data", "synth", "--out",
                                str(path), "--force"], check=True, cwd=REPO, capture_output=True)
        paths[name] = Path(path)
    todo = [(d, int(s), t, v) for v in args.variants.split(",") for t in args.threads.split(",")
            for d in paths for s in args.seeds.split(",")]
    with ThreadPoolExecutor(args.jobs) as pool:
        cells = list(pool.map(lambda t: run_trace(t[0], paths[t[0]], *t[1:], args.runs_dir), todo))
    # Earlier invocations' cells stay (a rerun of the same cell replaces it): the table covers
    # every run made, whichever command made it.
    key = ("dataset", "threads", "variant", "seed")
    mine = {tuple(c[k] for k in key) for c in cells}
    old = json.loads(RESULTS.read_text())["cells"] if RESULTS.is_file() else []
    cells = [c for c in old if tuple(c.get(k, "none") for k in key) not in mine] + cells
    rows = rule_rows(cells)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"cells": cells, "rules": RULES, "rows": rows}, indent=1) + "\n")
    print_rows(rows)


if __name__ == "__main__":
    main()
