"""Every command against every class of bad input: exit code 2 (or the command's own), one
line on stderr that names the culprit, no traceback, and nothing written (the inputs, and any
earlier result, byte for byte as they were).

`ROWS` is the table: (command, input class, argv, culprit). Rows that need a trained run or
bundle (`quick_run`, `quick_bundle`) run the command as a user would, in a subprocess; the
others run in-process, fast, in `make check`. `NOT_APPLICABLE` and `COVERED_ELSEWHERE` name
every (command, class) pair without a row here, and why; `test_the_table_covers_every_pair`
checks that the three add up to commands x classes and prints the matrix.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
import tty
import typing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from gesturekit.cli import build_parser, main
from gesturekit.errors import UserError
from gesturekit.train.compare import every_run_failed
from gesturekit.train.config import NESTED, TrainConfig, apply_values

COMMANDS = ("data info", "data synth", "train", "evaluate", "compare", "plot", "export",
            "calibrate", "run", "simulate", "record", "emulate")
EMPTY, HEADER, NONFINITE, TYPE, NONPOS = ("empty", "header-only", "non-finite", "wrong type",
                                          "negative or zero")
RANGE, MISSING, UNREADABLE, CHANNELS = ("out of range", "missing", "unreadable or truncated",
                                        "wrong channels")
RATES, SUBJECTS, KILLED = "mixed rates", "unknown subjects", "killed mid-write"
CLASSES = (EMPTY, HEADER, NONFINITE, TYPE, NONPOS, RANGE, MISSING, UNREADABLE, CHANNELS, RATES,
           SUBJECTS, KILLED)


@dataclass(frozen=True)
class Row:
    command: str
    kind: str  # the input class
    argv: str  # after the command; {name} is a path from `inputs` (or {run}, {bundle}, {port})
    culprit: str  # the one error line names it
    code: int = 2
    needs: str = ""  # "run" or "bundle": a trained one (the row then runs in `make test`)
    board: bytes | None = None  # {port}: a pty that sends these bytes every 0.1 s for 3 s
    hangup: bool = False  # and then hangs up (a board killed, a cable pulled), else stays silent

    @property
    def id(self) -> str:
        return f"{self.command}|{self.kind}|{self.argv.split()[0] if self.argv else ''}"


ROWS = [
    # --- data info
    Row("data info", EMPTY, "{empty_dir}", "no .csv session files"),
    Row("data info", HEADER, "{header_ds}", "s01_a.csv: a header row and no samples"),
    Row("data info", NONFINITE, "{nan_ds}", "s01_a.csv:3: column 'ay': nan is not a finite number"),
    Row("data info", TYPE, "{text_ds}", "s01_a.csv:3: column 'ay': 'abc' is not a number"),
    Row("data info", TYPE, "{good} --rate fast", "argument --rate: expected a number > 0, got 'fast'"),
    Row("data info", NONPOS, "{good} --rate 0", "argument --rate: expected a number > 0, got '0'"),
    Row("data info", RANGE, "{overflow_ds}", "s01_a.csv:3: column 'ay': 4e38 is beyond float32"),
    Row("data info", MISSING, "{missing}", "no_such_thing: no such dataset"),
    Row("data info", UNREADABLE, "{binary_ds}", "s01_a.csv: byte"),
    Row("data info", UNREADABLE, "{cut_toml_ds}", "dataset.toml: not valid TOML"),
    Row("data info", CHANNELS, "{channels_ds}", "s02_a.csv:1: channels"),
    Row("data info", CHANNELS, "{good} --channels ax,nope", "no channel column 'nope'"),
    Row("data info", RATES, "{mixed_ds}", "s02_a.csv: 100 Hz by its time column"),
    # --- data synth
    Row("data synth", EMPTY, "--out {empty}", ".: already exists; choose another --out"),
    Row("data synth", NONPOS, "--out {out} --minutes 0", "argument --minutes: expected a number > 0"),
    Row("data synth", NONFINITE, "--out {out} --minutes nan", "argument --minutes: expected a number > 0, "
                                                              "got 'nan'"),
    Row("data synth", NONFINITE, "--out {out} --minutes inf", "got 'inf'"),
    Row("data synth", TYPE, "--out {out} --subjects two", "argument --subjects: expected an integer"),
    Row("data synth", NONPOS, "--out {out} --subjects 0", "argument --subjects: expected an integer >= 1"),
    Row("data synth", NONPOS, "--out {out} --seed -1", "argument --seed: expected an integer >= 0"),
    Row("data synth", RANGE, "--out {out} --rate 60", "argument --rate: invalid choice: 60"),
    Row("data synth", MISSING, "--seed 1", "the following arguments are required: --out"),
    Row("data synth", UNREADABLE, "--out {a_file}/data", "Not a directory"),
    # --- train
    Row("train", EMPTY, "{empty_dir} --out {out}", "no .csv session files"),
    Row("train", EMPTY, "{good} --out {out} --config {empty_json}", "empty.json: not valid JSON"),
    Row("train", HEADER, "{header_ds} --out {out}", "s01_a.csv: a header row and no samples"),
    Row("train", HEADER, "{header_ds} --out {run_copy} --force", "s01_a.csv: a header row and no samples",
        needs="run"),  # the earlier run stays
    Row("train", NONFINITE, "{good} --out {out} --mixup nan", "argument --mixup: expected a number >= 0"),
    Row("train", NONFINITE, "{good} --out {out} --config {nan_json}", "nan.json: key 'direct.learning_rate': "
                                                                     "expected a number > 0, got NaN"),
    Row("train", NONFINITE, "{nan_ds} --out {out}", "column 'ay': nan is not a finite number"),
    Row("train", TYPE, "{good} --out {out} --config {purity_json}", "purity.json: key 'purity': expected a "
                                                                    "number in (0, 1], got \"high\""),
    Row("train", TYPE, "{good} --out {out} --config {seed_toml}", "seed.toml: key 'seed': expected an "
                                                                  "integer >= 0, got \"one\""),
    Row("train", TYPE, "{good} --out {out} --folds 2.5", "argument --folds: expected an integer"),
    Row("train", NONPOS, "{good} --out {out} --mixup -1", "argument --mixup: expected a number >= 0, "
                                                          "got '-1'"),
    Row("train", NONPOS, "{good} --out {out} --config {epochs_json}", "epochs.json: key 'direct.epochs': "
                                                                      "expected an integer >= 1, got 0"),
    Row("train", NONPOS, "{good} --out {out} --window 0", "--window: must be positive"),
    Row("train", RANGE, "{good} --out {out} --purity 1.5", "argument --purity: expected a number in (0, 1]"),
    Row("train", RANGE, "{good} --out {out} --beta 1", "argument --beta: expected a number in (0, 1)"),
    Row("train", RANGE, "{overflow_ds} --out {out}", "column 'ay': 4e38 is beyond float32"),
    Row("train", MISSING, "{missing} --out {out}", "no_such_thing: no such dataset"),
    Row("train", MISSING, "{good} --out {out} --config {missing}", "no_such_thing: cannot read config file"),
    Row("train", UNREADABLE, "{good} --out {out} --config {cut_json}", "cut.json: not valid JSON"),
    Row("train", UNREADABLE, "{binary_ds} --out {out}", "s01_a.csv: byte"),
    Row("train", CHANNELS, "{channels_ds} --out {out}", "s02_a.csv:1: channels"),
    Row("train", RATES, "{mixed_ds} --out {out}", "s02_a.csv: 100 Hz by its time column"),
    Row("train", SUBJECTS, "{good} --out {out} --test-subjects 99",
        "test subjects 99 are not in the dataset"),
    # --- evaluate
    Row("evaluate", EMPTY, "{empty_dir} {good}", "run folder without config.json"),
    Row("evaluate", EMPTY, "{run} {empty_dir}", "no .csv session files", needs="run"),
    Row("evaluate", HEADER, "{run} {header_ds}", "s01_a.csv: a header row and no samples", needs="run"),
    Row("evaluate", NONFINITE, "{run} {nan_ds}", "column 'ay': nan is not a finite number", needs="run"),
    Row("evaluate", TYPE, "{list_run} {good}", "config.json: expected a JSON object"),
    Row("evaluate", NONPOS, "{empty_dir} {good} --rate -50", "argument --rate: expected a number > 0"),
    Row("evaluate", RANGE, "{run} {overflow_ds}", "column 'ay': 4e38 is beyond float32", needs="run"),
    Row("evaluate", MISSING, "{missing} {good}", "no_such_thing: not a run folder"),
    Row("evaluate", MISSING, "{run} {missing}", "no_such_thing: no such dataset", needs="run"),
    Row("evaluate", UNREADABLE, "{cut_run} {good}", "config.json: not readable JSON"),
    Row("evaluate", CHANNELS, "{run} {three_channel_ds}", "no channel(s) gx, gy, gz", needs="run"),
    Row("evaluate", RATES, "{run} {fast_ds}", "100 Hz", needs="run"),
    Row("evaluate", SUBJECTS, "{run} {good} --subjects 2,99", "--subjects: 99 not in", needs="run"),
    # --- compare
    Row("compare", EMPTY, "{empty_dir} --out {out}", "no .csv session files"),
    Row("compare", HEADER, "{header_ds} --out {out}", "s01_a.csv: a header row and no samples"),
    Row("compare", NONFINITE, "{good} --out {out} --purity nan", "argument --purity: expected a number in "
                                                                 "(0, 1], got 'nan'"),
    Row("compare", TYPE, "{good} --out {out} --strategies direct,{purity_json}",
        "purity.json: key 'purity': expected a number in (0, 1], got \"high\""),
    Row("compare", NONPOS, "{good} --out {out} --seeds 0", "argument --seeds: expected an integer >= 1"),
    Row("compare", NONPOS, "{good} --out {out} --workers -2", "argument --workers: expected an integer >= 1"),
    Row("compare", RANGE, "{good} --out {out} --purity 2", "argument --purity: expected a number in (0, 1]"),
    Row("compare", MISSING, "{missing} --out {out}", "no_such_thing: no such dataset"),
    Row("compare", UNREADABLE, "{good} --out {out} --config {cut_json}", "cut.json: not valid JSON"),
    Row("compare", CHANNELS, "{channels_ds} --out {out}", "s02_a.csv:1: channels"),
    Row("compare", RATES, "{mixed_ds} --out {out}", "s02_a.csv: 100 Hz by its time column"),
    Row("compare", SUBJECTS, "{good} --out {out} --test-subjects 99", "test subjects 99 are not in the "
                                                                      "dataset"),
    # --- plot
    Row("plot", EMPTY, "{empty_csv} --out {out}.png", "empty.csv: empty file"),
    Row("plot", HEADER, "{header_csv} --out {out}.png", "header.csv: a header row and no samples"),
    Row("plot", NONFINITE, "{nan_csv} --out {out}.png", "nan.csv:3: column 'ay': nan is not a finite"),
    Row("plot", NONFINITE, "{good_csv} --out {out}.png --threshold nan", "argument --threshold: expected "
                                                                         "a number in [0, 1]"),
    Row("plot", TYPE, "{good_csv} --out {out}.xyz", "--out {out}.xyz: expected an image file name"),
    Row("plot", TYPE, "{good_csv} --out {out}.png --smoothing two", "argument --smoothing: expected a "
                                                                    "number >= 0"),
    Row("plot", NONPOS, "{good_csv} --out {out}.png --rate 0", "argument --rate: expected a number > 0"),
    Row("plot", NONPOS, "{good_csv} --out {out}.png --refractory -1", "argument --refractory: expected a "
                                                                      "number >= 0"),
    Row("plot", RANGE, "{overflow_csv} --out {out}.png", "overflow.csv:3: column 'ay': 4e38 is beyond"),
    Row("plot", RANGE, "{good_csv} --out {out}.png --threshold 1.5", "argument --threshold: expected a "
                                                                     "number in [0, 1]"),
    Row("plot", MISSING, "{missing} --out {out}.png", "no_such_thing: no such recording file"),
    Row("plot", MISSING, "{good_csv} --out {missing}/plot.png", "No such file or directory: "),
    Row("plot", MISSING, "{good_csv} --out {out}.png --model {missing}", "no_such_thing: not a model "
                                                                         "bundle"),
    Row("plot", UNREADABLE, "{binary_csv} --out {out}.png", "binary.csv: byte"),
    Row("plot", CHANNELS, "{three_channel_csv} --out {out}.png --model {bundle}", "three_channel.csv:1: "
        "no channel column 'gx'", needs="bundle"),
    Row("plot", RATES, "{fast_csv} --out {out}.png --model {bundle}", "100 Hz, but the model",
        needs="bundle"),
    # --- export
    Row("export", EMPTY, "{empty_dir} --out {out}", "run folder without config.json"),
    Row("export", TYPE, "{list_run} --out {out}", "config.json: expected a JSON object"),
    Row("export", RANGE, "{run} --out {out} --event-classes nope", "nope", needs="run"),
    Row("export", RANGE, "{run} --out {bundle} --force --event-classes nope", "nope",
        needs="bundle"),  # the earlier bundle stays
    Row("export", MISSING, "{missing} --out {out}", "no_such_thing: not a run folder"),
    Row("export", MISSING, "{model_less_run} --out {out}", "without a model (model.keras)"),
    Row("export", UNREADABLE, "{cut_run} --out {out}", "config.json: not readable JSON"),
    # --- calibrate
    Row("calibrate", EMPTY, "{empty_dir} {good}", "not a model bundle (no model.json)"),
    Row("calibrate", EMPTY, "{bundle} {empty_dir}", "no .csv session files", needs="bundle"),
    Row("calibrate", HEADER, "{bundle} {header_ds}", "s01_a.csv: a header row and no samples",
        needs="bundle"),
    Row("calibrate", NONFINITE, "{empty_dir} {good} --max-false-per-hour nan",
        "argument --max-false-per-hour: expected a number > 0, got 'nan'"),
    Row("calibrate", NONFINITE, "{bundle} {nan_ds}", "column 'ay': nan is not a finite number",
        needs="bundle"),
    Row("calibrate", TYPE, "{typed_bundle} {good}", "model.json: field 'format_version' has the wrong type"),
    Row("calibrate", NONPOS, "{empty_dir} {good} --max-false-per-hour -1",
        "argument --max-false-per-hour: expected a number > 0, got '-1'"),
    Row("calibrate", RANGE, "{bundle} {overflow_ds}", "column 'ay': 4e38 is beyond float32", needs="bundle"),
    Row("calibrate", MISSING, "{missing} {good}", "not a model bundle (no model.json)"),
    Row("calibrate", UNREADABLE, "{cut_bundle} {good}", "model.json: not valid JSON"),
    Row("calibrate", CHANNELS, "{bundle} {three_channel_ds}", "no channel(s) gx, gy, gz", needs="bundle"),
    Row("calibrate", RATES, "{bundle} {fast_ds}", "100 Hz", needs="bundle"),
    Row("calibrate", SUBJECTS, "{bundle} {other_subjects_ds}", "not in the dataset", needs="bundle"),
    # --- run
    Row("run", EMPTY, "--port loop:// --model {empty_dir}", "not a model bundle (no model.json)"),
    Row("run", EMPTY, "--port {port} --model {bundle} --duration 1.5", "no sample line within --duration",
        needs="bundle", board=b""),
    Row("run", HEADER, "--port {port} --model {bundle} --first-line-timeout 1.5", "no valid sample line "
        "within 1.5 s", needs="bundle", board=b"ax,ay,az,gx,gy,gz\n"),
    Row("run", NONFINITE, "--port loop:// --model {empty_dir} --gap nan", "argument --gap: expected a "
                                                                          "number > 0, got 'nan'"),
    Row("run", NONFINITE, "--port {port} --model {bundle} --first-line-timeout 1.5", "nonfinite",
        needs="bundle", board=b"nan,0,1,0,0,0\n"),
    Row("run", TYPE, "--port loop:// --model {empty_dir} --threads two", "argument --threads: expected an "
                                                                         "integer >= 1"),
    Row("run", NONPOS, "--port loop:// --model {empty_dir} --gap 0", "argument --gap: expected a number > "
                                                                     "0, got '0'"),
    Row("run", NONPOS, "--port loop:// --model {empty_dir} --smoothing -1", "argument --smoothing: "
                                                                            "expected a number >= 0"),
    Row("run", RANGE, "--port loop:// --model {empty_dir} --threshold 1.5", "argument --threshold: "
                                                                            "expected a number in [0, 1]"),
    Row("run", RANGE, "--port loop:// --model {bundle} --gap 0.05", "--gap 0.05: shorter than 5 samples at "
        "the model's 50 Hz; expected at least 0.1 s", needs="bundle"),
    Row("run", MISSING, "--port loop:// --model {missing}", "no_such_thing: not a model bundle"),
    Row("run", MISSING, "--port /dev/no_such_port --model {bundle}", "/dev/no_such_port", needs="bundle"),
    Row("run", UNREADABLE, "--port loop:// --model {cut_bundle}", "model.json: not valid JSON"),
    Row("run", UNREADABLE, "--port loop:// --model {bundle_cut_model}", "model_float.tflite",
        needs="bundle"),
    Row("run", CHANNELS, "--port {port} --model {bundle}", "sends 3 values per line",
        needs="bundle", board=b"0.1,0.2,0.9\n"),
    Row("run", KILLED, "--port {port} --model {bundle} --reconnect-timeout 1 --rate 50", "gone for longer "
        "than --reconnect-timeout 1 s", needs="bundle", board=b"0,0,1,0,0,0\n" * 5, hangup=True),
    # --- simulate
    Row("simulate", EMPTY, "{empty_csv} --pty", "empty.csv: empty file"),
    Row("simulate", HEADER, "{header_csv} --pty", "header.csv: a header row and no samples"),
    Row("simulate", NONFINITE, "{nan_csv} --pty", "nan.csv:3: column 'ay': nan is not a finite number"),
    Row("simulate", NONFINITE, "{good_csv} --pty --speed inf", "argument --speed: expected a number > 0"),
    Row("simulate", TYPE, "{good_csv} --pty --seed x", "argument --seed: expected an integer >= 0"),
    Row("simulate", NONPOS, "{good_csv} --pty --speed 0", "argument --speed: expected a number > 0"),
    Row("simulate", RANGE, "{good_csv} --pty --garbage 1.5", "argument --garbage: expected a number in "
                                                             "[0, 1]"),
    Row("simulate", RANGE, "{overflow_csv} --pty", "overflow.csv:3: column 'ay': 4e38 is beyond"),
    Row("simulate", MISSING, "{missing} --pty", "no_such_thing: no such recording file"),
    Row("simulate", MISSING, "{good_csv}", "one of the arguments --pty --port is required"),
    Row("simulate", UNREADABLE, "{binary_csv} --pty", "binary.csv: byte"),
    # --- record
    Row("record", EMPTY, "--port {port} --label idle --out {out}", "no valid sample line within 5 s",
        board=b""),
    Row("record", NONPOS, "--port loop:// --label idle --out {out} --seconds 0", "argument --seconds: "
                                                                                 "expected a number > 0"),
    Row("record", NONFINITE, "--port loop:// --label idle --out {out} --seconds nan",
        "argument --seconds: expected a number > 0, got 'nan'"),
    Row("record", TYPE, "--port loop:// --label idle --out {out} --samples many",
        "argument --samples: expected an integer >= 1"),
    Row("record", NONPOS, "--port loop:// --label idle --out {out} --samples 0",
        "argument --samples: expected an integer >= 1"),
    Row("record", NONPOS, "--port loop:// --label idle --out {out} --baud -9600",
        "argument --baud: expected an integer >= 1"),
    Row("record", RANGE, "--port loop:// --label idle --out {out} --labels a,b,c,d,e,f,g,h,i,j",
        "--labels: at most 9 labels"),
    Row("record", MISSING, "--port /dev/no_such_port --label idle --out {out}", "/dev/no_such_port not "
                                                                               "found"),
    Row("record", MISSING, "--port loop:// --out {out}", "the following arguments are required: --label"),
    # --- emulate
    Row("emulate", EMPTY, "{empty_dir}", "no model_config.h"),
    Row("emulate", HEADER, "--firmware stream --recording {header_csv}", "header.csv: a header row and no "
                                                                         "samples"),
    Row("emulate", NONFINITE, "{empty_dir} --duration nan", "argument --duration: expected a number >= 0"),
    Row("emulate", TYPE, "--firmware stream --recording {good_csv} --rate x", "argument --rate: expected "
                                                                              "a number > 0"),
    Row("emulate", NONPOS, "{empty_dir} --duration -1", "argument --duration: expected a number >= 0"),
    Row("emulate", RANGE, "--firmware stream --recording {overflow_csv}", "overflow.csv:3: column 'ay': "
                                                                          "4e38 is beyond"),
    Row("emulate", MISSING, "{missing}", "no_such_thing: no model_config.h"),
    Row("emulate", UNREADABLE, "--firmware stream --recording {binary_csv}", "binary.csv: byte"),
]

# Pairs without a row, and why: the command takes no input of that class.
NOT_APPLICABLE = {
    ("data info", SUBJECTS): "takes no subject names",
    ("data info", KILLED): "writes nothing",
    ("data synth", HEADER): "reads no file",
    ("data synth", CHANNELS): "reads no file; writes its own channels",
    ("data synth", RATES): "--rate is a choice of 50 or 100",
    ("data synth", SUBJECTS): "--subjects is a count (row under negative or zero)",
    ("evaluate", KILLED): "writes only with --out, a folder of plain files (report, scores)",
    ("compare", KILLED): "an interrupted compare keeps a valid partial table and a rerun "
                         "finishes it (tests/test_compare.py)",
    ("plot", SUBJECTS): "one session: no subjects",
    ("plot", KILLED): "writes one image file",
    ("export", HEADER): "reads no recording (the run folder's test windows)",
    ("export", NONFINITE): "its only number is --model's choice",
    ("export", NONPOS): "takes no counts",
    ("export", CHANNELS): "the run fixes its channels",
    ("export", RATES): "the run fixes its rate",
    ("export", SUBJECTS): "the run fixes its subjects",
    ("run", RATES): "a live stream at another rate is a warning by design (docs/design.md); "
                    "tests/test_runner_errors.py checks it",
    ("run", SUBJECTS): "a live stream has no subjects",
    ("simulate", CHANNELS): "plays any channels; the reader checks them",
    ("simulate", RATES): "plays one recording",
    ("simulate", SUBJECTS): "plays one recording",
    ("simulate", KILLED): "writes to a pty, and --stats once at the end",
    ("record", HEADER): "reads a stream; a board that sends only a header: run's row (same reader)",
    ("record", UNREADABLE): "reads a stream (a port that vanishes mid-line: killed mid-write)",
    ("record", CHANNELS): "takes the board's channels (a mismatch with an earlier session of the "
                          "same file is the writer's header check)",
    ("record", RATES): "measures or takes --rate; one session per file",
    ("record", SUBJECTS): "records one session",
    ("emulate", CHANNELS): "the bundle fixes its channels; the stream firmware plays any",
    ("emulate", RATES): "plays one recording",
    ("emulate", SUBJECTS): "plays one recording",
    ("emulate", KILLED): "builds into a cache keyed by its inputs; QEMU writes nothing",
}
# Pairs whose rows live in another test file (a process killed mid-write needs SIGKILL timing).
COVERED_ELSEWHERE = {
    ("data synth", KILLED): "tests/test_kill.py",
    ("train", KILLED): "tests/test_kill.py",
    ("export", KILLED): "tests/test_kill.py",
    ("calibrate", KILLED): "tests/test_kill.py",
    ("record", KILLED): "tests/test_kill.py, tests/test_durability.py",
}


# --- inputs ------------------------------------------------------------------------------------

CHANNEL_NAMES = ["ax", "ay", "az", "gx", "gy", "gz"]
TOML = ('sample_rate_hz = 50\nchannels = ["ax", "ay", "az", "gx", "gy", "gz"]\n'
        'time_column = "t"\nbackground_label = "idle"\nsubject_pattern = "s(\\\\d+)_"\n')


def session_csv(rate: float = 50.0, samples: int = 400, seed: int = 0,
                channels: list[str] = CHANNEL_NAMES) -> str:
    """A session in the recording format: idle with one 'jump' segment, `rate` by its time column."""
    rng = np.random.default_rng(seed)
    lines = [",".join(["t", *channels, "label"])]
    for i in range(samples):
        label = "jump" if samples // 3 <= i < samples // 2 else ""
        values = ",".join(f"{v:.4f}" for v in rng.normal(size=len(channels)))
        lines.append(f"{i / rate:.4f},{values},{label}")
    return "\n".join(lines) + "\n"


def with_line(text: str, line: int, column: int, value: str) -> str:
    """`text` with the field `column` of 1-based `line` replaced by `value`."""
    lines = text.split("\n")
    fields = lines[line - 1].split(",")
    fields[column] = value
    lines[line - 1] = ",".join(fields)
    return "\n".join(lines)


def dataset(root: Path, sessions: dict[str, str], toml: str | None = TOML) -> Path:
    root.mkdir(parents=True)
    if toml is not None:
        (root / "dataset.toml").write_text(toml)
    for name, text in sessions.items():
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """Every bad input of the table, each beside good ones, in one folder."""
    root = tmp_path_factory.mktemp("bad_inputs")
    good = {f"s0{i}_a.csv": session_csv(seed=i) for i in (1, 2, 3, 4)}
    bad_first = lambda text: {**good, "s01_a.csv": text}  # noqa: E731 - one line per input
    header = session_csv().split("\n")[0] + "\n"
    nan = with_line(good["s01_a.csv"], 3, 2, "nan")
    overflow = with_line(good["s01_a.csv"], 3, 2, "4e38")
    paths = {
        "good": dataset(root / "good", good),
        "empty_dir": dataset(root / "empty_dir", {}, toml=None),
        "header_ds": dataset(root / "header_ds", bad_first(header)),
        "nan_ds": dataset(root / "nan_ds", bad_first(nan)),
        "text_ds": dataset(root / "text_ds", bad_first(with_line(good["s01_a.csv"], 3, 2, "abc"))),
        "overflow_ds": dataset(root / "overflow_ds", bad_first(overflow)),
        "cut_toml_ds": dataset(root / "cut_toml_ds", good, toml=TOML[:40]),
        "channels_ds": dataset(root / "channels_ds", {
            **good, "s02_a.csv": session_csv(channels=["ax", "ay", "az", "gx", "gy", "gq"])},
            toml=TOML.replace('channels = ["ax", "ay", "az", "gx", "gy", "gz"]\n', "")),
        "three_channel_ds": dataset(root / "three_channel_ds", {
            n: session_csv(seed=i, channels=["ax", "ay", "az"]) for i, n in enumerate(good)},
            toml=TOML.replace('channels = ["ax", "ay", "az", "gx", "gy", "gz"]\n', "")),
        "mixed_ds": dataset(root / "mixed_ds", {**good, "s02_a.csv": session_csv(rate=100.0)}),
        "fast_ds": dataset(root / "fast_ds", {n: session_csv(rate=100.0, samples=800, seed=i)
                                              for i, n in enumerate(good)},
                           toml=TOML.replace("sample_rate_hz = 50", "sample_rate_hz = 100")),
        # The quick run's validation and test subjects are among 1..6: none of them here.
        "other_subjects_ds": dataset(root / "other_subjects_ds", {
            f"s{i}_a.csv": session_csv(seed=i, samples=2000) for i in (91, 92, 93)}),
        "missing": root / "no_such_thing",
    }
    binary = dataset(root / "binary_ds", good)
    (binary / "s01_a.csv").write_bytes(b"t,ax\n\xff\xfe\x00garbage\n")
    paths["binary_ds"] = binary
    files = root / "files"
    files.mkdir()
    for name, text in {"empty.csv": "", "header.csv": header, "nan.csv": nan,
                       "overflow.csv": overflow, "good.csv": good["s01_a.csv"],
                       "a_file": "not a folder",
                       "three_channel.csv": session_csv(channels=["ax", "ay", "az"]),
                       "empty.json": "", "cut.json": '{"purity": 0.',
                       "purity.json": json.dumps({"purity": "high"}),
                       "seed.toml": 'seed = "one"\n',
                       "nan.json": '{"direct": {"learning_rate": NaN}}',
                       "epochs.json": json.dumps({"direct": {"epochs": 0}})}.items():
        (files / name).write_text(text)
        paths[name.replace(".", "_")] = files / name
    (files / "dataset.toml").write_text(TOML)  # the rate of the single files
    (files / "binary.csv").write_bytes(b"t,ax,label\n0,\xff\xfe,x\n")
    paths["binary_csv"] = files / "binary.csv"
    fast = root / "fast"
    fast.mkdir()
    (fast / "dataset.toml").write_text(TOML.replace("sample_rate_hz = 50", "sample_rate_hz = 100"))
    (fast / "fast.csv").write_text(session_csv(rate=100.0, samples=800))
    paths["fast_csv"] = fast / "fast.csv"
    for name, config in {"list_run": "[1, 2]", "cut_run": '{"format_version": 1, "lab'}.items():
        run = root / name
        run.mkdir()
        (run / "config.json").write_text(config)
        (run / "metrics.json").write_text("{}")  # complete: the config is what is wrong
        (run / "model.keras").write_bytes(b"not read: the config is refused first")
        paths[name] = run
    model_less = root / "model_less_run"
    model_less.mkdir()
    (model_less / "config.json").write_text("{}")
    (model_less / "metrics.json").write_text("{}")
    paths["model_less_run"] = model_less
    for name, text in {"cut_bundle": '{"format_version": 2, "labels": ["a"',
                       "typed_bundle": '{"format_version": "two"}'}.items():
        bundle = root / name
        bundle.mkdir()
        (bundle / "model.json").write_text(text)
        paths[name] = bundle
    return paths


def snapshot(*roots: Path) -> dict[str, str]:
    """Every file under `roots` (path -> sha1 of its bytes): what a refused command must leave."""
    files = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                files[str(path)] = hashlib.sha1(path.read_bytes()).hexdigest()
            else:
                files[str(path)] = "folder"
    return files


# --- running a row -----------------------------------------------------------------------------

class Board:
    """A real pty whose other side, once a reader has opened the port, sends `data` every
    0.1 s for 3 s, then hangs up or stays silent until closed. (The 3 s start at the open, not
    at creation: a command that starts slowly on a loaded machine sees the same stream.)"""

    def __init__(self, data: bytes, hangup: bool = False):
        self.master, slave = pty.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        os.close(slave)
        self._data, self._hangup, self._stop = data, hangup, threading.Event()
        self._thread = threading.Thread(target=self._play, daemon=True)
        self._thread.start()

    def _reader_opened(self) -> bool:
        """The master reports a hang-up while no one has the port open (as PtySink checks)."""
        events = select.poll()
        events.register(self.master, select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in events.poll(0))

    def _play(self) -> None:
        deadline = time.monotonic() + 60.0
        while not self._reader_opened() and time.monotonic() < deadline:
            if self._stop.wait(0.01):  # the command ended without opening the port
                break
        time.sleep(0.1)  # pyserial's open() ends with a flush of what came before
        end = time.monotonic() + 3.0
        while self._data and time.monotonic() < end and not self._stop.wait(0.1):
            try:
                os.write(self.master, self._data)
            except OSError:  # the reader hung up first
                break
        if self._hangup:
            os.close(self.master)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if not self._hangup:
            os.close(self.master)


def argv(row: Row, paths: dict[str, Path], out: Path) -> list[str]:
    """The row's command line; {empty} is an empty argument."""
    values = {**{k: str(v) for k, v in paths.items()}, "out": str(out), "empty": ""}
    return [*row.command.split(), *(word.format(**values) for word in row.argv.split())]


