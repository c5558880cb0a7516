"""The command's error contract: user errors, including OS errors about named paths, are one line."""

from __future__ import annotations

from gesturekit.cli import main


def test_os_error_about_a_named_path_is_one_line_exit_2(tmp_path, capsys):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code = main(["data", "synth", "--out", str(not_a_folder / "dataset")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Not a directory" in err and "Traceback" not in err
