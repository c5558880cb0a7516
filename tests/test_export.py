"""Export of a real quick run: every model file runs and agrees with Keras, the C array
compiles and reproduces the flatbuffer, the bundle runs in tflite-runtime 2.14, bad input
gives one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap

import numpy as np
import pytest

from gesturekit.cli import main
from gesturekit.device.core.bundle import load_bundle
from gesturekit.device.core.postprocess import PostprocessConfig
from gesturekit.errors import UserError
from gesturekit.export import flatbuffer
from gesturekit.export.build import check_tflm_ops, export_run, tflm_ops
from gesturekit.export.parity import bundle_probabilities
from gesturekit.export.tflite import INT8_CELL_STATE_SCALE

INT8_MAX_BYTES = 32 * 1024


@pytest.fixture(scope="module")
def test_windows(quick_run):
    from gesturekit.train.runs import load_run, run_windows

    return run_windows(load_run(quick_run), "test")


def test_bundle_has_every_file_and_passes_parity(quick_bundle):
    bundle = load_bundle(quick_bundle)
    for kind in ("float", "int8", "onnx", "c_header", "c_source", "c_config", "report"):
        assert bundle.path(kind).is_file(), kind
    assert bundle.stateful
    assert bundle.path("int8").stat().st_size <= INT8_MAX_BYTES
    int8_ops = bundle.ops["model_int8.tflite"]
    assert flatbuffer.LSTM_OP in int8_ops and "WHILE" not in int8_ops
    assert set(int8_ops) <= set(tflm_ops()["ops"])
    assert "LSTM" in bundle.ops["model.onnx"]
    for name in ("float", "onnx"):
        assert bundle.parity[name]["max_abs_diff"] <= 1e-4
        assert bundle.parity[name]["argmax_agreement"] >= 0.999
    assert bundle.parity["int8"]["argmax_agreement"] >= 0.97
    assert bundle.quantization["input"]["scale"] > 0
    assert -128 <= bundle.quantization["output"]["zero_point"] <= 127
    report = bundle.path("report").read_text()
    assert "tensor arena estimate" in report and "UNIDIRECTIONAL_SEQUENCE_LSTM" in report


def test_fused_lstm_is_patched_in_place(quick_bundle):
    for name, scale in (("model_float.tflite", None), ("model_int8.tflite", INT8_CELL_STATE_SCALE)):
        buf = bytearray((quick_bundle / name).read_bytes())
        before = bytes(buf)
        patches = flatbuffer.patch_lstm(buf, cell_clip=0.0, cell_state_scale=scale)
        assert len(patches) == 1
        assert patches[0].cell_clip == (0.0, 0.0)  # already patched by export
        assert bytes(buf) == before  # patching again changes nothing
        graph = flatbuffer.read_graph(buf)
        lstm = next(op for op in graph.ops if op.name == flatbuffer.LSTM_OP)
        cell = graph.tensors[lstm.inputs[flatbuffer.LSTM_CELL_STATE_INPUT]]
        if scale is not None:
            assert cell.dtype == "INT16" and cell.scale == [scale]


def test_patch_changes_only_the_patched_bytes(quick_bundle):
    buf = bytearray((quick_bundle / "model_int8.tflite").read_bytes())
    original = bytes(buf)
    patches = flatbuffer.patch_lstm(buf, cell_clip=10.0, cell_state_scale=2.0 ** -11)
    assert patches[0].cell_clip == (0.0, 10.0)
    assert patches[0].cell_state_scale == (INT8_CELL_STATE_SCALE, 2.0 ** -11)
    changed = np.flatnonzero(np.frombuffer(original, np.uint8) != np.frombuffer(bytes(buf), np.uint8))
    assert 1 <= len(changed) <= 8  # two float32 fields, nothing else moved


def test_lstm_state_must_be_reset_between_windows(quick_bundle, test_windows):
    """The fused op carries state across invokes: that is why the bundle is `stateful`."""
    from ai_edge_litert.interpreter import Interpreter

    model = (quick_bundle / "model_float.tflite").read_bytes()
    x = test_windows.x[:2]
    fresh = bundle_probabilities(load_bundle(quick_bundle), "ai_edge_litert", "float", x)
    interpreter = Interpreter(model_content=model)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    for window in x:  # no reset in between
        interpreter.set_tensor(inp["index"], window[None])
        interpreter.invoke()
    carried = interpreter.get_tensor(out["index"])[0]
    assert np.abs(carried - fresh[1]).max() > 1e-3


def test_onnx_has_open_batch_and_runs(quick_bundle, test_windows):
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(quick_bundle / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert 15 <= max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) <= 18
    session = ort.InferenceSession(str(quick_bundle / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    batch = session.run(None, {name: test_windows.x[:5]})[0]
    one = session.run(None, {name: test_windows.x[:1]})[0]
    assert batch.shape[0] == 5
    np.testing.assert_allclose(one[0], batch[0], atol=1e-5)


def test_c_array_compiles_and_reproduces_the_model(quick_bundle, tmp_path):
    """g++ -Wall -Werror builds model_data.cc and model_config.h; the program writes the
    array back out, checks its 16-byte alignment and registers the ops on a resolver."""
    bundle = load_bundle(quick_bundle)
    methods = check_tflm_ops(bundle.ops["model_int8.tflite"], "cnn_lstm")
    fake_methods = "\n".join(f"  int {m}() {{ return added++ ? 0 : 0; }}" for m in methods)
    (tmp_path / "main.cc").write_text(textwrap.dedent("""\
        #include <cstdint>
        #include <cstdio>
        #include "model_config.h"
        #include "model_data.h"

        struct FakeResolver {
          int added = 0;
        %s
        };

        int main(int argc, char** argv) {
          if (argc != 2) return 2;
          if (reinterpret_cast<std::uintptr_t>(g_model_data) %% 16 != 0) return 3;
          FakeResolver resolver;
          if (!gesturekit::AddModelOps(resolver) || resolver.added != gesturekit::kNumOps) return 4;
          std::FILE* f = std::fopen(argv[1], "wb");
          if (!f) return 5;
          std::fwrite(g_model_data, 1, g_model_data_len, f);
          std::fclose(f);
          std::printf("%%d %%d %%d %%s %%d %%d\\n", gesturekit::kNumClasses, gesturekit::kWindow,
                      gesturekit::kHop, gesturekit::kLabels[0], gesturekit::kSmoothing,
                      gesturekit::kMinConsecutive);
          return 0;
        }
        """) % fake_methods)
    for name in ("model_data.h", "model_data.cc", "model_config.h"):
        shutil.copy(quick_bundle / name, tmp_path / name)
    # The export's hop, then another one set in the sketch (-DGK_HOP): the post-processing
    # times become window counts at that hop, as `run --hop` counts them.
    for hop, flags in ((bundle.hop, []), (bundle.hop * 2, [f"-DGK_HOP={bundle.hop * 2}"])):
        subprocess.run(["g++", "-std=c++17", "-Wall", "-Wextra", "-Werror", "-O0", *flags, "-o",
                        "check", "main.cc", "model_data.cc"], cwd=tmp_path, check=True, timeout=300)
        result = subprocess.run([str(tmp_path / "check"), str(tmp_path / "out.tflite")],
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result
        assert (tmp_path / "out.tflite").read_bytes() == bundle.path("int8").read_bytes()
        counts = PostprocessConfig.for_bundle(bundle, hop=hop)
        assert result.stdout.split() == [str(len(bundle.labels)), str(bundle.window), str(hop),
                                         bundle.labels[0], str(counts.smoothing),
                                         str(counts.min_consecutive)]


def test_int8_bundle_gives_the_same_predictions_in_tflite_runtime(
        quick_bundle, test_windows, tflite_runtime_python, tmp_path):
    x = test_windows.x[:200]
    np.save(tmp_path / "x.npy", x)
    # The runner's own Classifier in the tflite-runtime environment (numpy<2, no TensorFlow).
    script = textwrap.dedent("""\
        import sys
        import numpy as np
        from gesturekit.device.core.backends import Classifier
        from gesturekit.device.core.bundle import load_bundle
        classifier = Classifier(load_bundle(sys.argv[1]), "tflite_runtime", "int8")
        np.save(sys.argv[3], np.array([classifier.run_normalized(w) for w in np.load(sys.argv[2])]))
        """)
    (tmp_path / "run.py").write_text(script)
    subprocess.run([str(tflite_runtime_python), str(tmp_path / "run.py"), str(quick_bundle),
                    str(tmp_path / "x.npy"), str(tmp_path / "probs.npy")], check=True, timeout=300)
    runtime = np.load(tmp_path / "probs.npy")
    # tflite-runtime 2.14 has no XNNPACK int8 path here: it matches the builtin kernels exactly.
    litert = bundle_probabilities(load_bundle(quick_bundle), "ai_edge_litert", "int8", x, xnnpack=False)
    np.testing.assert_array_equal(runtime, litert)


def test_cnn_head_export(quick_run, tmp_path):
    result = export_run(quick_run, tmp_path / "cnn", model="cnn")
    bundle = load_bundle(result.out)
    assert not bundle.stateful
    ops = bundle.ops["model_int8.tflite"]
    assert flatbuffer.LSTM_OP not in ops and set(ops) <= set(tflm_ops()["ops"])
    assert bundle.path("int8").stat().st_size < 16 * 1024
    assert bundle.parity["float"]["max_abs_diff"] <= 1e-4
    cost = result.summary["cost_vs_cnn_lstm"]
    assert set(cost) >= {"cnn_lstm_macro_f1", "cnn_head_macro_f1", "delta"}
    assert "Cost of the CNN-only head" in bundle.path("report").read_text()


def test_tflm_op_check_names_unknown_ops():
    assert check_tflm_ops(["CONV_2D", "SOFTMAX"], "cnn_head") == ["AddConv2D", "AddSoftmax"]
    with pytest.raises(UserError, match="CUSTOM:FlexFoo"):
        check_tflm_ops(["CONV_2D", "CUSTOM:FlexFoo"], "cnn_head")
    with pytest.raises(UserError, match="WHILE"):
        check_tflm_ops(["CONV_2D", "WHILE", "UNIDIRECTIONAL_SEQUENCE_LSTM"], "cnn_lstm")
    assert tflm_ops()["source"].startswith("https://github.com/tensorflow/tflite-micro/")


def _export_error(capsys, *argv) -> str:
    code = main(["export", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    return err


def _copy_run(quick_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(quick_run, run)
    return run


def test_bad_input_gives_one_line_errors(quick_run, quick_bundle, tmp_path, capsys):
    no_model = _copy_run(quick_run, tmp_path)
    (no_model / "model.keras").unlink()
    assert "without a model" in _export_error(capsys, no_model, "--out", tmp_path / "b1")

    assert "already exists" in _export_error(capsys, quick_run, "--out", quick_bundle)
    stranger = tmp_path / "not_a_bundle"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    assert "not a model bundle" in _export_error(capsys, quick_run, "--out", stranger, "--force")
    assert (stranger / "notes.txt").is_file()

    newer = tmp_path / "newer"
    shutil.copytree(quick_run, newer)
    config = json.loads((newer / "config.json").read_text())
    config["format_version"] = 99
    (newer / "config.json").write_text(json.dumps(config))
    assert "newer" in _export_error(capsys, newer, "--out", tmp_path / "b2")

    corrupt = tmp_path / "corrupt"
    shutil.copytree(quick_run, corrupt)
    (corrupt / "model.keras").write_bytes(b"PK\x03\x04 not really a zip")
    assert "corrupt" in _export_error(capsys, corrupt, "--out", tmp_path / "b3")
    assert not (tmp_path / "b3").exists()


def test_float_parity_failure_refuses_unless_allowed(quick_run, tmp_path, monkeypatch):
    """With a threshold no model can meet, export fails and writes nothing; with
    allow_mismatch it keeps the files and records the failure in model.json."""
    from gesturekit.export import build

    monkeypatch.setattr(build, "FLOAT_MAX_ABS_DIFF", -1.0)
    with pytest.raises(UserError, match="--allow-mismatch"):
        export_run(quick_run, tmp_path / "refused", model="cnn")
    assert not (tmp_path / "refused").exists()
    assert not list(tmp_path.glob(".refused.partial-*"))
    result = export_run(quick_run, tmp_path / "kept", model="cnn", allow_mismatch=True)
    assert not result.float_ok
    assert load_bundle(result.out).parity["float_ok"] is False


def test_arena_planner_reuses_memory_of_dead_tensors():
    from gesturekit.export.flatbuffer import Graph, Op, Tensor
    from gesturekit.export.report import arena_estimate

    def tensor(n, constant=False, variable=False):
        return Tensor(f"t{n}", [1, n], "INT8", constant, variable, [], [])

    # input(64) -> a(1024) -> b(1024) -> out(16): a and b are both alive at op 1; the input
    # (dead after op 0) fits where b goes later, out (from op 2) where a was.
    tensors = [tensor(64), tensor(1024), tensor(1024), tensor(16), tensor(512, constant=True),
               tensor(32, variable=True)]
    ops = [Op("RESHAPE", [0, 4], [1]), Op("RESHAPE", [1, 5], [2]), Op("SOFTMAX", [2], [3])]
    estimate = arena_estimate(Graph(ops, tensors, inputs=[0], outputs=[3]))
    assert estimate.planned == 1024 + 1024
    assert estimate.variables == 32
    assert estimate.total == estimate.planned + estimate.variables + estimate.persistent


def test_bundle_without_background_label_loads(quick_bundle, tmp_path):
    """HAPT has no background class: export writes `"background_label": null`."""
    bundle = tmp_path / "bundle"
    shutil.copytree(quick_bundle, bundle)
    meta = json.loads((bundle / "model.json").read_text())
    meta["background_label"] = None
    (bundle / "model.json").write_text(json.dumps(meta))
    loaded = load_bundle(bundle)
    assert loaded.background_label is None and loaded.background_index is None


def test_report_embeds_a_plot_of_a_test_session(quick_run, quick_bundle):
    report = (quick_bundle / "report.md").read_text()
    assert "![test session](test_session.png)" in report
    assert (quick_bundle / "test_session.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    session = report.split("## A test session: ", 1)[1].split("\n", 1)[0]  # e.g. s03_session1.csv
    test_subjects = json.loads((quick_run / "config.json").read_text())["split"]["test"]
    assert str(int(session[1:3])) in test_subjects


def test_the_bundle_decides_every_0_16_s_by_default_or_at_the_hop_given():
    from gesturekit.export.build import decision_hop

    assert decision_hop(None, 64, 50.0) == 8  # 0.16 s at 50 Hz, denser than the run's 64
    assert decision_hop(None, 4, 50.0) == 4  # never sparser than the run's own hop
    assert decision_hop(None, 64, 100.0) == 16
    assert decision_hop("0.5s", 64, 50.0) == 25 and decision_hop("40", 16, 50.0) == 40
    with pytest.raises(UserError, match="--hop: expected a number of samples"):
        decision_hop("fast", 64, 50.0)
