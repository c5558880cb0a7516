"""Fuzzing the file loaders: a recording CSV (`read_recording`), a `dataset.toml` (`read_spec`)
and a bundle's `model.json` (`load_bundle`), from random bytes and from valid files mutated.

Property: a loader either returns something its callers can use as is, or raises
`UserError` whose message names the file; never another exception. And the recording writer
and reader agree: a label the writer accepts reads back exactly.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gesturekit.device.core.bundle import MODEL_JSON, load_bundle
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.recording import (
    RecordingSpec,
    RecordingWriter,
    label_problem,
    read_recording,
    read_spec,
)
from gesturekit.errors import UserError

# Cases per property: 300 in `make test` (derandomized, see conftest.py); `make fuzz` sets
# GK_FUZZ_EXAMPLES=5000 and draws them at random.
FUZZ = settings(max_examples=int(os.environ.get("GK_FUZZ_EXAMPLES", "300")),
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CHANNELS = ["ax", "ay", "az"]


def mutate(raw: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    """Apply (position, delete length, insert bytes) edits, positions taken modulo the size."""
    out = bytearray(raw)
    for pos, delete, insert in edits:
        pos = pos % (len(out) + 1)
        out[pos:pos + delete] = insert
    return bytes(out)


edits = st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 8),
                           st.one_of(st.binary(max_size=8),
                                     st.sampled_from([b",", b"\n", b"\r", b'"', b"nan", b"inf",
                                                      b"1e999", b"\x00", b"\xff", b"=", b"[",
                                                      b"{", b"'''", "\u2028".encode()]))),
               max_size=6)


# --- recordings --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def valid_csv(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("rec") / "s1.csv"
    data = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    with RecordingWriter(path, CHANNELS, time_column="t") as w:
        w.append(data, ["walk", "", "jump", "idle"] * 5, np.arange(20) / 50)
    return path.read_bytes()


def check_recording(path: Path, spec: RecordingSpec | None) -> None:
    try:
        rec = read_recording(path, spec)
    except UserError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    n = len(rec.data)
    assert rec.data.shape == (n, len(rec.channels)) and rec.data.dtype == np.float32
    assert rec.labels.shape == (n,)
    assert np.isfinite(rec.data).all()
    if rec.time is not None:
        assert rec.time.shape == (n,) and np.isfinite(rec.time).all()


@FUZZ
@given(raw=st.binary(max_size=3000))
def test_recording_reader_on_random_bytes(tmp_path, raw):
    path = tmp_path / "random.csv"
    path.write_bytes(raw)
    check_recording(path, None)


@FUZZ
@given(edits=edits, with_spec=st.booleans())
def test_recording_reader_on_mutated_recordings(tmp_path, valid_csv, edits, with_spec):
    path = tmp_path / "mutated.csv"
    path.write_bytes(mutate(valid_csv, edits))
    spec = RecordingSpec(channels=CHANNELS, time_column="t") if with_spec else None
    check_recording(path, spec)


@FUZZ
@given(cut=st.integers(0, 10**6))
def test_recording_cut_anywhere_is_valid_up_to_its_last_full_line(tmp_path, valid_csv, cut):
    """A writer killed at any byte: the reader gives exactly the rows of the whole lines."""
    cut %= len(valid_csv) + 1
    path = tmp_path / "cut.csv"
    path.write_bytes(valid_csv[:cut])
    full = read_recording(_write(tmp_path / "full.csv", valid_csv))
    whole_lines = valid_csv[:cut].count(b"\n")
    if whole_lines <= 1:  # no sample yet: nothing to read is an error, not an empty session
        with pytest.raises(UserError, match="empty file" if whole_lines == 0 else "no samples"):
            read_recording(path)
        return
    rec = read_recording(path)
    assert np.array_equal(rec.data, full.data[: whole_lines - 1])
    assert rec.labels.tolist() == full.labels[: whole_lines - 1].tolist()


def _write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def test_quoted_newlines_and_huge_fields_are_user_errors(tmp_path):
    """Found by the fuzzer: a quoted label spanning lines gave an uninitialised row, and a
    field over csv's limit raised csv.Error."""
    for raw in (b'ax,label\n1,"a\nb"\n2,c\n', b"ax,label\n1," + b"x" * 200_000 + b"\n"):
        with pytest.raises(UserError, match=r"cut\.csv:2"):
            read_recording(_write(tmp_path / "cut.csv", raw))


# Any text, surrogates and line separators included, and the characters CSV cares about.
label_text = st.one_of(
    st.text(st.characters(codec=None, exclude_categories=()), max_size=30),
    st.text(st.sampled_from([",", '"', "'", " ", "\t", "\n", "\r", "\x00", "\u2028", "\x85",
                             "\xa0", "#", "a", "é", "\U0001f600", "\ufeff"]), max_size=8),
    st.text(min_size=190, max_size=220))


