"""One quantiser, two languages: `device.core.backends.quantize` (the runner and export parity) and
the board's `gk::quantize_value` (gk_preprocess.h) give the same int8 for every value, at ties
with odd and even zero points above all, where round(x/s) + zp and round(x/s + zp) differ.

The header is compiled with the host's g++; the test fails when g++ is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from gesturekit.device.core.backends import quantize

REPO = Path(__file__).resolve().parents[1]
HEADERS = REPO / "firmware_notes" / "libraries" / "GestureKit" / "src"
PROGRAM = r"""
#include <stdio.h>
#include "gk_preprocess.h"
// stdin: scale zero_point, then values (normalised: mean 0, std 1); stdout: one int8 each.
int main() {
  gk::Quantization in;
  if (scanf("%a %d", &in.scale, &in.zero_point) != 2) return 1;
  float x;
  while (scanf("%a", &x) == 1) printf("%d\n", gk::quantize_value(x, 0.0f, 1.0f, in));
  return 0;
}
"""


@pytest.fixture(scope="module")
def board_quantizer(tmp_path_factory) -> Path:
    cxx = shutil.which("g++")
    assert cxx, "needs g++ (apt-get install g++)"
    src = tmp_path_factory.mktemp("quantize") / "quantize.cc"
    src.write_text(PROGRAM)
    binary = src.with_suffix("")
    subprocess.run([cxx, "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{HEADERS}",
                    str(src), "-o", str(binary)], check=True, timeout=120)
    return binary


def board(binary: Path, x: np.ndarray, scale: np.float32, zero_point: int) -> np.ndarray:
    lines = [f"{float(scale).hex()} {zero_point}", *(float(v).hex() for v in x)]
    out = subprocess.run([str(binary)], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return np.array(out.split(), dtype=np.int64)


@pytest.mark.parametrize("zero_point", [-128, -3, 0, 1, 4, 127])
def test_python_and_board_quantisers_agree_at_ties(board_quantizer, zero_point):
    scale = np.float32(2.0 ** -4)  # a power of two: (k + 0.5) * scale / scale is exactly k + 0.5
    ties = ((np.arange(-300, 300) + 0.5) * scale).astype(np.float32)
    python = quantize(ties, scale, zero_point).astype(np.int64)
    np.testing.assert_array_equal(board(board_quantizer, ties, scale, zero_point), python)
    # The rule is round(x/s) + zp, half to even: 0.5 -> 0 and 1.5 -> 2 before the zero point.
    assert quantize(np.float32([0.5, 1.5]) * scale, scale, zero_point).tolist() == \
        np.clip([zero_point, zero_point + 2], -128, 127).tolist()
    if zero_point % 2:  # the old parity rule, round(x/s + zp), lands one step off at a tie
        old = np.clip(np.round(ties / scale + zero_point), -128, 127).astype(np.int64)
        assert (old != python).any()


def test_python_and_board_quantisers_agree_on_any_value(board_quantizer):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 3, 5000), [0.0, -0.0, 1e30, -1e30, np.inf, -np.inf]])
    x = x.astype(np.float32)
    for scale, zero_point in ((np.float32(0.0237), -7), (np.float32(0.1), 3)):
        np.testing.assert_array_equal(board(board_quantizer, x, scale, zero_point),
                                      quantize(x, scale, zero_point).astype(np.int64))
