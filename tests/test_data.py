"""The data layer on real HAPT recordings and the synthetic default, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gesturekit.cli import main
from gesturekit.train.datasets import load_dataset, make_windows, split_subjects
from gesturekit.train.synth import SynthConfig, write_synthetic_dataset

HAPT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def expected_hapt_counts() -> dict[str, int]:
    """Labelled samples per class straight from labels.txt (inclusive, 1-based ranges)."""
    names = {}
    for line in (HAPT / "activity_labels.txt").read_text().splitlines():
        if line.strip():
            number, name = line.split()
            names[int(number)] = name
    counts = dict.fromkeys(names.values(), 0)
    for row in np.loadtxt(HAPT / "RawData" / "labels.txt", dtype=int):
        counts[names[row[2]]] += row[4] - row[3] + 1
    return counts


def test_hapt_info_matches_labels_file(capsys):
    code, out, _ = run_cli(capsys, "data", "info", str(HAPT), "--json")
    assert code == 0
    info = json.loads(out)
    assert len(info["subjects"]) == 30
    assert info["sessions"] == 61
    assert info["samples"] == 1_122_772
    assert info["sample_rate_hz"] == 50
    assert len(info["channels"]) == 6
    assert info["classes"] == expected_hapt_counts()
    assert info["segments"]["STAND_TO_SIT"] == 60
    assert info["imbalance_ratio"] == pytest.approx(138_105 / 8_029)


def test_synthetic_default_is_imbalanced_and_reproducible(tmp_path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert run_cli(capsys, "data", "synth", "--out", str(a))[0] == 0
    assert run_cli(capsys, "data", "synth", "--out", str(b))[0] == 0
    assert run_cli(capsys, "data", "synth", "--out", str(c), "--seed", "1")[0] == 0
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert (a / "s01_session1.csv").read_bytes() != (c / "s01_session1.csv").read_bytes()

    code, out, _ = run_cli(capsys, "data", "info", str(a), "--json")
    info = json.loads(out)
    assert code == 0 and info["imbalance_ratio"] >= 50
    assert set(info["classes"]) == {"idle", "walk", "jump", "punch", "turn"}
    assert max(info["classes"], key=info["classes"].get) == "walk"
    assert len(info["subjects"]) == 8 and info["channels"] == ["ax", "ay", "az", "gx", "gy", "gz"]


def test_synth_refuses_a_folder_that_holds_anything(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")  # an empty folder is used; this one is not
    code, _, err = run_cli(capsys, "data", "synth", "--out", str(tmp_path))
    assert code == 2 and "already exists" in err and "--force" in err


def test_subject_wise_split_never_shares_a_person(tmp_path):
    ds = load_dataset(write_synthetic_dataset(tmp_path / "d", SynthConfig(subjects=6, minutes=2)))
    split = split_subjects(ds.subjects, seed=3)
    assert not set(split.train) & set(split.val)
    assert not set(split.train) & set(split.test)
    assert not set(split.val) & set(split.test)
    assert sorted(split.train + split.val + split.test, key=int) == ds.subjects
    assert split_subjects(ds.subjects, seed=3) == split
    named = split_subjects(ds.subjects, seed=0, test_subjects=["2", "4"])
    assert named.test == ["2", "4"] and "2" not in named.train + named.val
    windows = make_windows(ds, split.test, window=128, hop=64, purity=0.6)
    assert set(windows.subjects) <= set(split.test) and len(windows.x) == len(windows.y) > 0


def test_device_modules_do_not_import_tensorflow():
    code = (
        "import pkgutil, sys, importlib, gesturekit.device as d\n"
        "for m in pkgutil.walk_packages(d.__path__, 'gesturekit.device.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = [n for n in sys.modules if n.split('.')[0] in "
        "('tensorflow', 'keras', 'tf_keras') or n.startswith(('gesturekit.train', 'gesturekit.export'))]\n"
        "assert len(list(pkgutil.walk_packages(d.__path__))) >= 3\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- bad input: one line naming file, line and what was expected; exit code 2 ---------------

HEADER = "t,ax,ay,az,label\n"
GOOD = "0.00,0.1,0.2,1.0,walk\n0.02,0.1,0.2,1.0,walk\n"


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"s1.csv": HEADER + GOOD + "0.04,0.1,1.0,walk\n"}, "s1.csv:4: expected 5 fields"),
        ({"s1.csv": HEADER + GOOD + "0.04,0.1,abc,1.0,walk\n"},
         "s1.csv:4: column 'ay': 'abc' is not a number"),
        ({"s1.csv": HEADER + "0.00,nan,0.2,1.0,walk\n"}, "s1.csv:2: column 'ax': nan is not a finite number"),
        ({"s1.csv": "t,ax,ay,az\n0,1,2,3\n"}, "s1.csv:1: no label column 'label'"),
        ({"s1.csv": HEADER + GOOD, "dataset.toml": 'channels = ["ax", "gz"]\n'},
         "s1.csv:1: no channel column 'gz'"),
        ({"s1.csv": HEADER + GOOD, "dataset.toml": "sample_rate = 50\n"},
         "dataset.toml: unknown key 'sample_rate'"),
        ({"s1.csv": HEADER + GOOD, "dataset.toml": 'subject_pattern = "user(\\\\d+)"\n'},
         "subject_pattern 'user(\\\\d+)' does not match session file 's1.csv'"),
        # No dataset.toml (a recorder killed before it wrote one, in earlier versions): the
        # time column is there, so say to declare it, not to add one.
        ({"s1.csv": HEADER + GOOD}, "column 't' looks like a time column: declare it "
                                    '(time_column = "t" in dataset.toml, or --time-column t)'),
    ],
)
def test_bad_recordings_are_one_line_errors(tmp_path, capsys, files, expected):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    code, out, err = run_cli(capsys, "data", "info", str(tmp_path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expected in err, err


def test_hapt_folder_with_missing_gyro_file(tmp_path, capsys):
    raw = tmp_path / "RawData"
    raw.mkdir()
    os.symlink(HAPT / "activity_labels.txt", tmp_path / "activity_labels.txt")
    os.symlink(HAPT / "RawData" / "labels.txt", raw / "labels.txt")
    os.symlink(HAPT / "RawData" / "acc_exp01_user01.txt", raw / "acc_exp01_user01.txt")
    code, _, err = run_cli(capsys, "data", "info", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "RawData/gyro_exp01_user01.txt: missing" in err


def test_hapt_zip_reads_like_the_folder(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "hapt.zip", "w") as z:
        z.write(HAPT / "activity_labels.txt", "HAPT Data Set/activity_labels.txt")
        z.write(HAPT / "RawData" / "labels.txt", "HAPT Data Set/RawData/labels.txt")
        for kind in ("acc", "gyro"):
            name = f"{kind}_exp01_user01.txt"
            z.write(HAPT / "RawData" / name, f"HAPT Data Set/RawData/{name}")
    ds = load_dataset(tmp_path / "hapt.zip")
    assert [s.name for s in ds.sessions] == ["exp01_user01"]
    assert ds.sessions[0].data.shape == (20598, 6)
    assert ds.sessions[0].label_ids[249] == 4 and ds.sessions[0].label_ids[248] == -1  # STANDING from 250


def test_a_failed_synth_leaves_no_folder_and_keeps_the_old_one(tmp_path, capsys):
    """Litter: a failed `data synth` left an empty folder that blocked the retry."""
    ds = tmp_path / "ds"
    code, _, err = run_cli(capsys, "data", "synth", "--out", str(ds), "--minutes", "1")
    assert code == 2 and "raise --minutes" in err
    assert list(tmp_path.iterdir()) == []  # no folder, no temporary one
    assert run_cli(capsys, "data", "synth", "--out", str(ds), "--subjects", "3",
                   "--minutes", "2")[0] == 0
    before = {p.name: p.read_bytes() for p in ds.iterdir()}
    code, _, err = run_cli(capsys, "data", "synth", "--out", str(ds), "--force", "--minutes", "1")
    assert code == 2
    assert {p.name: p.read_bytes() for p in ds.iterdir()} == before  # --force kept it
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_synth_force_replaces_only_a_dataset_folder(tmp_path, capsys):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "data", "synth", "--out", str(precious), "--force",
                           "--subjects", "3", "--minutes", "2")
    assert code == 2 and err.count("\n") == 1 and "not a dataset folder" in err
    assert (precious / "notes.txt").read_text() == "keep me"
    ds = tmp_path / "ds"
    for _ in range(2):  # a dataset folder is replaced
        assert run_cli(capsys, "data", "synth", "--out", str(ds), "--force",
                       "--subjects", "3", "--minutes", "2")[0] == 0
    assert (ds / "dataset.toml").is_file()


def test_overlapping_test_and_validation_subjects_are_refused():
    from gesturekit.errors import UserError

    with pytest.raises(UserError, match="subject\\(s\\) 2 named as both test and validation"):
        split_subjects(["1", "2", "3", "4"], seed=0, test_subjects=["2"], val_subjects=["2", "3"])


def test_training_subjects_narrow_the_training_split_only():
    """A learning curve: fewer training people, the same validation and test people."""
    from gesturekit.errors import UserError

    subjects = [str(i) for i in range(1, 11)]
    full = split_subjects(subjects, seed=1, test_subjects=["2", "5"])
    some = split_subjects(subjects, seed=1, test_subjects=["2", "5"], train_subjects=full.train[:2])
    assert some.train == sorted(full.train[:2], key=int)
    assert (some.val, some.test) == (full.val, full.test)
    with pytest.raises(UserError, match="training subject\\(s\\) 2 are test or validation"):
        split_subjects(subjects, seed=1, test_subjects=["2", "5"], train_subjects=["2"])
    with pytest.raises(UserError, match="training subjects 99 are not in the dataset"):
        split_subjects(subjects, seed=1, train_subjects=["99"])


def test_info_on_a_dataset_without_labelled_classes(tmp_path, capsys):
    (tmp_path / "s1.csv").write_text(HEADER + "0.00,0.1,0.2,1.0,\n0.02,0.1,0.2,1.0,\n")
    code, out, err = run_cli(capsys, "data", "info", str(tmp_path), "--rate", "50")
    assert code == 0 and err == "" and "none labelled" in out


def _hapt_folder(tmp_path: Path, activity_labels: bytes | None = None) -> Path:
    raw = tmp_path / "hapt" / "RawData"
    raw.mkdir(parents=True)
    if activity_labels is None:
        os.symlink(HAPT / "activity_labels.txt", raw.parent / "activity_labels.txt")
    else:
        (raw.parent / "activity_labels.txt").write_bytes(activity_labels)
    for name in ("labels.txt", "acc_exp01_user01.txt", "gyro_exp01_user01.txt"):
        os.symlink(HAPT / "RawData" / name, raw / name)
    return raw.parent


@pytest.mark.parametrize(
    ("activity_labels", "expected"),
    [
        (b"1 WALKING\n2\n", "activity_labels.txt:2: '2'; expected 'NUMBER NAME'"),
        (b"1 WALKING\nx SITTING\n", "activity_labels.txt:2: 'x SITTING'; expected 'NUMBER NAME'"),
        (b"1 WALKING\n2 SIT\xe9\n", "activity_labels.txt:2: byte 0xe9 is not ASCII"),
    ],
)
def test_bad_hapt_activity_labels_are_one_line_errors(tmp_path, capsys, activity_labels, expected):
    root = _hapt_folder(tmp_path, activity_labels)
    code, out, err = run_cli(capsys, "data", "info", str(root))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert expected in err, err


def test_corrupt_zip_is_a_one_line_error(tmp_path, capsys):
    bad = tmp_path / "hapt.zip"
    bad.write_bytes(b"PK\x03\x04 this is not really a zip file")
    code, out, err = run_cli(capsys, "data", "info", str(bad))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"{bad}: not a readable zip file" in err, err


def test_hapt_zip_is_closed_after_loading(tmp_path):
    import gc
    import warnings
    import zipfile

    with zipfile.ZipFile(tmp_path / "hapt.zip", "w") as z:
        z.write(HAPT / "activity_labels.txt", "activity_labels.txt")
        for name in ("labels.txt", "acc_exp01_user01.txt", "gyro_exp01_user01.txt"):
            z.write(HAPT / "RawData" / name, f"RawData/{name}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        from gesturekit.device.core.hapt import HaptSource

        source = HaptSource(tmp_path / "hapt.zip")
        assert not any(isinstance(v, zipfile.ZipFile) for v in vars(source).values())
        assert source.text("activity_labels.txt").startswith("1 WALKING")
        del source
        gc.collect()


def test_plot_labels_outside_the_activities_are_a_user_error(tmp_path):
    from gesturekit.errors import UserError
    from gesturekit.train.plots import session_labels

    root = _hapt_folder(tmp_path, b"1 WALKING\n")  # labels.txt uses activities up to 12
    with pytest.raises(UserError, match="labels.txt: row .* outside .* the 1 activities"):
        session_labels(root / "RawData" / "acc_exp01_user01.txt", 20598)


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_cli_help_does_not_import_tensorflow(argv):
    code = (
        "import sys\n"
        "from gesturekit.cli import build_parser\n"
        "parser = build_parser()\n"
        f"try:\n    parser.parse_args({argv!r})\nexcept SystemExit as e:\n    assert e.code == 0, e.code\n"
        "heavy = [n for n in sys.modules if n.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]\n"
        "assert not heavy, heavy[:5]\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    result = subprocess.run([sys.executable, "-m", "gesturekit.cli", *argv], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "usage" in result.stdout, result.stderr


# --- one reader per format, one rule per fact ---------------------------------------------------

def test_simulate_reads_hapt_sessions_with_the_importers_reader(tmp_path):
    """`simulate` and `plot` read a HAPT session as `load_dataset` does: the same samples, and
    the same checks (a NaN in the gyro file is refused naming its line; it used to be played)."""
    from gesturekit.device.core.recording import load_session
    from gesturekit.errors import UserError

    raw = tmp_path / "RawData"
    raw.mkdir()
    os.symlink(HAPT / "activity_labels.txt", tmp_path / "activity_labels.txt")
    for name in ("labels.txt", "acc_exp01_user01.txt", "gyro_exp01_user01.txt"):
        os.symlink(HAPT / "RawData" / name, raw / name)
    session = load_session(raw / "acc_exp01_user01.txt")
    dataset = load_dataset(tmp_path)
    np.testing.assert_array_equal(session.data, dataset.sessions[0].data)
    assert (session.channels, session.sample_rate_hz) == (dataset.channels, dataset.sample_rate_hz)

    lines = (HAPT / "RawData" / "gyro_exp01_user01.txt").read_text().splitlines()
    lines[2] = "nan 0 0"
    (raw / "gyro_exp01_user01.txt").unlink()
    (raw / "gyro_exp01_user01.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"gyro_exp01_user01\.txt:3: NaN, inf or beyond float32"):
        load_session(raw / "acc_exp01_user01.txt")
    lines[2] = "4e38 0 0"  # finite in float64, inf as a float32 sample
    (raw / "gyro_exp01_user01.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=r"gyro_exp01_user01\.txt:3: NaN, inf or beyond float32"):
        load_session(raw / "acc_exp01_user01.txt")


def test_rate_from_the_time_column_and_dataset_toml_found_by_one_rule(tmp_path):
    """A dataset without sample_rate_hz: training and simulate take the same rate from the
    time column (rounded to a thousandth of a hertz), and a session file in a sub-folder finds
    the root's dataset.toml as the dataset does."""
    from gesturekit.device.core.recording import (
        RecordingSpec,
        RecordingWriter,
        find_spec,
        load_session,
        write_spec,
    )

    root = tmp_path / "data"
    (root / "day1").mkdir(parents=True)
    write_spec(root / "dataset.toml", RecordingSpec(time_column="t", background_label="idle"))
    t = np.arange(200) / 30.0
    path = root / "day1" / "s1.csv"
    with RecordingWriter(path, ["ax", "ay"], time_column="t") as w:
        w.append(np.zeros((200, 2), np.float32), ["walk"] * 100 + [""] * 100, t)
    assert find_spec(path) == find_spec(root) == root / "dataset.toml"
    rate = load_dataset(root).sample_rate_hz
    assert load_session(path).sample_rate_hz == rate == pytest.approx(30.0, abs=0.01)


