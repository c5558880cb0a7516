"""`gesturekit plot`: a session's channels over time with its labelled segments as coloured
bands and, with a model bundle, the per-window predictions and the events the
post-processing would announce, so a person can see where and why the model is wrong.

The session is read with the loader the simulator uses (`device.core.recording.load_session`: what
`simulate` would play) and predictions go through the runner's own code, the one offline
replay `device.core.stream_eval.replay` that `evaluate --stream` and `calibrate` use too. So the
events in the picture are those `run` prints and `evaluate --stream` scores: event classes
only (states such as `walk` show in the prediction strip, never as events).
The session's columns go to the model by name (`device.core.model_info.channel_order`, the one
channel-mapping rule). `plot_recording` returns the numbers behind the picture (`PlotData`).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gesturekit.device.core.backends import Classifier, choose_backend
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.frame import accelerometer, reference_samples, rotation_onto, triads, turn
from gesturekit.device.core.hapt import HaptSource, activity_ids, activity_names
from gesturekit.device.core.model_info import channel_order, rate_is_off
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.device.core.recording import (
    HAPT_SESSION,
    Session,
    find_spec,
    load_session,
    read_recording,
    read_spec,
)
from gesturekit.device.core.stream_eval import replay
from gesturekit.device.core.windowing import label_runs
from gesturekit.errors import UserError
from gesturekit.train.datasets import pose_gravity


@dataclass
class PlotData:
    """What the picture shows; sample indices count from the session's first sample."""

    recording: str
    channels: list[str]
    sample_rate_hz: float
    samples: int
    segments: list[tuple[str, int, int]]  # (label, first, end) runs of equally labelled samples
    model: str | None = None
    model_labels: list[str] = field(default_factory=list)
    hop: int = 0  # the model's hop: each window's prediction is drawn over its newest hop
    postprocess: dict = field(default_factory=dict)
    window_ends: list[int] = field(default_factory=list)  # sample after each window's last
    window_labels: list[str] = field(default_factory=list)  # top class per window
    window_confidence: list[float] = field(default_factory=list)  # its raw probability
    events: list[tuple[str, int]] = field(default_factory=list)  # (label, end sample), as `run`

    def to_dict(self) -> dict:
        return asdict(self)


def session_labels(path: Path, n_samples: int) -> np.ndarray:
    """Per-sample label names ("" = unlabelled): the label column of a recording-format CSV
    (unlabelled samples take the dataset's background label, as `load_dataset` does), or
    `RawData/labels.txt` for a HAPT session."""
    m = HAPT_SESSION.search(path.name)
    if m:
        source = HaptSource(path.parent.parent)
        names = np.array([*activity_names(source), ""], dtype=object)  # UNLABELLED (-1): ""
        return names[activity_ids(source, int(m.group(1)), int(m.group(2)), n_samples, len(names) - 1)]
    toml = find_spec(path)
    spec = read_spec(toml) if toml else None
    labels = read_recording(path, spec).labels.astype(object)
    if spec and spec.background_label:
        labels[labels == ""] = spec.background_label
    return labels


def label_segments(labels: np.ndarray) -> list[tuple[str, int, int]]:
    """(label, first, end) for every run of equal, non-empty labels."""
    return [(str(labels[a]), a, b) for a, b in label_runs(labels) if labels[a]]


def plot_recording(recording: str | os.PathLike, out: str | os.PathLike,
                   model: str | os.PathLike | None = None, rate_hz: float | None = None,
                   backend: str | None = None, int8: bool = False,
                   postprocess: dict | None = None) -> PlotData:
    """Draw `recording` (with `model`'s predictions) into the image `out`; returns its numbers."""
    check_image_name(out)
    path = Path(recording)
    session = load_session(path, rate_hz)
    labels = session_labels(path, len(session.data))
    result = PlotData(str(path), session.channels, session.sample_rate_hz, len(session.data),
                      label_segments(labels))
    if model is not None:
        bundle = load_bundle(model)
        if rate_is_off(session.sample_rate_hz, bundle.sample_rate_hz):
            raise UserError(f"{path}: {session.sample_rate_hz:g} Hz, but the model {bundle.root} "
                            f"expects {bundle.sample_rate_hz:g} Hz")
        data = session.data[:, channel_order(bundle.channels, session.channels, str(path))]
        classifier = Classifier(bundle, *choose_backend(bundle, backend, int8))
        cfg = PostprocessConfig.for_bundle(bundle, postprocess)
        data, turned = _labelled_pose_frame(bundle, data, labels)
        ends, probs, events = replay(bundle, data, classifier, cfg, turned)
        result.events = [(e.label, e.end_sample) for e in events]
        top = probs.argmax(axis=1) if len(probs) else np.zeros(0, int)
        result.model, result.model_labels = str(bundle.root), list(bundle.labels)
        result.postprocess, result.hop = cfg.to_dict(), bundle.hop
        result.window_ends = ends.tolist()
        result.window_labels = [bundle.labels[i] for i in top]
        result.window_confidence = [round(float(p), 4) for p in probs[np.arange(len(top)), top]]
    draw(result, session, out)
    return result


