"""`gesturekit compare`: train every variant (a strategy name or a config file) with every seed
through the same `train_run` as `gesturekit train` (with `--folds K`, as `train --folds K`),
then say which variant the data supports, or that it cannot tell them apart.

The output folder holds `compare.json` (every run's row, the summary, the recommendation),
`compare.md`, `compare.png` (one line per seed or fold across the variants) and `runs/` (one
run folder per run). The three files are rewritten atomically after every finished run, so an
interrupted compare leaves a valid partial table, and a rerun of the same command does only
the runs still missing: a run is found again by its key (variant, seed) and the hash of its
whole config. A run that fails is a row with its error; the others go on.

Statistics: two variants' runs with the same seed share the split, the folds and the seed, so
variants are compared by paired differences (per seed, or per seed and fold), with a t-based
95% confidence interval over those pairs. The best variant by mean macro-F1 is recommended
only when its interval against every other variant lies above zero; otherwise the data cannot
tell them apart, and the baseline (the first variant) is kept when it is among the tied ones.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import re
import socket
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gesturekit.device.core.files import write_atomic
from gesturekit.errors import UserError
from gesturekit.train.config import STRATEGIES, TrainConfig, apply_values, read_config_file

COMPARE_JSON = "compare.json"
COMPARE_MD = "compare.md"
COMPARE_PNG = "compare.png"
KIND = "gesturekit-compare"
FORMAT_VERSION = 1
# Settings every variant shares, set by compare for each run (pairing needs the same split).
PER_RUN_KEYS = ("seed", "test_subjects", "val_subjects")
# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
       2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
       2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


@dataclass
class Variant:
    name: str
    settings: dict  # TrainConfig keys applied over the shared config
    source: str  # the strategy name or the config file it came from


def parse_variants(text: str) -> list[Variant]:
    """`direct,three-phase,big.toml`: strategy names and JSON/TOML config files of settings."""
    variants = []
    for item in [s.strip() for s in text.split(",") if s.strip()]:
        if item in STRATEGIES:
            variants.append(Variant(item, {"strategy": item}, item))
            continue
        path = Path(item)
        if path.suffix not in (".json", ".toml") or not path.is_file():
            raise UserError(f"--strategies: unknown strategy {item!r}; expected one of "
                            f"{', '.join(STRATEGIES)} or an existing .json/.toml config file")
        settings = read_config_file(item)
        shared = [k for k in PER_RUN_KEYS if k in settings]
        if shared:
            raise UserError(f"{item}: a variant cannot set {', '.join(shared)} (compare sets them "
                            "alike for every variant, so that runs pair up)")
        apply_values(TrainConfig(), copy.deepcopy(settings), item).check()
        variants.append(Variant(path.stem, settings, str(path)))
    if len(variants) < 2:
        raise UserError(f"--strategies {text!r}: expected at least two variants to compare")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise UserError(f"--strategies {text!r}: variant names repeat ({', '.join(names)}); "
                        "config files are named by their stem")
    return variants


def variant_config(base: TrainConfig, variant: Variant) -> TrainConfig:
    """The shared config with the variant's settings over it (the variant wins)."""
    cfg = apply_values(copy.deepcopy(base), copy.deepcopy(variant.settings), variant.source)
    cfg.check()
    return cfg


