"""`gesturekit compare` for real: tiny TensorFlow runs on a small synthetic set, with 1 and 2
local worker processes and on a real Ray head started here on 127.0.0.1; resuming, Ctrl-C,
failed runs, --apply, and the bad-input errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gesturekit.cli import main

pytestmark = pytest.mark.trains  # tiny models, but real training: left out of `make check`

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Small enough that one run is seconds on CI's 2 cores; the table is what is compared.
TINY = {"sandbox": False,
        "model": {"conv_filters": [8, 8], "pool_after": [1, 2], "lstm_units": 8},
        **{phase: {"epochs": 2, "min_epochs": 2, "patience": 2, "batch_size": 64,
                   "learning_rate": 3e-3} for phase in ("cnn", "lstm", "direct")}}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from gesturekit.train.synth import SynthConfig, write_synthetic_dataset

    return write_synthetic_dataset(tmp_path_factory.mktemp("synth") / "data",
                                   SynthConfig(seed=0, subjects=5, minutes=4.0))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cfg") / "tiny.json"
    path.write_text(json.dumps(TINY))
    return str(path)


def compare_args(data, tiny, out, *extra) -> list[str]:
    return ["compare", str(data), "--strategies", "direct,three-phase", "--seeds", "3",
            "--config", tiny, "--test-subjects", "5", "--out", str(out), *extra]


def table(out: Path) -> list[tuple]:
    """What must not depend on where runs ran: each run's key and scores."""
    state = json.loads((out / "compare.json").read_text())
    return [(r["key"], r["status"], r["macro_f1"], r["balanced_accuracy"],
             sorted(r["per_class_f1"].items())) for r in state["runs"]]