def _labelled_pose_frame(bundle, data: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, bool]:
    """(samples, whether they are in the model's frame): a recording whose labels hold the
    reference pose is turned by it, as `evaluate --stream` turns a labelled session
    (`train.evaluate.stream_sessions`); any other is left to the runner's rule (its first
    seconds)."""
    pose = bundle.reference_pose
    in_pose = np.asarray(labels) == (pose.label if pose else None)
    if pose is None or not in_pose.any():
        return data, False
    acc = accelerometer(bundle.channels, bundle.units, bundle.root)
    g = pose_gravity(data[:, acc], in_pose, reference_samples(pose.seconds, bundle.sample_rate_hz))
    if g is None:  # no gravity in the pose (a zero accelerometer): as it is, as training leaves it
        return data, True
    return turn(data, triads(bundle.channels), rotation_onto(g, np.asarray(pose.gravity))), True


def check_image_name(out: str | os.PathLike) -> None:
    """`out` ends in a format matplotlib writes; checked before any work is done."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if Path(out).suffix[1:].lower() not in formats:
        raise UserError(f"--out {out}: expected an image file name ending in .png or another "
                        f"format matplotlib writes ({', '.join(sorted(formats))})")


def _colours(names: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    return {name: palette[i % len(palette)] for i, name in enumerate(names)}


def draw(data: PlotData, session: Session, out: str | os.PathLike) -> None:
    """Channels per unit group, labelled bands; with predictions a truth/prediction strip and
    the top-class confidence, events as vertical lines through every panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rate = data.sample_rate_hz
    t = np.arange(data.samples) / rate
    names = list(dict.fromkeys([*data.model_labels, *(s[0] for s in data.segments)]))
    colour = _colours(names)
    # Acceleration-like and rate-like channels have different scales: one panel each.
    groups = ([list(range(3)), list(range(3, len(data.channels)))] if len(data.channels) == 6
              else [list(range(len(data.channels)))])
    with_model = data.model is not None
    heights = [3] * len(groups) + ([1, 2] if with_model else [])
    fig, axes = plt.subplots(len(heights), 1, sharex=True, figsize=(14, 1.5 + 0.7 * sum(heights)),
                             gridspec_kw={"height_ratios": heights}, squeeze=False)
    axes = axes[:, 0]
    for ax, group in zip(axes, groups, strict=False):
        for label, first, end in data.segments:
            ax.axvspan(first / rate, end / rate, color=colour[label], alpha=0.25, lw=0)
        for c in group:
            ax.plot(t, session.data[:, c], lw=0.6, label=data.channels[c])
        ax.legend(loc="upper right", fontsize=7, ncol=len(group))
        ax.margins(x=0)
    if with_model:
        strip, conf = axes[len(groups)], axes[len(groups) + 1]
        for label, first, end in data.segments:
            strip.axvspan(first / rate, end / rate, ymin=0.5, ymax=1.0, color=colour[label], lw=0)
        ends = np.asarray(data.window_ends) / rate
        for end, label in zip(ends, data.window_labels, strict=True):
            strip.axvspan(end - data.hop / rate, end, ymin=0.0, ymax=0.5, color=colour[label], lw=0)
        strip.set_yticks([0.25, 0.75], ["predicted", "labelled"])
        strip.set_ylim(0, 1)
        conf.scatter(ends, data.window_confidence, s=6,
                     c=[colour[label] for label in data.window_labels])
        conf.axhline(data.postprocess["threshold"], color="red", ls="--", lw=0.8)
        conf.set_ylim(0, 1.05)
        conf.set_ylabel("top-class p")
        for label, end in data.events:
            for ax in axes:
                ax.axvline(end / rate, color="black", lw=0.6, alpha=0.6)
            conf.text(end / rate, 0.03, f" {label}", fontsize=6, rotation=90, ha="right",
                      va="bottom")
    axes[-1].set_xlabel("time (s)")
    fig.legend(handles=[Patch(color=colour[n], label=n) for n in names], loc="lower center",
               ncol=min(len(names), 6), fontsize=7, frameon=False)
    title = Path(data.recording).name + (f" · predictions and {len(data.events)} events"
                                         if with_model else "")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.04 + 0.012 * (len(names) // 6), 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw_tradeoff(label: str, points: list[tuple[float, float]], chosen: tuple[float, float],
                  out: str | os.PathLike) -> None:
    """One event class's calibration: recall against false events per hour for every setting
    tried (grey), their upper envelope, and the chosen setting (red)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recall = np.array([p[0] for p in points])
    rate = np.array([p[1] for p in points])
    order = np.lexsort((-recall, rate))
    envelope_r, envelope_x, best = [], [], -1.0
    for i in order:  # the most recall reached at or below each false-event rate
        if recall[i] > best:
            best = recall[i]
            envelope_x.append(rate[i])
            envelope_r.append(best)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.scatter(rate, recall, s=6, color="0.7", label="settings tried")
    ax.step(envelope_x, envelope_r, where="post", color="tab:blue", label="best recall")
    ax.scatter([chosen[1]], [chosen[0]], s=40, color="red", zorder=3, label="chosen")
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set_xlabel("false events per hour (background + non-event states)")
    ax.set_ylabel("event recall")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(f"{label}: validation subjects")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
