"""HAPT's unlabelled time as a background class, as `background_label` does for CSV datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gesturekit.cli import main
from gesturekit.train.datasets import load_dataset

HAPT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hapt"


@pytest.fixture(scope="module")
def plain():
    return load_dataset(HAPT)


def test_unlabelled_time_becomes_the_background_class(plain):
    ds = load_dataset(HAPT, background_label="background")
    assert ds.labels == [*plain.labels, "background"] and ds.background_label == "background"
    assert ds.options == {"background_label": "background"}
    counts = ds.class_counts()
    np.testing.assert_array_equal(counts[:-1], plain.class_counts())
    unlabelled = sum(int((s.label_ids < 0).sum()) for s in plain.sessions)
    assert counts[-1] == unlabelled > 0
    assert all((s.label_ids >= 0).all() for s in ds.sessions)  # every sample has a class


def test_a_background_label_naming_an_activity_joins_it(plain):
    ds = load_dataset(HAPT, background_label="WALKING")
    assert ds.labels == plain.labels  # no second WALKING class
    walking = plain.labels.index("WALKING")
    unlabelled = sum(int((s.label_ids < 0).sum()) for s in plain.sessions)
    assert ds.class_counts()[walking] == plain.class_counts()[walking] + unlabelled


def test_data_info_takes_the_flag_for_hapt(capsys):
    assert main(["data", "info", str(HAPT), "--background-label", "background"]) == 0
    out = capsys.readouterr().out
    assert "unlabelled  0 samples" in out and "background" in out