@FUZZ
@given(labels=st.lists(label_text, min_size=1, max_size=4))
@example(labels=["a,b"])  # the issue: written unquoted, then unreadable
@example(labels=['say "hi", twice', '"', '""', ","])
@example(labels=[" walk", "walk ", "a\nb", "a\rb", "\ud800", "x" * 201])
def test_a_label_the_writer_accepts_reads_back_exactly(labels):
    """Whatever label the writer accepts, the reader gives back unchanged; any other it refuses
    before writing a byte (`label_problem` says why)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "s.csv"
        data = np.arange(len(labels) * 3, dtype=np.float32).reshape(-1, 3)
        with RecordingWriter(path, CHANNELS, time_column="t") as w:
            header = path.read_bytes()
            refused = [label for label in labels if label_problem(label)]
            if refused:
                with pytest.raises(UserError, match="label"):
                    w.append(data, labels, np.arange(len(labels)) / 50)
                assert path.read_bytes() == header  # nothing written
                return
            w.append(data, labels, np.arange(len(labels)) / 50)
        rec = read_recording(path, RecordingSpec(time_column="t"))
        assert rec.labels.tolist() == labels
        np.testing.assert_array_equal(rec.data, data)


# --- dataset.toml ------------------------------------------------------------------------------

toml_values = st.one_of(
    st.integers(-10, 10**12).map(str), st.floats(allow_nan=True).map(
        lambda f: "nan" if math.isnan(f) else ("inf" if f == math.inf else
                                               "-inf" if f == -math.inf else repr(f))),
    st.sampled_from(["true", '"s"', '"ms"', '"h"', '"("', '"a{99999999999}"', '"s(\\\\d+)"',
                     '["ax", "ay"]', "[1, 2]", "[]", '{ ax = "g" }', "{ ax = 1 }", '""',
                     "2024-01-01", '"idle"']),
    st.text(max_size=20).map(json.dumps))
toml_keys = st.sampled_from(["sample_rate_hz", "channels", "units", "label_column", "time_column",
                             "time_unit", "background_label", "subject_pattern", "bogus"])


@FUZZ
@given(pairs=st.lists(st.tuples(toml_keys, toml_values), max_size=8),
       junk=st.one_of(st.just(b""), st.binary(max_size=40)))
# Found by the fuzzer: a repetition count over re's limit raised OverflowError, not re.error.
@example(pairs=[("subject_pattern", '"a{99999999999}"')], junk=b"")
def test_spec_reader_on_random_keys_values_and_bytes(tmp_path, pairs, junk):
    text = "\n".join(f"{k} = {v}" for k, v in dict(pairs).items()).encode() + junk
    path = _write(tmp_path / "dataset.toml", text)
    try:
        spec = read_spec(path)
    except UserError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    # What a caller relies on, without checking again.
    assert spec.sample_rate_hz is None or (math.isfinite(spec.sample_rate_hz)
                                           and spec.sample_rate_hz > 0)
    assert spec.channels is None or all(isinstance(c, str) for c in spec.channels)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in spec.units.items())
    assert spec.time_unit in ("s", "ms")


# --- model bundles -----------------------------------------------------------------------------

VALID_MODEL_JSON = {
    "format_version": 1, "labels": ["idle", "jump", "walk"], "background_label": "idle",
    "channels": CHANNELS, "units": {"ax": "g", "ay": "g", "az": "g"}, "sample_rate_hz": 50.0,
    "window": 16, "hop": 8, "normalization": {"mean": [0.0, 0.1, 1.0], "std": [0.5, 0.5, 0.5]},
    "stateful": True, "files": {"float": "model_float.tflite"},
    "quantization": {"input": {"scale": 0.1, "zero_point": 3}}, "ops": {},
    "postprocess": {"smoothing": 3, "threshold": 0.6, "min_consecutive": 2, "refractory_s": 1.0},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=5),
    max_leaves=12)
fields = st.sampled_from(sorted(VALID_MODEL_JSON) + ["normalization.mean", "normalization.std",
                                                     "postprocess.threshold",
                                                     "postprocess.smoothing", "labels.0"])


def _set(d: dict, dotted: str, value) -> None:
    """Set a (dotted) field; a parent an earlier change replaced is left alone."""
    *parents, last = dotted.split(".")
    for p in parents:
        d = d.get(p) if isinstance(d, dict) else None
    if isinstance(d, dict) and not last.isdigit():
        d[last] = value
    elif isinstance(d, list) and last.isdigit() and int(last) < len(d):
        d[int(last)] = value


def check_bundle(root: Path) -> None:
    try:
        bundle = load_bundle(root)
        PostprocessConfig.for_bundle(bundle)
    except UserError as e:
        assert str(root) in str(e) and "\n" not in str(e)
        return
    # What the runner uses without checking again.
    assert len(set(bundle.labels)) == len(bundle.labels)
    assert 0 < bundle.hop and 0 < bundle.window <= 100_000
    assert math.isfinite(bundle.sample_rate_hz) and bundle.sample_rate_hz > 0
    assert np.isfinite(bundle.normalization.mean).all()
    assert np.isfinite(bundle.normalization.std).all() and (bundle.normalization.std > 0).all()
    assert bundle.background_index is None or 0 <= bundle.background_index < len(bundle.labels)


@FUZZ
@given(changes=st.lists(st.tuples(fields, st.one_of(json_values, st.just("__delete__"))),
                        max_size=4))
def test_bundle_loader_on_mutated_model_json(tmp_path, changes):
    d = json.loads(json.dumps(VALID_MODEL_JSON))
    for key, value in changes:
        if value == "__delete__" and "." not in key:
            d.pop(key, None)
        elif value != "__delete__":
            _set(d, key, value)
    root = tmp_path / "bundle"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir()
    (root / MODEL_JSON).write_text(json.dumps(d), encoding="utf-8")  # NaN/Infinity allowed
    check_bundle(root)


@FUZZ
@given(edits=edits)
def test_bundle_loader_on_mutated_bytes(tmp_path, edits):
    root = tmp_path / "bundle"
    root.mkdir(exist_ok=True)
    (root / MODEL_JSON).write_bytes(mutate(json.dumps(VALID_MODEL_JSON).encode(), edits))
    check_bundle(root)
