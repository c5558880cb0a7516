"""The soak and fault matrix in a bounded form for CI: `bench/soak.py` on 3 minutes of a 100 Hz
stream (about 20 s here) with every fault forced at least twice (pulled cables, silences)
and the rest on its random schedule (junk bursts, skipped samples, cut writes). The long
run (10 hours of stream) is the same script; its results are in bench/results/soak.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_soak_short(quick_bundle, tmp_path):
    out = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--bundle", str(quick_bundle),
         "--hours", "0.05", "--min-disconnects", "2", "--seed", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, (result.stdout, result.stderr[-3000:])
    r = json.loads(out.read_text())
    assert r["passed"], (result.stdout, result.stderr[-3000:])
    assert all(r["checks"].values()) and len(r["checks"]) == 11
    assert r["samples_lost"] == 0
    assert r["board"]["disconnects"] >= 2 and r["runner"]["reconnects"] == r["board"]["disconnects"]
    assert r["board"]["silences"] >= 3  # two forced, one at the end: the stream stops
    assert r["runner"]["windows"] > 100