@pytest.fixture(scope="module")
def one_worker(data, tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compare") / "w1"
    assert main(compare_args(data, tiny, out, "--workers", "1")) == 0
    return out


def test_one_worker_writes_the_table_the_plot_and_a_verdict(one_worker):
    state = json.loads((one_worker / "compare.json").read_text())
    assert state["status"] == "complete" and state["total"] == 6
    assert [r["key"] for r in state["runs"]] == [
        f"{v}/seed{s}" for s in range(3) for v in ("direct", "three-phase")]
    assert all(r["status"] == "ok" for r in state["runs"])
    direct, three = state["summary"]
    assert direct["variant"] == "direct" and direct["ok"] == 3 and "vs_baseline" not in direct
    pair = three["vs_baseline"]
    assert pair["n"] == 3 and pair["ci95"][0] <= pair["mean"] <= pair["ci95"][1]
    # The paired mean is the mean of the per-seed differences.
    f1 = {(r["variant"], r["seed"]): r["macro_f1"] for r in state["runs"]}
    diffs = [f1["three-phase", s] - f1["direct", s] for s in range(3)]
    assert pair["mean"] == pytest.approx(sum(diffs) / 3)
    assert set(three["per_class_f1"]) <= {"idle", "jump", "punch", "turn", "walk"}
    rec = state["recommendation"]
    assert rec["verdict"] in ("winner", "tie") and rec["variant"] in ("direct", "three-phase")
    md = (one_worker / "compare.md").read_text()
    assert rec["text"].splitlines()[0] in md and "| three-phase | 3/3 |" in md
    assert (one_worker / "compare.png").read_bytes()[:4] == b"\x89PNG"
    for r in state["runs"]:
        assert (Path(r["run"]) / "metrics.json").is_file()  # a real run folder, as `train` writes


def test_two_workers_give_the_same_table(one_worker, data, tiny, tmp_path, capsys):
    out = tmp_path / "w2"
    assert main(compare_args(data, tiny, out, "--workers", "2")) == 0
    assert "2 local worker process(es), 1 TensorFlow thread each" in capsys.readouterr().out
    assert table(out) == table(one_worker)


@pytest.fixture
def ray_head():
    """A real Ray head on 127.0.0.1 with 2 CPUs and no dashboard; its Ray-client address."""
    from harness.ray_head import local_head

    with local_head(2) as address:
        yield address


def test_ray_cluster_gives_the_same_table(one_worker, data, tiny, tmp_path, ray_head):
    """`gesturekit compare --cluster ray://...` in its own process, as a user runs it. The
    head is `local_head`'s, with gRPC's fork handlers off: with them on, Ray's client server
    sometimes lost the session process it forks (ray-project/ray#63202) and this test timed
    out (bench/ray_client_sessions.py)."""
    out = tmp_path / "ray"
    result = subprocess.run([sys.executable, "-m", "gesturekit.cli",
                             *compare_args(data, tiny, out, "--cluster", ray_head)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert f"Ray cluster {ray_head} (2 CPUs, 0 GPUs; 2 runs at a time)" in result.stdout
    assert table(out) == table(one_worker)


def test_ctrl_c_leaves_a_valid_table_and_a_rerun_finishes_only_the_rest(one_worker, data, tiny,
                                                                        tmp_path):
    out = tmp_path / "resume"
    shutil.copytree(one_worker, out)
    state = json.loads((out / "compare.json").read_text())
    state["runs"] = state["runs"][:4]  # as if the compare had stopped after four runs
    (out / "compare.json").write_text(json.dumps(state))
    cmd = [sys.executable, "-m", "gesturekit.cli", *compare_args(data, tiny, out, "--workers", "2")]
    # Ctrl-C as at a terminal: a shell starts background jobs with SIGINT ignored, and Python
    # keeps an ignored SIGINT ignored, so the child gets the default back before it starts.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    before = []
    for line in proc.stdout:  # Ctrl-C once both missing runs are under way
        before.append(line)
        if sum("started" in b for b in before) == 2:
            break
    time.sleep(3)  # the workers are importing TensorFlow or training
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, rest
    assert "6 runs (2 variants x 3 seeds), 4 already done" in "".join(before)
    assert "interrupted with 4 of 6 runs done" in rest
    partial = json.loads((out / "compare.json").read_text())
    assert partial["status"] == "interrupted" and len(partial["runs"]) == 4
    assert "4 done, 0 failed, 2 not run (interrupted)" in (out / "compare.md").read_text()
    # The rerun trains only the two missing runs and ends with the same table.
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "6 runs (2 variants x 3 seeds), 4 already done" in result.stdout
    assert result.stdout.count("started") == 2
    assert table(out) == table(one_worker)
    # Nothing left running: a third call has nothing to do.
    assert main(compare_args(data, tiny, out)) == 0


def test_a_failed_run_is_a_row_and_apply_writes_the_kept_config(data, tiny, tmp_path):
    bad = tmp_path / "long.json"
    bad.write_text(json.dumps({"window": 100_000}))  # longer than every session: train refuses
    apply = tmp_path / "winner.json"
    out = tmp_path / "out"
    assert main(["compare", str(data), "--strategies", f"direct,{bad}", "--seeds", "1",
                 "--config", tiny, "--test-subjects", "5", "--out", str(out),
                 "--apply", str(apply)]) == 0
    state = json.loads((out / "compare.json").read_text())
    ok, failed = state["runs"]
    assert ok["status"] == "ok" and failed["status"] == "failed"
    assert "longer than every session" in failed["error"]
    assert state["recommendation"]["verdict"] == "incomplete"
    assert state["recommendation"]["variant"] == "direct"
    assert "| long | 0 | failed |" in (out / "compare.md").read_text()
    written = json.loads(apply.read_text())
    assert written["strategy"] == "direct" and written["sandbox"] is False
    assert "seed" not in written
    from gesturekit.train.config import build_config

    assert build_config(str(apply)).model.lstm_units == 8  # what `train --config` reads


def _rows(scores: dict[str, list[float]]) -> list[dict]:
    return [{"variant": v, "seed": seed, "status": "ok", "macro_f1": f1, "balanced_accuracy": f1,
             "seconds": 1.0, "per_class_f1": {"a": f1}} for v, f1s in scores.items()
            for seed, f1 in enumerate(f1s)]


def test_the_verdict_needs_the_paired_interval_above_zero():
    from gesturekit.train.compare import recommend, summarise

    # Seeds move both variants a lot, but b is ahead by 0.03-0.05 on every seed: a winner.
    rows = _rows({"a": [0.60, 0.75, 0.68, 0.71], "b": [0.64, 0.78, 0.73, 0.75]})
    summary = summarise(rows, ["a", "b"])
    pair = summary[1]["vs_baseline"]
    assert pair["mean"] == pytest.approx(0.04) and pair["n"] == 4
    # t(3) = 3.182; sd of (0.04, 0.03, 0.05, 0.04) = 0.00816
    assert pair["ci95"] == pytest.approx([0.04 - 3.182 * 0.0081650 / 2, 0.04 + 3.182 * 0.0081650 / 2],
                                         abs=1e-5)
    rec = recommend(rows, summary)
    assert rec["verdict"] == "winner" and rec["variant"] == "b"
    # The same means, but b's lead flips sign with the seed: the data cannot tell them apart,
    # and the baseline is kept.
    rows = _rows({"a": [0.60, 0.75, 0.68, 0.71], "b": [0.70, 0.72, 0.75, 0.73]})
    rec = recommend(rows, summarise(rows, ["a", "b"]))
    assert rec["verdict"] == "tie" and rec["variant"] == "a" and rec["tied"] == ["b", "a"]
    assert "cannot tell b, a apart" in rec["text"]
    # One seed: no interval, so no verdict either.
    rows = _rows({"a": [0.60], "b": [0.70]})
    rec = recommend(rows, summarise(rows, ["a", "b"]))
    assert rec["verdict"] == "tie" and "too few paired runs" in rec["text"]


@pytest.mark.parametrize("args, message", [
    (["--strategies", "direct,nonsense"], "unknown strategy 'nonsense'"),
    (["--seeds", "0"], "argument --seeds: expected an integer >= 1, got '0'"),
    (["--cluster", "ray://127.0.0.1:9"], "--cluster ray://127.0.0.1:9: cannot reach 127.0.0.1:9"),
])
def test_bad_input_is_one_line_and_exit_2(data, tmp_path, capsys, args, message):
    start = time.monotonic()
    try:
        code = main(["compare", str(data), "--out", str(tmp_path / "out"), *args])
    except SystemExit as stop:  # refused by the option parser
        code = stop.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert time.monotonic() - start < 30
    assert not (tmp_path / "out").exists()


def test_an_output_folder_of_something_else_is_refused(data, tmp_path, capsys):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("keep me")
    assert main(["compare", str(data), "--out", str(precious)]) == 2
    err = capsys.readouterr().err
    assert "exists and is not a compare folder" in err and err.count("\n") == 1
    assert [p.name for p in precious.iterdir()] == ["chapter1.tex"]


def test_train_strategy_auto_keeps_the_fold_winner_and_says_why(data, tiny, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", str(data), "--out", str(out), "--strategy", "auto", "--folds", "2",
                 "--config", tiny, "--test-subjects", "5", "--seed", "1"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    choice = metrics["strategy_choice"]
    assert choice["recommendation"]["variant"] == metrics["strategy"]
    # Compared on the 2 folds of the non-test subjects, paired by fold; never on subject 5.
    pair = choice["summary"][1]["vs_baseline"]
    assert pair["n"] == 2 and len(pair["diffs"]) == 2
    state = json.loads((out / "strategy" / "compare.json").read_text())
    for row in state["runs"]:
        assert [len(f["subjects"]) for f in row["folds"]] == [2, 2]
        assert all("5" not in f["subjects"] for f in row["folds"])
    assert metrics["split"]["test"] == ["5"] and metrics["cross_validation"]["folds"]
    report = (out / "report.md").read_text()
    assert f"## Why {metrics['strategy']}" in report
    assert choice["recommendation"]["text"].splitlines()[0] in report
    assert (out / "model.keras").is_file()
    assert not list(tmp_path.glob(".run-strategy-*"))  # the comparison's other runs are gone
