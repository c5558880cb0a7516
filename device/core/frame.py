"""The reference-pose frame: every session or stream turned so that the gravity it reads in a
reference pose points where the training sessions' median does.

How a sensor sits (a phone in a waist pouch, a board on a wrist) tilts every axis by as much as
two postures differ, so a model trained on some people's tilt misreads another's. Each session
starts with a few seconds in a known pose (HAPT's standing, a gesture set's rest): the mean
accelerometer there is that session's gravity, and the smallest rotation taking it onto the
training median is applied to every x/y/z triad (accelerometer and gyroscope alike).

Training and `evaluate` find the pose by its label (`train.datasets.turn_to_pose`: the first
seconds of a session's first run of that class); a stream, which has no labels, takes its first
seconds (`StreamFrame`: the runner, `evaluate --stream`, `calibrate`, `plot`, and the firmware's
gk_frame.h alike): samples before the frame is set pass unturned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gesturekit.errors import UserError

ACCELERATION_UNITS = ("g", "m/s^2", "m/s2")


@dataclass(frozen=True)
class ReferencePose:
    label: str  # the class the pose is (STANDING, idle)
    seconds: float  # how much of it sets the frame
    gravity: tuple[float, float, float] | None = None  # unit vector: the training median

    def to_dict(self) -> dict:
        return {"label": self.label, "seconds": self.seconds,
                "gravity": list(self.gravity) if self.gravity is not None else None}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> ReferencePose:
        """A pose from model metadata; a user error naming `where` when a field is wrong."""
        gravity = d.get("gravity")
        ok = (isinstance(d.get("label"), str) and isinstance(d.get("seconds"), int | float)
              and d["seconds"] > 0 and isinstance(gravity, list) and len(gravity) == 3
              and all(isinstance(v, int | float) for v in gravity)
              and abs(math.hypot(*gravity) - 1) < 1e-3)
        if not ok:
            raise UserError(f"{where}: reference: expected label, seconds > 0 and gravity (a unit "
                            f"x/y/z vector), got {d!r}")
        return cls(d["label"], float(d["seconds"]), tuple(float(v) for v in gravity))


def triads(channels: list[str]) -> list[list[int]]:
    """Index triples of x/y/z channels that turn together: names sharing a prefix and ending
    in x, y, z (ax ay az, acc_x acc_y acc_z, in either case)."""
    found = []
    for i, name in enumerate(channels):
        if name.lower().endswith("x"):
            wanted = [name[:-1] + "y", name[:-1] + "z"]
            for names in (wanted, [w.upper() for w in wanted]):
                if all(w in channels for w in names):
                    found.append([i, channels.index(names[0]), channels.index(names[1])])
                    break
    return found


def accelerometer(channels: list[str], units: dict[str, str], where: str) -> list[int]:
    """The accelerometer's triad (units g or m/s^2); a user error naming `where` if none."""
    for t in triads(channels):
        if units.get(channels[t[0]]) in ACCELERATION_UNITS:
            return t
    raise UserError(f"{where}: a reference pose needs accelerometer x/y/z channels (units g or "
                    "m/s^2)")


def reference_samples(seconds: float, rate_hz: float) -> int:
    """How many samples of the pose set the frame (the firmware's kReferenceSamples)."""
    return max(1, round(seconds * rate_hz))


def gravity_direction(acc: np.ndarray) -> np.ndarray | None:
    """Unit vector (3,) of the mean of accelerometer samples (N, 3); None if it is ~0."""
    g = np.asarray(acc, np.float64).mean(axis=0)
    norm = float(np.linalg.norm(g))
    return g / norm if norm > 1e-6 else None


def rotation_onto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking unit vector `a` onto unit vector `b` (Rodrigues);
    opposite vectors have no smallest one: the identity (the firmware's gk_frame.h alike)."""
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-9:
        return np.eye(3)
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + k + k @ k / (1 + c)


def degrees_between(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


def turn(data: np.ndarray, groups: list[list[int]], rotation: np.ndarray) -> np.ndarray:
    """A copy of samples (N, C) with each triad in `groups` rotated (float32)."""
    out = np.array(data, np.float32, copy=True)
    for t in groups:
        out[:, t] = (np.asarray(data[:, t], np.float64) @ rotation.T).astype(np.float32)
    return out


class StreamFrame:
    """A stream turned into the training frame: its first `samples` pass as they are and set the
    frame from their mean gravity; every later sample is turned. `restart` sets it again from
    the next samples (the user holds the pose once more)."""

    def __init__(self, pose: ReferencePose, channels: list[str], units: dict[str, str],
                 rate_hz: float):
        self.target = np.asarray(pose.gravity, np.float64)
        self.samples = reference_samples(pose.seconds, rate_hz)
        self.acc = accelerometer(channels, units, "reference pose")
        self.groups = triads(channels)
        self.restart()

    def restart(self) -> None:
        self.rotation: np.ndarray | None = None
        self.degrees: float | None = None  # set once the frame is
        self._seen: list[np.ndarray] = []
        self._count = 0

    @property
    def remaining(self) -> int:
        """Samples still to come before the frame is set (0 once it is)."""
        return 0 if self.rotation is not None else self.samples - self._count

    def apply(self, block: np.ndarray) -> np.ndarray:
        """Samples (n, C) in, the same samples in the frame out (those of the reference phase
        as they are)."""
        if self.rotation is None:
            head, block = block[:self.remaining], block[self.remaining:]
            self._seen.append(np.asarray(head[:, self.acc], np.float64))
            self._count += len(head)
            if self._count < self.samples:
                return head
            g = gravity_direction(np.concatenate(self._seen))
            self.rotation = rotation_onto(g, self.target) if g is not None else np.eye(3)
            self.degrees = degrees_between(g, self.target) if g is not None else 0.0
            return np.concatenate([head, turn(block, self.groups, self.rotation)]) if len(block) else head
        return turn(block, self.groups, self.rotation)