def in_process(args: list[str], capfd, monkeypatch) -> tuple[int, str]:
    """`gesturekit ARGS` in this process, stdin empty as for a subprocess: (exit code, stderr).
    Signal handlers that `record` sets are put back afterwards."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with open(os.devnull) as empty:
        monkeypatch.setattr(sys, "stdin", empty)
        try:
            code = main(args)
        except SystemExit as stop:  # the option parser's exit
            code = stop.code
        finally:
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
    return code, capfd.readouterr().err


def as_a_user(args: list[str]) -> tuple[int, str]:
    """`gesturekit ARGS` in a subprocess, without TF_CPP_MIN_LOG_LEVEL: (exit code, stderr)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run([sys.executable, "-m", "gesturekit.cli", *args], capture_output=True,
                          text=True, env=env, stdin=subprocess.DEVNULL, timeout=120, check=False)
    return done.returncode, done.stderr


def check(row: Row, code: int, err: str, args: list[str], out: Path) -> None:
    where = f"gesturekit {' '.join(args)}"
    assert code == row.code, f"{where}: exit {code}, expected {row.code}\n{err}"
    assert "Traceback" not in err, f"{where}:\n{err}"
    lines = err.splitlines()
    assert len(lines) == 1, f"{where}: expected one line on stderr, got:\n{err}"
    assert lines[0].startswith(f"gesturekit {row.command}: error: "), f"{where}: {lines[0]}"
    culprit = row.culprit.replace("{out}", str(out))
    assert culprit in lines[0], f"{where}: {lines[0]!r} does not name {culprit!r}"