def config_hash(data: str, options: dict, config: dict) -> str:
    text = json.dumps({"data": data, "options": options, "config": config}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plan_runs(data: str, options: dict, base: TrainConfig, variants: list[Variant], seeds: list[int],
              runs_dir: Path) -> list[dict]:
    """One spec per (variant, seed), seed-major so a partial compare has whole seeds. With
    `base.folds` each run is `train --folds K`: its K fold scores are the compare's units."""
    specs = []
    for seed in seeds:
        for variant in variants:
            cfg = variant_config(base, variant)
            cfg.seed = seed
            config = cfg.to_dict()
            specs.append({"key": f"{variant.name}/seed{seed}", "variant": variant.name,
                          "seed": seed, "data": data, "options": options, "config": config,
                          "hash": config_hash(data, options, config),
                          "run": str(runs_dir / f"{_slug(variant.name)}-s{seed}")})
    return specs


def execute_run(spec: dict) -> dict:
    """Train one run of a compare (in a worker process or a Ray task). A failed run returns a
    row with its error instead of raising, so it is one row of the table."""
    from gesturekit.train.trainer import train_run

    row = {k: spec[k] for k in ("key", "variant", "seed", "hash", "run")}
    row["host"] = socket.gethostname()
    t0 = time.perf_counter()
    try:
        cfg = apply_values(TrainConfig(), copy.deepcopy(spec["config"]), f"run {spec['key']}")
        cfg.check()
        metrics = train_run(spec["data"], spec["run"], cfg, spec["options"], force=True,
                            progress=lambda _: None)
    except Exception as e:  # noqa: BLE001 - reported in the row
        # exit_code: 2 or 3 for a user error, 1 for anything else (`every_run_failed`).
        row.update(status="failed", error=_one_line(e), traceback=traceback.format_exc(),
                   exit_code=getattr(e, "exit_code", 1), seconds=time.perf_counter() - t0)
        return row
    finally:
        if "keras" in sys.modules:  # free the graph before this process's next run
            sys.modules["keras"].backend.clear_session()
    test = metrics["test"]
    cv = metrics.get("cross_validation")
    if cv:  # each fold's model scored on its held-out subjects (the ones it stopped on)
        row["folds"] = [{"fold": i, "subjects": f["val_subjects"], "macro_f1": f["val_macro_f1"]}
                        for i, f in enumerate(cv["folds"])]
    row.update(status="ok", macro_f1=test["macro_f1"],
               balanced_accuracy=test["balanced_accuracy"], accuracy=test["accuracy"],
               per_class_f1={c: v["f1"] for c, v in test["per_class"].items() if v["support"]},
               validation_macro_f1=metrics.get("validation_macro_f1"), split=metrics["split"],
               epochs={p: r["epochs"] for p, r in metrics["phases"].items() if "epochs" in r},
               seconds=time.perf_counter() - t0)
    return row


def every_run_failed(state: dict, out: str | os.PathLike) -> UserError | None:
    """When no run of a compare finished: the one-line error to end the command with; its exit
    code is the runs' own when they share one (2 or 3: every run failed on its input), else 1."""
    runs = state["runs"]
    if not runs or any(r["status"] == "ok" for r in runs):
        return None
    error = UserError(f"every run failed, e.g. {runs[0]['key']}: {runs[0]['error']} (all errors: "
                      f"{Path(out) / COMPARE_MD})")
    codes = {r.get("exit_code", 1) for r in runs}
    error.exit_code = codes.pop() if len(codes) == 1 else 1
    return error


def _one_line(e: BaseException) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# --- statistics -----------------------------------------------------------------------------


def t95(df: int) -> float:
    """Two-sided 95% quantile of Student's t (Cornish-Fisher expansion beyond the table)."""
    if df <= len(T95):
        return T95[df - 1]
    z = 1.959964
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def unit_scores(rows: list[dict]) -> list[dict]:
    """The compared scores: each finished run's test macro-F1, or with folds each fold's."""
    units = []
    for r in rows:
        if r["status"] != "ok":
            continue
        for f in r.get("folds") or [{"fold": None, "macro_f1": r["macro_f1"]}]:
            units.append({"variant": r["variant"], "seed": r["seed"], "fold": f["fold"],
                          "macro_f1": f["macro_f1"]})
    return units


def paired(units: list[dict], a: str, b: str) -> dict:
    """a - b in macro-F1 over the (seed, fold) units where both ran, with a 95% interval."""
    by_unit: dict = {}
    for u in units:
        by_unit.setdefault((u["seed"], u["fold"] or 0), {})[u["variant"]] = u["macro_f1"]
    diffs = [got[a] - got[b] for _, got in sorted(by_unit.items()) if a in got and b in got]
    n = len(diffs)
    result = {"a": a, "b": b, "n": n, "diffs": diffs, "mean": statistics.mean(diffs) if n else None,
              "sd": statistics.stdev(diffs) if n > 1 else None, "ci95": None}
    if n > 1:
        half = t95(n - 1) * result["sd"] / math.sqrt(n)
        result["ci95"] = [result["mean"] - half, result["mean"] + half]
    return result


def summarise(rows: list[dict], variants: list[str]) -> list[dict]:
    """Per variant: runs, mean ± std of the compared scores, the worst one, the test balanced
    accuracy and per-class F1, and the paired difference from the baseline (first variant)."""
    units = unit_scores(rows)
    out = []
    for name in variants:
        mine = [r for r in rows if r["variant"] == name]
        ok = [r for r in mine if r["status"] == "ok"]
        scored = [u for u in units if u["variant"] == name]
        entry = {"variant": name, "runs": len(mine), "ok": len(ok),
                 "failed": sum(r["status"] == "failed" for r in mine)}
        if ok:
            f1 = [u["macro_f1"] for u in scored]
            classes = sorted({c for r in ok for c in r["per_class_f1"]})
            entry.update(
                macro_f1_mean=statistics.mean(f1),
                macro_f1_std=statistics.stdev(f1) if len(f1) > 1 else 0.0,
                worst=min(scored, key=lambda u: u["macro_f1"]),
                balanced_accuracy_mean=statistics.mean(r["balanced_accuracy"] for r in ok),
                seconds_mean=statistics.mean(r["seconds"] for r in ok),
                per_class_f1={c: statistics.mean(r["per_class_f1"][c] for r in ok
                                                 if c in r["per_class_f1"]) for c in classes})
        if name != variants[0]:
            entry["vs_baseline"] = paired(units, name, variants[0])
        out.append(entry)
    return out


def _interval(p: dict) -> str:
    if p["mean"] is None:
        return "no paired runs"
    if p["ci95"] is None:
        return f"{p['mean']:+.3f} (1 pair, no interval)"
    lo, hi = p["ci95"]
    return f"{p['mean']:+.3f} (95% CI {lo:+.3f} to {hi:+.3f}, {p['n']} pairs)"


def recommend(rows: list[dict], summary: list[dict]) -> dict:
    """The best variant by mean if it beats every other one with the whole 95% interval above
    zero; otherwise a tie, and the baseline is kept when it is among the tied variants."""
    ranked = sorted((s for s in summary if s["ok"]), key=lambda s: -s["macro_f1_mean"])
    baseline = summary[0]["variant"]
    if not ranked:
        return {"verdict": "none", "variant": None, "tied": [], "evidence": [],
                "text": "No run finished; nothing to recommend."}
    best = ranked[0]["variant"]
    units = unit_scores(rows)
    evidence = [paired(units, best, s["variant"]) for s in ranked[1:]]
    lines = [f"- {best} - {e['b']}: {_interval(e)}" for e in evidence]
    missing = [s["variant"] for s in summary if not s["ok"]]
    if missing:
        chosen = baseline if baseline not in missing else best
        text = (f"**No verdict: {', '.join(missing)} finished no run** (see the errors below). "
                f"Keeping {chosen}.")
        return {"verdict": "incomplete", "variant": chosen, "tied": [], "evidence": evidence,
                "text": "\n".join([text, *lines])}
    tied = [e["b"] for e in evidence if e["ci95"] is None or e["ci95"][0] <= 0]
    if not tied:
        text = (f"**Recommended: {best}** (macro-F1 {ranked[0]['macro_f1_mean']:.3f} ± "
                f"{ranked[0]['macro_f1_std']:.3f}); it beats every other variant on paired runs, "
                "each 95% interval above zero:")
        return {"verdict": "winner", "variant": best, "tied": [], "evidence": evidence,
                "text": "\n".join([text, *lines])}
    group = [best, *tied]
    chosen = baseline if baseline in group else best
    few = any(e["ci95"] is None for e in evidence if e["b"] in tied)
    why = ("too few paired runs for an interval; run more seeds" if few else
           "a 95% interval of the paired difference contains zero")
    text = (f"**The data cannot tell {', '.join(group)} apart** ({why}). Keeping {chosen} "
            f"({'the baseline' if chosen == baseline else 'the highest mean'}). Best by mean: "
            f"{best} ({ranked[0]['macro_f1_mean']:.3f} ± {ranked[0]['macro_f1_std']:.3f}):")
    return {"verdict": "tie", "variant": chosen, "tied": group, "evidence": evidence,
            "text": "\n".join([text, *lines])}


# --- output ---------------------------------------------------------------------------------


def _unit(u: dict) -> str:
    return f"seed {u['seed']}" + (f" fold {u['fold']}" if u["fold"] is not None else "")


def markdown(state: dict) -> str:
    s, rec = state["summary"], state["recommendation"]
    done = sum(r["status"] == "ok" for r in state["runs"])
    failed = sum(r["status"] == "failed" for r in state["runs"])
    baseline = s[0]["variant"]
    scored = (f"each fold's model on its {state['folds']} held-out folds of the non-test subjects "
              "(the subjects it early-stopped on)" if state["folds"] else "the test subjects")
    lines = [f"# gesturekit compare: {', '.join(v['name'] for v in state['variants'])}", "",
             f"Data `{state['data']}`; seeds {', '.join(map(str, state['seeds']))}; "
             f"{state['total']} runs: {done} done, {failed} failed, "
             f"{state['total'] - done - failed} not run ({state['status']}). Compared: macro-F1 "
             f"of {scored}, paired by seed{' and fold' if state['folds'] else ''}.", "",
             rec["text"], "",
             f"| variant | runs ok | macro-F1 mean ± std | worst | test balanced acc. | "
             f"paired vs {baseline} | s/run |", "|---|---|---|---|---|---|---|"]
    for e in s:
        if not e["ok"]:
            lines.append(f"| {e['variant']} | 0/{e['runs']} | | | | | |")
            continue
        worst = f"{e['worst']['macro_f1']:.3f} ({_unit(e['worst'])})"
        vs = _interval(e["vs_baseline"]) if "vs_baseline" in e else "baseline"
        lines.append(f"| {e['variant']} | {e['ok']}/{e['runs']} | {e['macro_f1_mean']:.3f} ± "
                     f"{e['macro_f1_std']:.3f} | {worst} | {e['balanced_accuracy_mean']:.3f} | {vs} | "
                     f"{e['seconds_mean']:.0f} |")
    names = [e["variant"] for e in s if e["ok"]]
    classes = sorted({c for e in s for c in e.get("per_class_f1", {})})
    if classes:
        lines += ["", "Per-class test F1 (mean over runs):", "",
                  "| class | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        for c in classes:
            cells = [f"{e['per_class_f1'][c]:.3f}" if c in e["per_class_f1"] else ""
                     for e in s if e["ok"]]
            lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", f"![macro-F1 per seed]({COMPARE_PNG})", "", "Every run:", "",
              "| variant | seed | status | test macro-F1 | test balanced acc. | folds | seconds | "
              "where / error |", "|---|---|---|---|---|---|---|---|"]
    for r in state["runs"]:
        if r["status"] == "ok":
            folds = ", ".join(f"{f['macro_f1']:.3f}" for f in r.get("folds") or [])
            lines.append(f"| {r['variant']} | {r['seed']} | ok | {r['macro_f1']:.3f} | "
                         f"{r['balanced_accuracy']:.3f} | {folds} | {r['seconds']:.0f} | {r['host']} |")
        else:
            lines.append(f"| {r['variant']} | {r['seed']} | failed | | | | {r['seconds']:.0f} | "
                         f"{r['error'].replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def plot(state: dict) -> bytes:
    """One line per seed (or seed and fold) across the variants: crossing lines are the seed
    noise that the paired intervals account for."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [v["name"] for v in state["variants"]]
    units = unit_scores(state["runs"])
    fig, ax = plt.subplots(figsize=(2.5 + 1.4 * len(names), 4))
    for seed, fold in sorted({(u["seed"], u["fold"] or 0) for u in units}):
        got = {u["variant"]: u["macro_f1"] for u in units
               if u["seed"] == seed and (u["fold"] or 0) == fold}
        xs = [i for i, n in enumerate(names) if n in got]
        label = f"seed {seed}" + (f" fold {fold}" if state["folds"] else "")
        ax.plot(xs, [got[names[i]] for i in xs], marker="o", alpha=0.7, label=label)
    means = [(i, e["macro_f1_mean"]) for i, e in enumerate(state["summary"]) if e["ok"]]
    ax.plot([i for i, _ in means], [m for _, m in means], "k_", markersize=24, mew=2, label="mean")
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set(ylabel="fold macro-F1" if state["folds"] else "test macro-F1",
           title="each line: one seed" + (" and fold" if state["folds"] else ""))
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def save(out: Path, state: dict) -> None:
    names = [v["name"] for v in state["variants"]]
    state["summary"] = summarise(state["runs"], names)
    state["recommendation"] = recommend(state["runs"], state["summary"])
    write_atomic(out / COMPARE_PNG, plot(state))
    write_atomic(out / COMPARE_MD, markdown(state))
    write_atomic(out / COMPARE_JSON, json.dumps(state, indent=1) + "\n")


# --- the command ----------------------------------------------------------------------------


def claim_folder(out: Path) -> list[dict]:
    """Check that `out` is new, empty or an earlier compare's folder (anything else is
    refused); returns the earlier compare's rows."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        path = out / COMPARE_JSON
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            previous = None
        if not isinstance(previous, dict) or previous.get("kind") != KIND:
            raise UserError(f"{out}: exists and is not a compare folder (no valid {COMPARE_JSON}); "
                            "choose another --out")
        return [r for r in previous.get("runs", []) if isinstance(r, dict)]
    return []


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def compare(data: str, out: str | os.PathLike, base: TrainConfig, variants: list[Variant],
            seeds: list[int], options: dict | None = None, workers: int = 1,
            cluster: str | None = None, progress: Callable[[str], None] = print) -> dict:
    """Run (or finish) a compare in `out` and return its state (what compare.json holds)."""
    from gesturekit.train.cluster import open_pool

    out = Path(out)
    options = options or {}
    data = str(Path(data).resolve())
    if not seeds:
        raise UserError("--seeds must be at least 1")
    if cluster is None:
        check_inputs(data, options, base)
    previous = claim_folder(out)
    specs = plan_runs(data, options, base, variants, seeds, out / "runs")
    reuse = {(r.get("key"), r.get("hash")): r for r in previous if r.get("status") == "ok"}
    rows = {s["key"]: reuse[(s["key"], s["hash"])] for s in specs if (s["key"], s["hash"]) in reuse}
    todo = [s for s in specs if s["key"] not in rows]
    folds = getattr(base, "folds", 0) or None
    state = {"kind": KIND, "format_version": FORMAT_VERSION, "data": data, "options": options,
             "variants": [v.__dict__ for v in variants], "seeds": seeds, "folds": folds,
             "test_subjects": base.test_subjects, "total": len(specs), "status": "running",
             "runs": []}

    def record() -> None:
        order = {s["key"]: i for i, s in enumerate(specs)}
        state["runs"] = sorted(rows.values(), key=lambda r: order[r["key"]])
        save(out, state)

    pool = open_pool(workers, cluster, out / "logs") if todo else None  # bad address: nothing written
    for folder in (out / "runs", out / "logs"):
        folder.mkdir(parents=True, exist_ok=True)
    if pool is None:
        state["status"] = "complete"
        record()
        progress(f"compare: all {len(specs)} runs already done in {out}")
        return state
    record()
    progress(f"compare: {len(specs)} runs ({len(variants)} variants x {len(seeds)} seeds"
             + (f", {folds} folds each" if folds else "") + f"), {len(rows)} already done; "
             f"{pool.describe()}")
    try:
        _run_pending(pool, todo, rows, len(specs), record, progress)
    except KeyboardInterrupt:
        pool.close(interrupted=True)
        state["status"] = "interrupted"
        record()
        progress(f"compare: interrupted with {len(rows)} of {len(specs)} runs done; the table in "
                 f"{out / COMPARE_MD} is valid; the same command finishes the rest")
        raise
    pool.close()
    state["status"] = "complete"
    record()
    return state


def _run_pending(pool, todo: list[dict], rows: dict, total: int, record: Callable[[], None],
                 progress: Callable[[str], None]) -> None:
    """Keep the pool's slots busy until every run of `todo` has its row in `rows` (a failed
    run too, with its error); `record` saves the state after each."""
    running: dict = {}
    t0 = time.perf_counter()
    finished_here = 0
    while todo or running:
        while todo and len(running) < pool.slots:
            spec = todo.pop(0)
            running[pool.submit(execute_run, spec)] = spec
            progress(f"  started {spec['key']}")
        for handle, result in pool.finished(list(running), timeout=1.0):
            spec = running.pop(handle)
            row = result if isinstance(result, dict) else {
                **{k: spec[k] for k in ("key", "variant", "seed", "hash", "run")},
                "status": "failed", "error": _one_line(result), "seconds": 0.0, "host": "?"}
            rows[spec["key"]] = row
            finished_here += 1
            left = len(todo) + len(running)
            eta = (time.perf_counter() - t0) / finished_here * left
            what = (f"macro-F1 {row['macro_f1']:.3f}" if row["status"] == "ok"
                    else f"FAILED: {row['error']}")
            progress(f"[{len(rows)}/{total}] {row['key']}: {what} ({row['seconds']:.0f} s, "
                     f"{row['host']}); running {len(running)}, left {len(todo)}"
                     + (f", ETA {_duration(eta)}" if left else ""))
            record()


def check_inputs(data: str, options: dict, base: TrainConfig) -> None:
    """The dataset loads and the subjects named are in it: once, before a folder is written or
    a worker started, so bad input is one line, not a row of failed runs. (On a Ray cluster
    each node reads its own copy of the data, so it is not checked here.)"""
    from gesturekit.train.datasets import load_dataset, split_subjects

    dataset = load_dataset(data, **options)
    split_subjects(dataset.subjects, 0, base.test_subjects, base.val_subjects,
                   train_subjects=base.train_subjects)


def write_winner_config(state: dict, base: TrainConfig, variants: list[Variant], path: str) -> None:
    """The recommended (or kept) variant's settings as JSON for `gesturekit train --config`
    (without the seed and validation subjects, which are each run's own)."""
    chosen = state["recommendation"]["variant"]
    if chosen is None:
        raise UserError(f"--apply {path}: no run finished, so there is no config to write")
    cfg = variant_config(base, next(v for v in variants if v.name == chosen)).to_dict()
    for key in ("seed", "val_subjects"):
        cfg.pop(key)
    write_atomic(Path(path), json.dumps(cfg, indent=2) + "\n")


# --- train --strategy auto ------------------------------------------------------------------

AUTO_FOLDS = 3  # when `train --strategy auto` is not given --folds


def train_auto(data: str, out: str | os.PathLike, cfg: TrainConfig, options: dict | None = None,
               force: bool = False, progress: Callable[[str], None] = print) -> dict:
    """`train --strategy auto`: every strategy as `train --folds K` with `cfg`'s seed, compared
    on the folds of the non-test subjects (never on the test subjects); the recommended one's
    run (its final model trained on every non-test subject) becomes the run folder `out`, with
    the comparison in `out/strategy/` and the reason in its report. Returns its metrics."""
    import shutil

    from gesturekit.device.core.files import check_replaceable, replace_folder
    from gesturekit.train.report import REPORT_MD
    from gesturekit.train.runs import CONFIG_JSON, METRICS_JSON

    out = Path(out)
    check_replaceable(out, force, CONFIG_JSON, "run folder")
    cfg = copy.deepcopy(cfg)
    cfg.folds = cfg.folds or AUTO_FOLDS
    variants = [Variant(s, {"strategy": s}, s) for s in STRATEGIES]

    def build(work: Path) -> tuple[dict, dict, dict]:
        """The comparison in work/strategy, then the winner's run moved up into `work`: the
        run folder, swapped in whole (an earlier run at `out` stays until then)."""
        from gesturekit.train.cluster import available_cores

        strategy = work / "strategy"
        state = compare(data, strategy, cfg, variants, [cfg.seed], options,
                        workers=min(len(variants), available_cores()), progress=progress)
        rec = state["recommendation"]
        row = next((r for r in state["runs"] if r["variant"] == rec["variant"]), None)
        if row is None or row["status"] != "ok":
            why = row["error"] if row else "no run recorded"
            raise UserError(f"--strategy auto: no strategy finished its run ({why})")
        for item in Path(row["run"]).iterdir():
            item.rename(work / item.name)
        for name in ("runs", "logs"):
            shutil.rmtree(strategy / name, ignore_errors=True)
        metrics = json.loads((work / METRICS_JSON).read_text())
        metrics["strategy_choice"] = {"recommendation": rec, "summary": state["summary"]}
        why = (f"\n## Why {rec['variant']}\n\n`--strategy auto` trained every strategy with "
               f"{cfg.folds} folds of the non-test subjects (seed {cfg.seed}) and compared their "
               f"fold macro-F1, paired by fold ([the comparison](strategy/{COMPARE_MD})):\n\n"
               f"{rec['text']}\n")
        with open(work / REPORT_MD, "a", encoding="utf-8") as f:
            f.write(why)
        write_atomic(work / METRICS_JSON, json.dumps(metrics, indent=2) + "\n")  # last
        return metrics, rec, state

    metrics, rec, state = replace_folder(out, build)
    progress(f"strategy auto: {rec['text'].splitlines()[0]}")
    return metrics
