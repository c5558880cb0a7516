"""What the exported model costs: parameters, MACs, TFLM arena, file sizes; the report text."""

from __future__ import annotations

from dataclasses import dataclass

from gesturekit.export.flatbuffer import LSTM_OP, Graph

ALIGN = 16  # TFLM aligns every arena allocation to 16 bytes
# Persistent allocations TFLM makes outside the planned buffers, rounded up from its 32-bit
# structs: a TfLiteEvalTensor (and quantisation pointers) per tensor, a node with its op data
# per op, and per-channel multipliers and shifts (8 bytes) for each conv / fully-connected
# output channel. An allowance, not a measurement; see `arena_estimate`.
PER_TENSOR_BYTES = 32
PER_OP_BYTES = 128
PER_CHANNEL_BYTES = 8
LSTM_OP_DATA_BYTES = 1024  # the integer LSTM kernel's gate parameters and effective scales


def count_macs(model) -> int:
    """Multiply-accumulates per window of the Conv1D, LSTM and Dense layers of a Keras model."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv1D":
            steps, filters = layer.output.shape[1:]
            macs += steps * layer.kernel_size[0] * layer.input.shape[-1] * filters
        elif kind == "LSTM":
            steps, features = layer.input.shape[1:]
            macs += steps * 4 * layer.units * (features + layer.units)
        elif kind == "Dense":
            macs += layer.input.shape[-1] * layer.units
    return int(macs)


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _scratch_bytes(graph: Graph, op_index: int) -> int:
    """Scratch a TFLM (CMSIS-NN) kernel requests for one op, from its input shapes."""
    op = graph.ops[op_index]
    if op.name == "CONV_2D":
        # arm_convolve_s8 im2col: 2 columns of kernel_h * kernel_w * in_channels int16 values.
        _, kh, kw, cin = graph.tensors[op.inputs[1]].shape
        return 2 * kh * kw * cin * 2
    if op.name == LSTM_OP:
        # Four gate buffers of batch * units values of the cell-state type.
        cell = graph.tensors[op.inputs[19]]
        return 4 * cell.nbytes
    return 0


@dataclass
class ArenaEstimate:
    planned: int  # activations and scratch, placed by lifetime like TFLM's greedy planner
    variables: int  # LSTM state tensors, alive for the whole run
    persistent: int  # allowance for TFLM's per-tensor / per-op structs
    total: int


def arena_estimate(graph: Graph) -> ArenaEstimate:
    """Estimate the TFLM tensor arena for a model (bytes).

    Non-constant tensors live from the op that writes them (graph inputs: from the start) to
    the last op that reads them (graph outputs: to the end); each op's kernel scratch lives
    during that op. Buffers are placed largest first at the lowest offset that does not
    overlap a placed buffer alive at the same time, as TFLM's GreedyMemoryPlanner does.
    Variables and an allowance for persistent structs are added on top.
    """
    end = len(graph.ops)
    first, last = {}, {}
    for t in graph.inputs:
        first[t] = 0
    for i, op in enumerate(graph.ops):
        for t in op.outputs:
            first.setdefault(t, i)
        for t in op.inputs:
            if t >= 0:
                last[t] = i
    for t in graph.outputs:
        last[t] = end
    buffers = []  # (size, first op, last op)
    variables = 0
    for t, tensor in enumerate(graph.tensors):
        if tensor.variable:
            variables += _aligned(tensor.nbytes)
        elif not tensor.constant and t in first:
            buffers.append((_aligned(tensor.nbytes), first[t], last.get(t, first[t])))
    buffers += [(_aligned(s), i, i) for i in range(end) if (s := _scratch_bytes(graph, i))]

    placed: list[tuple[int, int, int, int]] = []  # (offset, size, first, last)
    for size, start, stop in sorted(buffers, key=lambda b: -b[0]):
        offset = 0
        for o, s, _, _ in sorted(p for p in placed if p[2] <= stop and start <= p[3]):
            if offset + size <= o:
                break
            offset = max(offset, o + s)
        placed.append((offset, size, start, stop))
    planned = max((o + s for o, s, _, _ in placed), default=0)

    channels = sum(graph.tensors[op.outputs[0]].shape[-1] for op in graph.ops
                   if op.name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"))
    persistent = (PER_TENSOR_BYTES * len(graph.tensors) + PER_OP_BYTES * len(graph.ops)
                  + PER_CHANNEL_BYTES * channels
                  + LSTM_OP_DATA_BYTES * sum(op.name == LSTM_OP for op in graph.ops))
    return ArenaEstimate(planned, variables, persistent, planned + variables + persistent)


def recommended_arena(estimate: ArenaEstimate) -> int:
    """Estimate plus 25% headroom, rounded up to 1 KiB: the size written into model_config.h."""
    return -(-int(estimate.total * 1.25) // 1024) * 1024


def _kb(n: int) -> str:
    return f"{n / 1024:.1f} KB"


def _patch_text(patches: dict) -> str:
    parts = []
    for kind, items in patches.items():
        for p in items:
            text = f"{kind}: cell_clip {p['cell_clip'][0]:g} -> {p['cell_clip'][1]:g}"
            if p["cell_state_scale"]:
                before, after = p["cell_state_scale"]
                text += f", int16 cell-state scale {before:.3g} -> {after:.3g}"
            parts.append(text)
    return "; ".join(parts) or "none (no LSTM)"


def render_report(summary: dict) -> str:
    """report.md text from the export summary (`build.export_run` assembles it)."""
    s = summary
    lines = [
        f"# Model bundle: {s['model']} from {s['run']}",
        "",
        f"- labels ({len(s['labels'])}): {', '.join(s['labels'])}",
        f"- input: {s['window']} samples x {len(s['channels'])} channels "
        f"({', '.join(s['channels'])}) at {s['sample_rate_hz']:g} Hz, hop {s['hop']}",
        f"- parameters: {s['params']:,}; multiply-accumulates per window: {s['macs']:,}",
        f"- stateful: {s['stateful']} (reset variables before every window)",
        f"- run test macro-F1 (Keras, from metrics.json): {s['run_macro_f1']}",
        "",
        "## Files",
        "",
        "| file | bytes | size | ops |",
        "|---|---:|---:|---|",
    ]
    for name, info in s["files"].items():
        lines.append(f"| {name} | {info['bytes']:,} | {_kb(info['bytes'])} | "
                     f"{', '.join(info.get('ops', [])) or '-'} |")
    a = s["arena"]
    lines += [
        "",
        "## TensorFlow Lite Micro",
        "",
        f"- ops of the int8 model, all in the TFLM builtin list ({s['tflm_source']}): "
        f"{', '.join(s['files']['model_int8.tflite']['ops'])}",
        f"- tensor arena estimate: {a['total']:,} bytes = {a['planned']:,} activations and "
        f"kernel scratch (greedy placement by lifetime, like TFLM's GreedyMemoryPlanner) + "
        f"{a['variables']:,} LSTM state + {a['persistent']:,} allowance for TFLM's per-tensor "
        f"and per-op structs; model_config.h asks for {a['recommended']:,} (+25%, whole KiB). "
        "Check on the board with `interpreter.arena_used_bytes()`.",
        f"- fused LSTM patches: {_patch_text(s['lstm_patches'])}",
        "",
        f"## Parity on the run's test split ({s['parity']['windows']} windows)",
        "",
        "| model vs Keras | max abs diff p | argmax agreement | macro-F1 | delta macro-F1 |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("keras", "float", "onnx", "int8", "int8_xnnpack"):
        p = s["parity"][name]
        lines.append(f"| {name} | {p['max_abs_diff']:.2e} | {100 * p['argmax_agreement']:.2f}% | "
                     f"{p['macro_f1']:.4f} | {100 * p['macro_f1_delta']:+.2f} pt |")
    lines += ["", "int8 runs TFLite's builtin kernels (bit-identical in ai_edge_litert and "
              "tflite-runtime 2.14); int8_xnnpack is the same model under the default XNNPACK "
              "delegate, which rounds differently.",
              "", f"Float parity thresholds: max abs diff <= {s['thresholds']['max_abs_diff']}, "
              f"argmax agreement >= {100 * s['thresholds']['argmax_agreement']:g}%: "
              f"{'passed' if s['parity']['float_ok'] else 'FAILED'}."]
    if s.get("cost_vs_cnn_lstm"):
        c = s["cost_vs_cnn_lstm"]
        lines += ["", "## Cost of the CNN-only head", "",
                  f"Test macro-F1 {c['cnn_head_macro_f1']:.4f} (int8 {c['cnn_head_int8_macro_f1']:.4f})"
                  f" against the run's CNN-LSTM {c['cnn_lstm_macro_f1']:.4f}: "
                  f"{100 * c['delta']:+.2f} points, int8 model {_kb(c['cnn_head_int8_bytes'])}."]
    lines += session_plot_lines(s.get("session_plot"))
    return "\n".join(lines) + "\n"


def session_plot_lines(p: dict | None) -> list[str]:
    """The report's test-session section: the plot, or why there is none."""
    if not p:
        return []
    if p.get("skipped"):
        return ["", "## A test session", "", f"No plot of a test session: {p['skipped']}."]
    return ["", f"## A test session: {p['session']}", "",
            f"Labels as bands, the float model's top class per window and the {p['events']} "
            "events the bundle's post-processing announces (`gesturekit plot` draws the same "
            "for any recording):", "", f"![test session]({p['file']})"]