def test_one_rate_policy_for_live_streams_and_recordings():
    """`run` warns and `evaluate`/`plot`/`calibrate` refuse past the same RATE_TOLERANCE (it was
    10% live but 5% offline)."""
    from gesturekit.device.core.model_info import RATE_TOLERANCE, rate_is_off
    from gesturekit.errors import UserError
    from gesturekit.train.datasets import Dataset
    from gesturekit.train.evaluate import check_rate

    assert RATE_TOLERANCE == 0.1
    assert not rate_is_off(54.9, 50.0) and not rate_is_off(45.1, 50.0)
    assert rate_is_off(55.1, 50.0) and rate_is_off(44.9, 50.0)
    for rate, refused in ((53.0, False), (56.0, True)):
        dataset = Dataset("d", "d", rate, ["ax"], {}, ["walk"], None, [])
        if refused:
            with pytest.raises(UserError, match="d: sample rate 56 Hz, the model was trained at 50 Hz"):
                check_rate(dataset, 50.0)
        else:
            check_rate(dataset, 50.0)


def test_one_channel_mapping_rule_by_name_else_by_position():
    """Named sources (recordings, datasets, a stream's header) map by name in any order; only a
    source without names maps by position; either way a mismatch is one line naming it."""
    from gesturekit.device.core.model_info import channel_order
    from gesturekit.errors import UserError
    from gesturekit.train.datasets import Dataset
    from gesturekit.train.evaluate import align

    model = ["ax", "ay", "gz"]
    assert channel_order(model, ["t", "gz", "ay", "ax", "mag"], "s.csv") == [3, 2, 1]
    assert channel_order(model, 3, "port loop://") == [0, 1, 2]
    with pytest.raises(UserError, match=r"^s.csv: no channel\(s\) gz; the model needs ax, ay, gz "
                                        r"\(it has ax, ay, gyro_z\)$"):
        channel_order(model, ["ax", "ay", "gyro_z"], "s.csv")  # same count: never by position
    with pytest.raises(UserError, match=r"^port x: 4 unnamed columns; the model needs 3 "
                                        r"\(ax, ay, gz, in this order\)$"):
        channel_order(model, 4, "port x")
    dataset = Dataset("d", "data", 50.0, ["gz", "ax", "ay"], {}, ["walk"], None, [])
    assert align(dataset, ["walk"], model).channels == model
