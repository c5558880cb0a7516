"""The built-in default dataset: seeded synthetic IMU sessions of a waist-worn 6-axis sensor.

Each subject walks most of the time (the dominant class), stands idle now and then, and
rarely jumps, punches or turns, so the largest/smallest class ratio is above 50 like the
imbalance gesturekit is built for. Subjects differ in step tempo, movement amplitude, how the
sensor is mounted (a small rotation), sensor bias and noise. Output is the recording format
(CSV sessions + dataset.toml), so the demo exercises the real loader.

Good for the demo and fast tests only: accuracy claims come from real recordings.

Frame: x forward, y left, z up; an accelerometer at rest reads +1 g on z (specific force).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturekit.device.core.files import check_replaceable, replace_folder
from gesturekit.device.core.recording import DATASET_TOML, RecordingSpec, write_spec
from gesturekit.errors import UserError

CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]
UNITS = {**dict.fromkeys(CHANNELS[:3], "g"), **dict.fromkeys(CHANNELS[3:], "rad/s")}
BACKGROUND = "idle"  # written as an empty label: unlabelled samples take this class
GESTURES_PER_SESSION = {"jump": 2, "punch": 3, "turn": 3}
GESTURE_SECONDS = (2.6, 3.2)  # labelled span: preparation, the motion itself, recovery
WALK_SHARE = 0.92  # of the time that is not a gesture; the rest is idle
# Every session starts still (idle), as a recording protocol asks: its first seconds are the
# reference pose that sets the session's frame (dataset.toml `reference_label`).
START_IDLE_S = 4.0
REFERENCE_S = 3.0
ACC_RANGE_G, GYRO_RANGE_RAD_S = 8.0, 17.4  # a common IMU's full scale (±8 g, ±1000 °/s)


@dataclass
class SynthConfig:
    seed: int = 0
    subjects: int = 8
    minutes: float = 12.0  # per subject, split over two sessions
    sample_rate_hz: int = 50


@dataclass
class _Subject:
    step_hz: float  # walking cadence
    amplitude: float  # scales every movement
    mount: np.ndarray  # (3, 3) rotation from body frame to sensor frame
    acc_bias: np.ndarray  # (3,) g
    gyro_bias: np.ndarray  # (3,) rad/s
    acc_noise: float
    gyro_noise: float


def _rotation(rng: np.random.Generator, max_degrees: float) -> np.ndarray:
    """A random rotation matrix of at most `max_degrees` about a random axis (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = np.radians(rng.uniform(0, max_degrees))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _subject(rng: np.random.Generator) -> _Subject:
    return _Subject(
        step_hz=rng.uniform(1.6, 2.1), amplitude=rng.uniform(0.8, 1.25),
        mount=_rotation(rng, 15.0), acc_bias=rng.normal(0, 0.03, 3),
        gyro_bias=rng.normal(0, 0.02, 3), acc_noise=rng.uniform(0.01, 0.03),
        gyro_noise=rng.uniform(0.01, 0.03),
    )


def _bump(t: np.ndarray, centre: float, width: float) -> np.ndarray:
    """A smooth pulse (Gaussian) of height 1 at `centre` seconds."""
    return np.exp(-0.5 * ((t - centre) / width) ** 2)


# Each movement returns body-frame (acc (n, 3) in g without gravity, gyro (n, 3) in rad/s).


def _idle(n: int, rate: int, s: _Subject, rng: np.random.Generator):
    t = np.arange(n) / rate
    omega, phase = 2 * np.pi * rng.uniform(0.1, 0.3), rng.uniform(0, 2 * np.pi)
    acc = np.zeros((n, 3))
    acc[:, 0] = 0.01 * s.amplitude * np.sin(omega * t + phase)  # slow postural sway
    gyro = np.zeros((n, 3))
    gyro[:, 1] = 0.05 * s.amplitude * omega * np.cos(omega * t + phase)
    return acc, gyro


def _walk(n: int, rate: int, s: _Subject, rng: np.random.Generator):
    t = np.arange(n) / rate
    # Cadence drifts slowly; phase is the integral of the instantaneous step rate.
    step_hz = s.step_hz * (1 + 0.05 * np.sin(2 * np.pi * t / rng.uniform(8, 20)))
    phase = 2 * np.pi * np.cumsum(step_hz) / rate + rng.uniform(0, 2 * np.pi)
    a = s.amplitude
    acc = np.stack([
        0.15 * a * np.sin(phase + np.pi / 2),  # forward surge, once per step
        0.10 * a * np.sin(phase / 2),  # lateral sway, once per stride
        0.30 * a * np.sin(phase) + 0.09 * a * np.sin(2 * phase + 0.8),  # vertical bounce
    ], axis=1)
    gyro = np.stack([
        0.30 * a * np.sin(phase / 2),  # roll with the stride
        0.20 * a * np.sin(phase + 0.5),  # pitch with each step
        0.15 * a * np.sin(phase / 2 + 1.0),  # pelvis yaw
    ], axis=1)
    return acc, gyro


def _jump(n: int, rate: int, s: _Subject, rng: np.random.Generator):
    acc, gyro = _idle(n, rate, s, rng)
    t = np.arange(n) / rate
    t0 = rng.uniform(0.6, 0.9)  # crouch starts
    a = s.amplitude
    crouch = -0.4 * a * _bump(t, t0 + 0.2, 0.1)
    push = 1.5 * a * _bump(t, t0 + 0.5, 0.08)
    flight = (t > t0 + 0.62) & (t < t0 + 0.97)
    land = 2.5 * a * _bump(t, t0 + 1.0, 0.04) - 0.3 * a * _bump(t, t0 + 1.2, 0.08)
    acc[:, 2] += crouch + push + land
    acc[flight, 2] = -1.0  # free fall: the sensor reads about 0 g once gravity is added
    gyro[:, 1] += 1.2 * a * (_bump(t, t0 + 0.35, 0.1) - _bump(t, t0 + 1.05, 0.08))
    return acc, gyro


def _punch(n: int, rate: int, s: _Subject, rng: np.random.Generator):
    acc, gyro = _idle(n, rate, s, rng)
    t = np.arange(n) / rate
    t0 = rng.uniform(0.8, 1.2)
    a = s.amplitude
    acc[:, 0] += a * (2.0 * _bump(t, t0, 0.05) - 2.4 * _bump(t, t0 + 0.14, 0.05)
                      - 0.8 * _bump(t, t0 + 0.4, 0.08) + 0.8 * _bump(t, t0 + 0.6, 0.08))
    acc[:, 1] += 0.3 * a * _bump(t, t0 + 0.05, 0.06)
    gyro[:, 2] += 1.5 * a * (_bump(t, t0 - 0.05, 0.06) - _bump(t, t0 + 0.45, 0.1))
    gyro[:, 0] += 0.6 * a * _bump(t, t0, 0.05)
    return acc, gyro


def _turn(n: int, rate: int, s: _Subject, rng: np.random.Generator):
    """A 90° turn while walking: a half-sine yaw rate whose integral is ±π/2."""
    acc, gyro = _walk(n, rate, s, rng)
    acc, gyro = 0.6 * acc, 0.6 * gyro  # people slow down to turn
    t = np.arange(n) / rate
    t0, duration = rng.uniform(0.7, 1.1), rng.uniform(0.8, 1.1)
    inside = (t >= t0) & (t <= t0 + duration)
    yaw_rate = np.where(inside, np.pi**2 / (4 * duration) * np.sin(np.pi * (t - t0) / duration), 0)
    yaw_rate *= rng.choice([-1.0, 1.0])
    gyro[:, 2] += yaw_rate
    acc[:, 1] += 0.1 * yaw_rate  # centripetal pull towards the turn
    return acc, gyro


MOVEMENTS = {"idle": _idle, "walk": _walk, "jump": _jump, "punch": _punch, "turn": _turn}


def _timeline(n_total: int, rate: int, rng: np.random.Generator) -> list[tuple[str, int]]:
    """(label, samples) segments: walking and idle bouts with the rare gestures spread in."""
    gestures = [g for g, k in GESTURES_PER_SESSION.items() for _ in range(k)]
    gestures = [gestures[i] for i in rng.permutation(len(gestures))]
    lengths = [int(rng.uniform(*GESTURE_SECONDS) * rate) for _ in gestures]
    start = int(START_IDLE_S * rate)
    filler = n_total - start - sum(lengths)
    if filler < 2 * rate * (len(gestures) + 1):  # at least 2 s of walking between gestures
        raise UserError(f"synthetic sessions of {n_total / rate:.0f} s are too short for "
                        f"{len(gestures)} gestures each; raise --minutes")
    # Split the filler into bouts between the gestures, each bout walk then idle.
    cuts = np.sort(rng.choice(np.arange(1, filler), len(gestures), replace=False))
    bouts = np.diff(np.concatenate([[0], cuts, [filler]]))
    segments: list[tuple[str, int]] = [("idle", start)]
    for i, bout in enumerate(bouts):
        walk = int(bout * WALK_SHARE)
        segments += [("walk", walk), ("idle", int(bout) - walk)]
        if i < len(gestures):
            segments.append((gestures[i], lengths[i]))
    return [(label, n) for label, n in segments if n > 0]


def synth_session(n_total: int, rate: int, subject: _Subject, rng: np.random.Generator):
    """One session: samples (N, 6) in the sensor frame, labels (N,) ("" for idle)."""
    accs, gyros, labels = [], [], []
    for label, n in _timeline(n_total, rate, rng):
        acc, gyro = MOVEMENTS[label](n, rate, subject, rng)
        accs.append(acc)
        gyros.append(gyro)
        labels += ["" if label == BACKGROUND else label] * n
    acc = np.concatenate(accs) + [0.0, 0.0, 1.0]  # add gravity
    gyro = np.concatenate(gyros)
    acc = acc @ subject.mount.T + subject.acc_bias + rng.normal(0, subject.acc_noise, acc.shape)
    gyro = gyro @ subject.mount.T + subject.gyro_bias + rng.normal(0, subject.gyro_noise, gyro.shape)
    data = np.hstack([np.clip(acc, -ACC_RANGE_G, ACC_RANGE_G),
                      np.clip(gyro, -GYRO_RANGE_RAD_S, GYRO_RANGE_RAD_S)])
    return data, labels


def write_synthetic_dataset(out: str | Path, cfg: SynthConfig | None = None,
                            force: bool = False) -> Path:
    """Write the dataset folder; the same config gives byte-identical files."""
    cfg = cfg or SynthConfig()
    out = Path(out)
    check_replaceable(out, force, DATASET_TOML, "dataset folder")
    rate = cfg.sample_rate_hz
    per_session = int(cfg.minutes * 60 * rate / 2)

    def build(folder: Path) -> None:
        for k in range(1, cfg.subjects + 1):
            rng = np.random.default_rng([cfg.seed, k])  # each subject its own stream
            subject = _subject(rng)
            for session in (1, 2):
                data, labels = synth_session(per_session, rate, subject, rng)
                lines = ["t," + ",".join(CHANNELS) + ",label"]
                for i, (row, label) in enumerate(zip(data, labels, strict=True)):
                    lines.append(f"{i / rate:.3f}," + ",".join(f"{v:.4f}" for v in row) + f",{label}")
                (folder / f"s{k:02d}_session{session}.csv").write_text("\n".join(lines) + "\n")
        write_spec(folder / DATASET_TOML, RecordingSpec(
            sample_rate_hz=rate, channels=list(CHANNELS), units=dict(UNITS), label_column="label",
            time_column="t", time_unit="s", background_label=BACKGROUND, subject_pattern=r"s(\d+)_",
            reference_label=BACKGROUND, reference_seconds=REFERENCE_S,
        ))

    replace_folder(out, build)  # a failure or a kill leaves no folder (or the old one) behind
    return out