FAST = [r for r in ROWS if not r.needs]
TRAINED = [r for r in ROWS if r.needs]


@pytest.mark.parametrize("row", FAST, ids=[r.id for r in FAST])
def test_a_bad_input_is_one_line_exit_2_and_writes_nothing(row, inputs, tmp_path, capfd, monkeypatch):
    out = tmp_path / "out"
    before = snapshot(inputs["good"].parent, tmp_path)
    board = Board(row.board, row.hangup) if row.board is not None else None
    args = argv(row, {**inputs, **({"port": board.path} if board else {})}, out)
    try:
        code, err = in_process(args, capfd, monkeypatch)
    finally:
        if board:
            board.close()
    check(row, code, err, args, out)
    assert snapshot(inputs["good"].parent, tmp_path) == before, "a refused command wrote something"


@pytest.mark.trains
@pytest.mark.parametrize("row", TRAINED, ids=[r.id for r in TRAINED])
def test_a_bad_input_to_a_trained_model_is_one_line_exit_2(row, inputs, quick_run, quick_bundle,
                                                           tmp_path):
    """As a user runs it (a subprocess, TensorFlow's C++ logging on): the interpreter's XNNPACK
    line or any other native log line would break the one line."""
    bundle = tmp_path / "bundle"
    subprocess.run(["cp", "-r", str(quick_bundle), str(bundle)], check=True)
    cut = tmp_path / "bundle_cut_model"
    subprocess.run(["cp", "-r", str(quick_bundle), str(cut)], check=True)
    model = cut / "model_float.tflite"
    model.write_bytes(model.read_bytes()[:len(model.read_bytes()) // 2])
    run_copy = tmp_path / "run_copy"
    subprocess.run(["cp", "-r", str(quick_run), str(run_copy)], check=True)
    paths = {**inputs, "run": quick_run, "run_copy": run_copy, "bundle": bundle,
             "bundle_cut_model": cut}
    board = Board(row.board, row.hangup) if row.board is not None else None
    if board:
        paths["port"] = board.path
    out = tmp_path / "out"
    before = snapshot(inputs["good"].parent, quick_run, tmp_path)
    args = argv(row, paths, out)
    try:
        code, err = as_a_user(args)
    finally:
        if board:
            board.close()
    check(row, code, err, args, out)
    assert snapshot(inputs["good"].parent, quick_run, tmp_path) == before, \
        "a refused command wrote something"


def numeric_options() -> list[tuple[tuple[str, ...], argparse.Action]]:
    """(command path, option) of every option that takes a number, in every command."""
    found = []

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    walk(sub, (*path, name))
            elif action.option_strings and (action.type in (int, float) or
                                            getattr(action.type, "__module__", "") == "gesturekit.options"):
                found.append((path, action))
    walk(build_parser(), ())
    return found


def test_every_numeric_option_refuses_nan_inf_and_words_in_one_line(capsys):
    """The class, not the examples: no numeric option takes a bare int or float (only a fixed
    set of choices may), and each refuses NaN, inf and a word with one line naming it."""
    options = numeric_options()
    assert len(options) > 40
    bare = [f"{' '.join(p)} {a.option_strings[-1]}" for p, a in options
            if a.type in (int, float) and not a.choices]
    assert bare == [], "numeric options without a gesturekit.options type"
    for path, action in options:
        if action.choices:
            continue
        for value in ("nan", "inf", "-inf", "many"):
            with pytest.raises(SystemExit) as stop:
                main([*path, f"{action.option_strings[-1]}={value}"])
            err = capsys.readouterr().err
            assert stop.value.code == 2 and err.count("\n") == 1, err
            assert f"argument {action.option_strings[-1]}: expected " in err, err
            assert f"got '{value}'" in err, err


@pytest.mark.parametrize("values, message", [
    ({"purity": "high"}, "key 'purity': expected a number in (0, 1], got \"high\""),
    ({"seed": "one"}, "key 'seed': expected an integer >= 0, got \"one\""),
    ({"seed": True}, "key 'seed': expected an integer >= 0, got true"),
    ({"folds": 2.0}, "key 'folds': expected an integer >= 0, got 2.0"),
    ({"sandbox": "yes"}, "key 'sandbox': expected true or false, got \"yes\""),
    ({"test_subjects": [2, 4]}, "key 'test_subjects': expected a list of strings or null"),
    ({"model": {"conv_filters": [16, 0]}}, "key 'model.conv_filters': expected a list of integers, "
                                           "each >= 1, got [16, 0]"),
    ({"model": {"dropout": 1.0}}, "key 'model.dropout': expected a number in [0, 1), got 1.0"),
    ({"augment": {"mixup_alpha": float("inf")}}, "key 'augment.mixup_alpha': expected a number >= 0"),
    ({"sandbox_phase": {"min_train_accuracy": 2}}, "key 'sandbox_phase.min_train_accuracy': "
                                                   "expected a number in [0, 1], got 2"),
    ({"direct": {"epochs": 5, "patience": 0}}, "key 'direct.patience': expected an integer >= 1"),
    ({"direct": {"epoch": 5}}, "unknown key 'direct.epoch'"),
    ({"direct": 5}, "key 'direct' must be a table of settings"),
])
def test_every_config_key_is_checked_against_its_fields_type_and_range(values, message):
    with pytest.raises(UserError) as refused:
        apply_values(TrainConfig(), values, "cfg.json")
    assert str(refused.value).startswith(f"cfg.json: {message}"), str(refused.value)


def test_a_compare_whose_every_run_fails_on_its_input_exits_2(inputs, tmp_path):
    """The data loads, but no run can cut a window that long: the table is written (each
    failure a row) and the command ends with one line and exit 2, not 0."""
    out = tmp_path / "cmp"
    code, err = as_a_user(["compare", str(inputs["good"]), "--out", str(out), "--window", "100000",
                           "--seeds", "1", "--quick"])
    assert (code, err.count("\n")) == (2, 1), err
    assert err.startswith("gesturekit compare: error: every run failed, e.g. direct/seed0: "
                          "UserError: --window 100000 is longer than every session"), err
    state = json.loads((out / "compare.json").read_text())
    assert [r["status"] for r in state["runs"]] == ["failed", "failed"]


def config_fields() -> list[tuple[str, str, object]]:
    """(table prefix, key, type hint) of every config file key, nested tables' keys included."""
    found = []
    for cls, prefix in ((TrainConfig, ""), *((t, f"{k}.") for k, t in NESTED.items())):
        for key, hint in typing.get_type_hints(cls).items():
            if not (cls is TrainConfig and key in NESTED):
                found.append((prefix, key, hint))
    return found


def test_every_config_key_refuses_a_value_of_another_type_and_nan():
    """The class, not the examples: each key of a config file, in every table."""
    fields = config_fields()
    assert len(fields) > 40
    for prefix, key, hint in fields:
        wrong = [[1]] if "dict" in str(hint) else [{"a": 1}]
        if "float" in str(hint):
            wrong.append(float("nan"))
        for value in wrong:
            table = prefix.rstrip(".")
            values = {table: {key: value}} if table else {key: value}
            with pytest.raises(UserError, match=f"^cfg.json: key '{prefix}{key}': expected "):
                apply_values(TrainConfig(), values, "cfg.json")


def test_compare_exits_with_the_runs_code_when_every_run_failed():
    """2 when every run failed on its input (the data refused by each worker), 1 when any failed
    otherwise; None while one run finished."""
    def state(*rows):
        return {"runs": [{"key": f"v/seed{i}", "status": s, "error": e, "exit_code": c}
                         for i, (s, e, c) in enumerate(rows)]}

    user = ("failed", "UserError: s.csv: no samples", 2)
    bug = ("failed", "ValueError: boom", 1)
    assert every_run_failed(state(user, ("ok", "", 0)), "cmp") is None
    error = every_run_failed(state(user, user), "cmp")
    assert isinstance(error, UserError) and error.exit_code == 2
    assert str(error) == ("every run failed, e.g. v/seed0: UserError: s.csv: no samples (all errors: "
                          "cmp/compare.md)")
    assert every_run_failed(state(user, bug), "cmp").exit_code == 1


def test_the_table_covers_every_pair(capsys):
    """Commands x classes: each pair has a row, a reason it does not apply, or another test
    file that covers it; the matrix is printed (pytest -s shows it)."""
    cli_commands = set()

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    if any(isinstance(a, argparse._SubParsersAction) for a in sub._actions):
                        walk(sub, (*path, name))
                    else:
                        cli_commands.add(" ".join((*path, name)))
    walk(build_parser(), ())
    assert cli_commands == set(COMMANDS), "a command is missing from the table"
    rows = {(r.command, r.kind) for r in ROWS}
    assert {r.kind for r in ROWS} <= set(CLASSES)
    for pair in [(c, k) for c in COMMANDS for k in CLASSES]:
        sources = [pair in rows, pair in NOT_APPLICABLE, pair in COVERED_ELSEWHERE]
        assert sum(sources) == 1, f"{pair}: rows {sources[0]}, not applicable {sources[1]}, " \
                                  f"covered elsewhere {sources[2]}"
    mark = {**dict.fromkeys(rows, "x"), **dict.fromkeys(NOT_APPLICABLE, "-"),
            **dict.fromkeys(COVERED_ELSEWHERE, "o")}
    with capsys.disabled():
        print(f"\nbad inputs: {len(COMMANDS)} commands x {len(CLASSES)} classes = "
              f"{len(COMMANDS) * len(CLASSES)} pairs: {len(rows)} with rows ({len(ROWS)} rows, "
              f"{len(FAST)} fast, {len(TRAINED)} with a trained model), {len(COVERED_ELSEWHERE)} "
              f"covered elsewhere, {len(NOT_APPLICABLE)} not applicable")
        print(f"{'':<11}" + " ".join(f"{k[:6]:>6}" for k in CLASSES))
        for c in COMMANDS:
            print(f"{c:<11}" + " ".join(f"{mark[(c, k)]:>6}" for k in CLASSES))


@pytest.mark.trains
def test_run_plot_and_calibrate_print_no_interpreter_log_line(inputs, quick_bundle, synth_dataset,
                                                            tmp_path):
    """The interpreter's "Created TensorFlow Lite XNNPACK delegate" line is not the user's
    business: a good run, plot and calibration leave stderr empty (as a user runs them)."""
    bundle = tmp_path / "bundle"
    subprocess.run(["cp", "-r", str(quick_bundle), str(bundle)], check=True)
    board = Board(b"0.1,0.2,0.9,0.01,0.02,0.03\n" * 5)
    try:
        ran = as_a_user(["run", "--port", board.path, "--model", str(bundle), "--rate", "50",
                         "--duration", "2", "--json"])
    finally:
        board.close()
    plotted = as_a_user(["plot", str(inputs["good_csv"]), "--model", str(bundle), "--out",
                         str(tmp_path / "plot.png")])
    calibrated = as_a_user(["calibrate", str(bundle), str(synth_dataset)])
    assert (ran, plotted, calibrated) == ((0, ""), (0, ""), (0, ""))
