"""The command's contracts: user errors (including OS errors about named paths) are one line,
every option's help shows its meaning and default, and TensorFlow's C++ logging stays out."""

from __future__ import annotations

import argparse
import errno
import os
import subprocess
import sys

import pytest

from gesturekit.cli import build_parser, main
from gesturekit.native_log import is_native_log_line, native_logs_dropped
from gesturekit.train import cli as train_cli


def test_os_error_about_a_named_path_is_one_line_exit_2(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code = main(["data", "synth", "--out", str(not_a_folder / "dataset")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Not a directory" in err and "Traceback" not in err


# --- help ----------------------------------------------------------------------------------------

def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(argv prefix, parser) of the command and of every subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_command_help_lists_each_option_with_its_meaning_and_default(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")  # no wrapping: help texts appear whole
    commands = list(_commands(build_parser()))
    assert {"train", "export", "run", "simulate", "record", "plot"} <= {p[0] for p, _ in commands if p}
    for path, parser in commands:
        with pytest.raises(SystemExit) as stop:
            main([*path, "-h"])
        assert stop.value.code == 0
        shown = capsys.readouterr().out
        formatter = parser._get_formatter()
        for action in parser._actions:
            if not action.option_strings or isinstance(action, argparse._HelpAction):
                continue
            where = f"gesturekit {' '.join(path)} {action.option_strings[-1]}"
            assert action.help, f"{where}: no help"
            text = formatter._expand_help(action)
            assert action.option_strings[-1] in shown and text in shown, where
            if action.nargs != 0 and not action.required:
                assert "default" in text, f"{where}: help does not show the default: {text!r}"


def test_every_command_help_ends_with_examples_and_exit_codes(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "2000")
    leaves = [(path, parser) for path, parser in _commands(build_parser())
              if path and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]
    assert len(leaves) == 12
    for path, _ in leaves:
        with pytest.raises(SystemExit):
            main([*path, "-h"])
        shown = capsys.readouterr().out.rstrip().split("\n\nexamples:\n")
        assert len(shown) == 2, f"gesturekit {' '.join(path)} -h: no examples"
        examples, codes = shown[1].split("\n\n")
        assert 1 <= len(examples.splitlines()) <= 2
        assert all(line.startswith(f"  gesturekit {' '.join(path)} ") for line in examples.splitlines())
        assert codes.startswith("exit codes: 0 done") and "; 2 bad input" in codes, codes


def test_a_bad_option_is_one_line_not_the_usage(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "data", "--out", "run", "--mixup", "-1"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == ("gesturekit train: error: argument --mixup: expected a number "
                                       ">= 0, got '-1' (see gesturekit train -h)\n")


def test_fixed_sets_are_choices_and_errors_name_the_option(tmp_path, capsys):
    for option, bad in (("--strategy", "two-phase"), ("--weights", "sqare"), ("--cnn-weights", "x"),
                        ("--lstm-weights", "x"), ("--loss", "hinge"), ("--distribute", "tpu")):
        with pytest.raises(SystemExit) as stop:
            main(["train", str(tmp_path), "--out", str(tmp_path / "run"), option, bad])
        assert stop.value.code == 2
        assert f"argument {option}: invalid choice: '{bad}'" in capsys.readouterr().err
    for command in (["run", "--model", str(tmp_path)], ["plot", "rec.csv", "--out", "x.png"]):
        with pytest.raises(SystemExit):
            main([*command, "--backend", "tflite"])
        assert "argument --backend: invalid choice: 'tflite'" in capsys.readouterr().err


def test_run_has_no_float_flag(tmp_path, capsys):
    """The float model is what runs without --int8; a --float flag changed nothing."""
    with pytest.raises(SystemExit):
        main(["run", "--model", str(tmp_path), "--float"])
    assert "unrecognized arguments: --float" in capsys.readouterr().err


# --- OS errors -----------------------------------------------------------------------------------

def test_os_error_about_no_named_path_is_a_bug_with_a_traceback(tmp_path, monkeypatch, capsys):
    def fails(error: OSError):
        def command(args):
            raise error
        monkeypatch.setattr(train_cli, "cmd_data_synth", command)
        return main(["data", "synth", "--out", str(tmp_path / "d")])

    with pytest.raises(OSError, match="Input/output error"):
        fails(OSError(errno.EIO, "Input/output error"))
    # A full disk is the machine's state, not a bug: one line.
    assert fails(OSError(errno.ENOSPC, "No space left on device")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err


# --- TensorFlow's C++ logging ------------------------------------------------------------------

NATIVE_WORDS = ("oneDNN", "cuInit", "cuda", "absl", "cpu_feature_guard", "XNNPACK", "fully_quantize")


def test_native_log_lines_are_dropped_and_everything_else_kept(capfd):
    with native_logs_dropped():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written "
                    b"to STDERR\n"
                    b"I0000 00:00:1795990735.116520    6270 port.cc:153] oneDNN custom operations "
                    b"are on.\n"
                    b"kept 1\n"
                    b"E0000 00:00:1795990739.048230    6270 cuda_platform.cc:52] failed call to cuInit\n"
                    b"To enable the following instructions: AVX2 FMA, in other operations, rebuild\n"
                    b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8\n"
                    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                    b"W1129 22:31:02.500000 123 some/file.cc:7] any level, any date\n")
        os.write(2, b"kept 2, no newline")
    assert capfd.readouterr().err == "kept 1\nkept 2, no newline"


def test_the_filter_knows_every_line_tensorflow_logs_while_loading():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    loaded = subprocess.run([sys.executable, "-c", "import tensorflow"], capture_output=True,
                            env=env, timeout=300, check=True)
    lines = loaded.stderr.splitlines()
    assert lines, "TensorFlow logged nothing while loading: this test checks nothing any more"
    assert [line for line in lines if not is_native_log_line(line)] == []


def test_train_and_export_print_no_tensorflow_log_lines(quick_run, quick_bundle):
    """The session's `gesturekit train --quick` and `gesturekit export` (conftest.py), run as
    a user would on this GPU-less machine: their stderr holds no line of native logging."""
    for log in (quick_run.parent / "train.stderr", quick_bundle.parent / "export.stderr"):
        text = log.read_text()
        noise = [line for line in text.splitlines()
                 if is_native_log_line(line.encode()) or any(w in line for w in NATIVE_WORDS)]
        assert noise == [], f"{log.name}:\n{text[-3000:]}"
