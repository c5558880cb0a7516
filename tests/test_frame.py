"""The reference-pose frame (device/core/frame.py, train/datasets.py): rotations that take one
gravity onto another, a stream turned the same whatever its chunks, sessions turned onto the
training median, and model metadata that names a broken pose refused."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gesturekit.device.core.frame import (
    ReferencePose,
    StreamFrame,
    accelerometer,
    gravity_direction,
    rotation_onto,
    triads,
    turn,
)
from gesturekit.errors import UserError
from gesturekit.train.datasets import fit_reference_pose, load_dataset, turn_to_pose

CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]
UNITS = {**dict.fromkeys(CHANNELS[:3], "g"), **dict.fromkeys(CHANNELS[3:], "rad/s")}
unit_vectors = st.tuples(*[st.floats(-1, 1, allow_nan=False)] * 3).filter(
    lambda v: np.linalg.norm(v) > 0.1).map(lambda v: np.asarray(v) / np.linalg.norm(v))


@given(unit_vectors, unit_vectors)
def test_rotation_onto_takes_a_onto_b_and_is_a_rotation(a, b):
    r = rotation_onto(a, b)
    if np.dot(a, b) < -1 + 1e-9:
        assert np.allclose(r, np.eye(3))  # no smallest turn: left as it is, as on the board
        return
    assert np.allclose(r @ a, b, atol=1e-9)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(r), 1.0)
    axis = np.cross(a, b)  # the smallest turn keeps the axis normal to both
    assert np.allclose(r @ axis, axis, atol=1e-9)


def test_triads_and_the_accelerometer():
    assert triads(CHANNELS) == [[0, 1, 2], [3, 4, 5]]
    assert triads(["GX", "GY", "GZ", "t", "acc_x", "acc_y", "acc_z"]) == [[0, 1, 2], [4, 5, 6]]
    assert accelerometer(["gx", "gy", "gz", *CHANNELS[:3]], UNITS, "here") == [3, 4, 5]
    with pytest.raises(UserError, match="here: a reference pose needs accelerometer"):
        accelerometer(CHANNELS[3:], UNITS, "here")


def _stream(rng: np.random.Generator, n: int, tilt: np.ndarray, still: int = 100) -> np.ndarray:
    """A sensor tilted by `tilt` (3, 3), still for its first `still` samples, then moving."""
    acc = np.tile([0.0, 0.0, 1.0], (n, 1)) + rng.normal(0, 0.05, (n, 3))
    gyro = rng.normal(0, 0.3, (n, 3))
    acc[still:] += rng.normal(0, 0.4, (n - still, 3))
    return np.hstack([acc @ tilt.T, gyro @ tilt.T]).astype(np.float32)


@given(st.lists(st.integers(1, 70), min_size=1, max_size=30), st.integers(0, 2**32 - 1))
def test_a_stream_is_turned_the_same_whatever_its_chunks(chunks, seed):
    rng = np.random.default_rng(seed)
    tilt = rotation_onto(np.array([0, 0, 1.0]), gravity_direction(rng.normal(0, 1, (1, 3)) + [0, 0, 3]))
    data = _stream(rng, 400, tilt)
    pose = ReferencePose("still", 2.0, (0.0, 0.0, 1.0))
    whole = StreamFrame(pose, CHANNELS, UNITS, 50.0).apply(data)
    frame, parts, at = StreamFrame(pose, CHANNELS, UNITS, 50.0), [], 0
    for n in chunks:
        parts.append(frame.apply(data[at:at + n]))
        at += n
    parts.append(frame.apply(data[at:]))
    assert np.array_equal(np.concatenate(parts), whole)
    assert np.array_equal(whole[:100], data[:100])  # the reference phase passes as it is
    # the turn takes the reference phase's gravity onto the pose's: the tilt is undone
    assert np.allclose(frame.rotation @ gravity_direction(data[:100, :3]), [0, 0, 1], atol=1e-9)
    assert frame.degrees == pytest.approx(np.degrees(np.arccos(tilt[2, 2])), abs=3)


def test_restart_sets_the_frame_again_from_the_next_samples():
    rng = np.random.default_rng(0)
    pose = ReferencePose("still", 1.0, (0.0, 0.0, 1.0))
    frame = StreamFrame(pose, CHANNELS, UNITS, 50.0)
    frame.apply(_stream(rng, 60, np.eye(3), still=60))
    assert frame.degrees is not None and frame.degrees < 10 and frame.remaining == 0
    frame.restart()
    assert frame.degrees is None and frame.remaining == 50
    tilted = _stream(rng, 60, rotation_onto(np.array([0, 0, 1.0]), np.array([0, 1.0, 0])), still=60)
    out = frame.apply(tilted)
    assert frame.degrees == pytest.approx(90, abs=5)
    assert np.allclose(out[50:, :3].mean(axis=0), [0, 0, 1], atol=0.15)


def test_sessions_are_turned_onto_the_training_median(synth_dataset):
    dataset = load_dataset(synth_dataset)
    assert (dataset.reference_label, dataset.reference_seconds) == ("idle", 3.0)
    train = dataset.subjects[:4]
    pose = fit_reference_pose(dataset, train)
    turned, info = turn_to_pose(dataset, pose)
    assert info["without_pose"] == [] and len(info["degrees"]) == len(dataset.sessions)
    samples = round(pose.seconds * dataset.sample_rate_hz)
    for s in turned.sessions:  # every session starts idle: its first seconds are the pose
        assert np.allclose(gravity_direction(s.data[:samples, :3]), pose.gravity, atol=1e-5)
    # the same frame as a stream gets from the same samples (a stream starts in the pose)
    stream = StreamFrame(pose, dataset.channels, dataset.units, dataset.sample_rate_hz)
    first = dataset.sessions[0]
    assert np.allclose(stream.apply(first.data)[samples:], turned.sessions[0].data[samples:],
                       atol=1e-6)


def test_offline_streams_of_labelled_sessions_are_turned_by_their_labelled_pose(synth_dataset):
    """`evaluate --stream` and `calibrate` turn a labelled session by its labelled pose (a
    recording need not start in it, as HAPT's do not); a session without it, from its first
    seconds as the runner does. Either way no window holds the first seconds."""
    from dataclasses import replace

    from gesturekit.device.core.model_info import ModelInfo
    from gesturekit.device.core.stream_eval import stream_windows
    from gesturekit.device.core.windowing import Normalization
    from gesturekit.train.evaluate import stream_sessions

    dataset = load_dataset(synth_dataset)
    pose = fit_reference_pose(dataset, dataset.subjects[:4])
    model = ModelInfo(dataset.labels, "idle", dataset.channels, dataset.units, 50.0, 64, 16,
                      Normalization(np.zeros(6), np.ones(6)), True, reference_pose=pose)
    # The first session's first 3 s tilted by 37 degrees and unlabelled (the sensor being put
    # on): its labelled pose comes later. A stream turned from its first seconds is that far off.
    s0 = dataset.sessions[0]
    data, ids = s0.data.copy(), s0.label_ids.copy()
    data[:150] = turn(data[:150], triads(dataset.channels),
                      rotation_onto(np.array([0, 0, 1.0]), np.array([0, 0.6, 0.8])))
    ids[:150] = -1
    assert (s0.label_ids[150:200] == dataset.labels.index("idle")).all()  # 1 s of the pose left
    tilted = replace(dataset, sessions=[replace(s0, data=data, label_ids=ids), *dataset.sessions[1:]])
    sessions = stream_sessions(model, tilted, None)
    assert all(s.turned for s in sessions)
    expected = turn_to_pose(tilted, pose)[0].sessions[0].data
    assert np.allclose(sessions[0].data, expected)
    from_start = StreamFrame(pose, dataset.channels, dataset.units, 50.0)
    from_start.apply(data)
    assert from_start.degrees > 30  # what the first seconds would have set
    # A session without a sample of the pose is left as it is, as training leaves it.
    no_pose = replace(tilted, sessions=[replace(s0, label_ids=np.where(
        s0.label_ids == dataset.labels.index("idle"), -1, s0.label_ids))])
    (alone,) = stream_sessions(model, no_pose, None)
    assert alone.turned and np.array_equal(alone.data, s0.data)
    ends, windows = stream_windows(model, sessions[0].data, turned=True)
    assert ends[0] == 150 + 64 and np.array_equal(windows[0], sessions[0].data[150:214])
    assert np.array_equal(windows[1], sessions[0].data[166:230])  # as they are, every hop
    unlabelled = replace(tilted, labels=[("rest" if x == "idle" else x) for x in tilted.labels])
    assert not any(s.turned for s in stream_sessions(model, unlabelled, None))


def test_a_pose_the_dataset_lacks_is_a_user_error(synth_dataset):
    dataset = load_dataset(synth_dataset, reference_label="sprint")
    with pytest.raises(UserError, match="reference_label 'sprint' is not one of its classes"):
        fit_reference_pose(dataset, dataset.subjects)


@pytest.mark.parametrize("pose", [
    {"label": "idle", "seconds": 0, "gravity": [0, 0, 1]},
    {"label": "idle", "seconds": 3, "gravity": [0, 0, 2]},
    {"label": "idle", "seconds": 3, "gravity": [0, 1]},
    {"seconds": 3, "gravity": [0, 0, 1]},
])
def test_model_metadata_with_a_broken_pose_is_refused(pose):
    with pytest.raises(UserError, match="model.json: reference: expected label, seconds > 0"):
        ReferencePose.from_dict(pose, "model.json")
