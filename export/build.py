"""`gesturekit export`: a run folder -> a verified model bundle.

The bundle is built in a temporary folder next to `out` and renamed into place only when it
is complete (`device.core.files.replace_folder`), so a failed or killed export never leaves a
half-written bundle behind, and `--force` keeps the old bundle until the new one is whole.
The bundle names its run relative to itself (`training.run`, e.g. `../run`): it can be moved,
and read from any working directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from importlib import resources
from pathlib import Path

from gesturekit.device.core.bundle import MODEL_JSON, Bundle, write_model_json
from gesturekit.device.core.files import check_replaceable, replace_folder
from gesturekit.device.core.model_info import check_event_classes
from gesturekit.errors import UserError
from gesturekit.export import carray, flatbuffer, onnx_export, parity, report, tflite
from gesturekit.options import to_samples

MODELS = {"cnn_lstm": "cnn_lstm", "cnn": "cnn_head"}  # --model choice -> run model
# How often a bundle decides by default (`export --hop`): bench/events_hapt.py measured the
# delay from a gesture's end and the cost on host and board at 1.28, 0.64, 0.32 and 0.16 s.
DECISION_HOP_S = 0.16
FLOAT_MAX_ABS_DIFF = 1e-4
FLOAT_MIN_AGREEMENT = 0.999
FILES = {"float": "model_float.tflite", "int8": "model_int8.tflite", "onnx": "model.onnx",
         "c_header": "model_data.h", "c_source": "model_data.cc", "c_config": "model_config.h",
         "report": "report.md"}


def tflm_ops() -> dict:
    """The TFLM builtin op list kept as data (`tflm_ops.json`: source, op -> resolver method)."""
    text = resources.files("gesturekit.export").joinpath("tflm_ops.json").read_text("utf-8")
    return json.loads(text)


def check_tflm_ops(ops: list[str], kind: str) -> list[str]:
    """The resolver method of each op; a UserError naming any op TFLM does not register."""
    known = tflm_ops()
    missing = [op for op in ops if op not in known["ops"]]
    if missing:
        raise UserError(f"int8 model uses op(s) {', '.join(missing)} that TensorFlow Lite Micro "
                        f"does not register (list: export/tflm_ops.json, from {known['source']})")
    if kind == "cnn_lstm" and (flatbuffer.LSTM_OP not in ops or "WHILE" in ops):
        raise UserError(f"int8 model has ops {', '.join(ops)}: expected the fused "
                        f"{flatbuffer.LSTM_OP} and no WHILE loop")
    return [known["ops"][op] for op in ops]


@dataclass
class ExportResult:
    out: Path
    bundle: Bundle
    summary: dict
    float_ok: bool


def export_run(run_path: str | Path, out: str | Path, model: str = "cnn_lstm",
               force: bool = False, allow_mismatch: bool = False,
               event_classes: list[str] | None = None, hop: int | str | None = None) -> ExportResult:
    """Export a run's model to a bundle folder; check parity on the run's test split.
    `event_classes`: the classes announced as events (default: every class but the
    background); `hop`: samples or "0.16s" between the windows the bundle decides on (default:
    `DECISION_HOP_S`, never more than the run's hop)."""
    from gesturekit.train.runs import run_windows

    if model not in MODELS:
        raise UserError(f"unknown --model {model!r}; expected one of {', '.join(MODELS)}")
    out = Path(out)
    check_replaceable(out, force, MODEL_JSON, "model bundle")
    run, info, keras_model = _load_model(run_path, MODELS[model], event_classes)
    info.hop = decision_hop(hop, info.hop, info.sample_rate_hz)
    train, test = run_windows(run, "train"), run_windows(run, "test")
    if len(train.y) == 0 or len(test.y) == 0:
        raise UserError(f"{run.root}: the run's dataset gives no labelled train or test windows")
    converted = _convert(run, MODELS[model], keras_model, info, train)
    keras_probs = parity.keras_probabilities(keras_model, test.x)

    def build(work: Path) -> tuple[Bundle, dict, bool]:
        bundle = _write_model_files(work, converted, info, run, MODELS[model], out)
        # Parity runs the written files through the runner's own Classifier (deployed path).
        probs = {"keras": keras_probs, **_bundle_probabilities(bundle, test.x)}
        agreement = {name: parity.compare(keras_probs, p, test.y, len(info.labels)).to_dict()
                     for name, p in probs.items()}
        float_ok = all(agreement[n]["max_abs_diff"] <= FLOAT_MAX_ABS_DIFF and
                       agreement[n]["argmax_agreement"] >= FLOAT_MIN_AGREEMENT
                       for n in ("float", "onnx"))
        summary = _summary(work, run, bundle, keras_model, converted, test, agreement, float_ok)
        bundle.parity = summary["parity"]
        write_model_json(bundle)
        summary["session_plot"] = _plot_test_session(run, work)
        (work / FILES["report"]).write_text(report.render_report(summary), encoding="utf-8")
        bundle.root = out
        if not float_ok and not allow_mismatch:
            raise UserError(_mismatch_message(agreement, out))
        return bundle, summary, float_ok

    bundle, summary, float_ok = replace_folder(out, build)
    return ExportResult(out, bundle, summary, float_ok)


def _load_model(run_path: str | Path, kind: str, event_classes: list[str] | None):
    """The run, the bundle's model metadata (the run's; stateless for the CNN head; the chosen
    event classes) and the Keras model, checked against each other."""
    from gesturekit.train.runs import load_keras_model, load_run

    run = load_run(run_path)
    chosen = check_event_classes(event_classes, run.model_info.labels,
                                 run.model_info.background_label, str(run.root))
    info = replace(run.model_info, stateful=kind == "cnn_lstm", event_classes=chosen)
    keras_model = load_keras_model(run, kind)
    n_classes, window, channels = len(info.labels), info.window, len(info.channels)
    if tuple(keras_model.input_shape[1:]) != (window, channels) or \
            keras_model.output_shape[-1] != n_classes:
        raise UserError(f"{run.root}: model input {keras_model.input_shape} / output "
                        f"{keras_model.output_shape} do not match the run's window {window}, "
                        f"{channels} channels and {n_classes} labels")
    return run, info, keras_model


def decision_hop(hop: int | str | None, run_hop: int, rate_hz: float) -> int:
    """The bundle's hop in samples: `hop` as given, else DECISION_HOP_S (at most the run's
    hop: the LSTM is reset for every window, so any hop is valid)."""
    if hop is not None:
        return to_samples(hop, rate_hz, "--hop")
    return min(run_hop, to_samples(f"{DECISION_HOP_S}s", rate_hz, "--hop"))


@dataclass
class _Converted:
    """The model in every format, and what the int8 one needs on a board."""

    models: tflite.TfliteModels
    onnx: bytes
    int8_ops: list[str]
    resolver_methods: list[str]
    arena: report.ArenaEstimate
    arena_bytes: int
    quantization: dict


def _convert(run, kind: str, keras_model, info, train) -> _Converted:
    """TFLite float and full int8 (calibrated on a seeded balanced subset of the training
    windows), ONNX; the int8 model's TFLM ops, arena and input/output quantisation."""
    from gesturekit.train.datasets import balanced_subset

    window, channels = info.window, len(info.channels)
    rebuilt = tflite.rebuild_for_tflite(keras_model, kind, run.model_config, window, channels,
                                        len(info.labels))
    seed = int(run.config.get("seed", 0))
    models = tflite.convert(rebuilt, train.x[balanced_subset(train.y, tflite.CALIBRATION_PER_CLASS,
                                                             seed)])
    int8_ops = flatbuffer.model_ops(models.int8_model)
    int8_graph = flatbuffer.read_graph(models.int8_model)
    arena = report.arena_estimate(int8_graph)
    t_in = int8_graph.tensors[int8_graph.inputs[0]]
    t_out = int8_graph.tensors[int8_graph.outputs[0]]
    return _Converted(
        models, onnx_export.convert_onnx(keras_model, window, channels), int8_ops,
        check_tflm_ops(int8_ops, kind), arena, report.recommended_arena(arena),
        {"input": {"scale": t_in.scale[0], "zero_point": t_in.zero_point[0]},
         "output": {"scale": t_out.scale[0], "zero_point": t_out.zero_point[0]}})


def _write_model_files(work: Path, converted: _Converted, info, run, kind: str, out: Path) -> Bundle:
    """The model files and C sources written into `work`; the bundle that describes them
    (model.json is written once parity is known)."""
    models = converted.models
    (work / FILES["float"]).write_bytes(models.float_model)
    (work / FILES["int8"]).write_bytes(models.int8_model)
    (work / FILES["onnx"]).write_bytes(converted.onnx)
    carray.write_c_sources(work, models.int8_model, carray.SketchConfig(
        info, converted.quantization, converted.int8_ops, converted.resolver_methods,
        converted.arena_bytes))
    ops = {FILES["float"]: flatbuffer.model_ops(models.float_model),
           FILES["int8"]: converted.int8_ops, FILES["onnx"]: onnx_export.onnx_ops(converted.onnx)}
    test_metrics = run.metrics.get("test", {})
    return Bundle(
        **vars(info), root=work, files=dict(FILES), quantization=converted.quantization, ops=ops,
        # The run as seen from the bundle's folder: valid wherever the two move together.
        training={"run": os.path.relpath(run.root.resolve(), out.resolve()), "model": kind,
                  "dataset": run.config["dataset"], "split": run.split,
                  "seed": run.config.get("seed"), "strategy": run.config.get("strategy"),
                  "test_macro_f1": test_metrics.get("macro_f1"),
                  "per_class_f1": {k: v.get("f1") for k, v in
                                   test_metrics.get("per_class", {}).items()}},
        parity={},
    )


def _summary(work: Path, run, bundle: Bundle, keras_model, converted: _Converted, test,
             agreement: dict, float_ok: bool) -> dict:
    """What report.md shows: the model, its files and ops, the arena, the patches, parity."""
    kind = bundle.training["model"]
    return {
        "model": kind, "run": str(run.root), "labels": bundle.labels, "channels": bundle.channels,
        "window": bundle.window, "hop": bundle.hop, "sample_rate_hz": bundle.sample_rate_hz,
        "params": int(keras_model.count_params()), "macs": report.count_macs(keras_model),
        "stateful": bundle.stateful, "run_macro_f1": run.metrics.get("test", {}).get("macro_f1"),
        "files": {name: {"bytes": (work / name).stat().st_size, "ops": bundle.ops.get(name, [])}
                  for name in FILES.values() if name != FILES["report"]},
        "arena": {**asdict(converted.arena), "recommended": converted.arena_bytes},
        "tflm_source": tflm_ops()["source"],
        "lstm_patches": {k: [asdict(p) for p in v] for k, v in converted.models.patches.items() if v},
        "parity": {**agreement, "windows": int(len(test.y)), "float_ok": float_ok},
        "thresholds": {"max_abs_diff": FLOAT_MAX_ABS_DIFF, "argmax_agreement": FLOAT_MIN_AGREEMENT},
        "cost_vs_cnn_lstm": (_head_cost(run, test, agreement, work) if kind == "cnn_head" else None),
    }


def _bundle_probabilities(bundle: Bundle, x) -> dict:
    """Each model file's outputs on normalised windows `x`, as the runner computes them; "int8"
    on TFLite's builtin kernels (what TFLM's reference kernels implement), "int8_xnnpack" as
    `gesturekit run --int8` runs it by default."""
    return {"float": parity.bundle_probabilities(bundle, "ai_edge_litert", "float", x),
            "onnx": parity.bundle_probabilities(bundle, "onnxruntime", "onnx", x),
            "int8": parity.bundle_probabilities(bundle, "ai_edge_litert", "int8", x, xnnpack=False),
            "int8_xnnpack": parity.bundle_probabilities(bundle, "ai_edge_litert", "int8", x)}


def _plot_test_session(run, work: Path) -> dict:
    """Draw the first test session with the new bundle's predictions into the bundle (for the
    report). The plot is decorative: when it cannot be drawn (a dataset inside a zip, moved or
    unreadable data) the dict says why under "skipped" and the export goes on."""
    from gesturekit.train.datasets import load_dataset, session_file
    from gesturekit.train.plots import plot_recording

    try:
        dataset = load_dataset(run.config["dataset"]["path"], **run.config["dataset"]["options"])
        test = set(run.split["test"])
        session = next((s for s in dataset.sessions if s.subject in test), None)
        if session is None:
            return {"skipped": f"{dataset.root}: no session of the test subjects"}
        path = session_file(dataset, session)
        if path is None:
            return {"skipped": f"{dataset.root}: its sessions are inside a zip, not files"}
        data = plot_recording(path, work / "test_session.png", model=work,
                              rate_hz=run.model_info.sample_rate_hz)
    except UserError as e:
        return {"skipped": str(e)}
    return {"session": session.name, "file": "test_session.png", "events": len(data.events)}


def _head_cost(run, test, agreement: dict, work: Path) -> dict:
    """What the CNN-only head costs against the run's CNN-LSTM, on the same test windows."""
    from gesturekit.train.metrics import macro_f1
    from gesturekit.train.runs import load_keras_model

    lstm = parity.keras_probabilities(load_keras_model(run, "cnn_lstm"), test.x)
    lstm_f1 = macro_f1(test.y, lstm.argmax(1), len(run.model_info.labels))
    return {"cnn_lstm_macro_f1": lstm_f1,
            "cnn_head_macro_f1": agreement["keras"]["macro_f1"],
            "cnn_head_int8_macro_f1": agreement["int8"]["macro_f1"],
            "delta": agreement["keras"]["macro_f1"] - lstm_f1,
            "cnn_head_int8_bytes": (work / FILES["int8"]).stat().st_size}


def _mismatch_message(agreement: dict, out: Path) -> str:
    worst = ", ".join(f"{n}: max |dp| {agreement[n]['max_abs_diff']:.2g}, argmax "
                      f"{100 * agreement[n]['argmax_agreement']:.2f}%" for n in ("float", "onnx"))
    return (f"float parity with Keras broke ({worst}; need <= {FLOAT_MAX_ABS_DIFF:g} and >= "
            f"{100 * FLOAT_MIN_AGREEMENT:g}%); nothing written to {out}, pass --allow-mismatch "
            "to keep the files")
