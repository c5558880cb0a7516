"""Read a TFLite flatbuffer's graph and patch the fused LSTM's parameters in place.

Reading uses the schema bindings that ship with `ai_edge_litert` (the same generated code as
TensorFlow's `tensorflow.lite.python.schema_py_generated`, without importing TensorFlow).

Patching writes scalar fields where the converter put them (`struct.pack_into` at the field's
position) instead of re-serialising the model: the flatbuffer's layout, including the 16-byte
alignment of its weight buffers, stays exactly as the converter wrote it. A field can only be
patched in place when the converter stored it; both fields patched here always are (the
converter writes cell_clip = 10 and every int16 cell state has a scale). `patch_lstm` reads
every patched value back through the schema bindings before it returns.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ai_edge_litert import schema_py_generated as schema

OP_NAMES = {code: name for name, code in vars(schema.BuiltinOperator).items()
            if not name.startswith("_")}
TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items()
              if not name.startswith("_")}
TYPE_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1,
              "INT16": 2, "INT8": 1, "FLOAT64": 8, "UINT32": 4, "UINT16": 2, "INT4": 1}

LSTM_OP = "UNIDIRECTIONAL_SEQUENCE_LSTM"
LSTM_CELL_STATE_INPUT = 19  # the fused LSTM's inputs: ..., 18 output state, 19 cell state, ...

# vtable slots (4 + 2 * field index in schema.fbs) of the two fields patched in place.
CELL_CLIP_SLOT = 6  # UnidirectionalSequenceLSTMOptions.cell_clip (field 1)
SCALE_SLOT = 8  # QuantizationParameters.scale (field 2)


@dataclass
class Tensor:
    name: str
    shape: list[int]
    dtype: str  # TensorType name, e.g. "INT8"
    constant: bool  # has data in the flatbuffer (weights, biases)
    variable: bool  # state kept between invokes (the LSTM's output and cell state)
    scale: list[float]
    zero_point: list[int]

    @property
    def nbytes(self) -> int:
        n = 1
        for d in self.shape:
            n *= max(d, 1)
        return n * TYPE_BYTES[self.dtype]


@dataclass
class Op:
    name: str  # builtin op name, or "CUSTOM:<code>"
    inputs: list[int]  # tensor indices, -1 for an omitted optional input
    outputs: list[int]


@dataclass
class Graph:
    """The main subgraph: ops in execution order, tensors, graph inputs and outputs."""

    ops: list[Op]
    tensors: list[Tensor]
    inputs: list[int]
    outputs: list[int]


def _model(buf: bytes | bytearray) -> schema.Model:
    if len(buf) < 8 or bytes(buf[4:8]) != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
    return schema.Model.GetRootAs(buf, 0)


def _op_name(code: schema.OperatorCode) -> str:
    # Codes above 127 live only in builtin_code; the deprecated byte holds 127 for them.
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    if builtin == schema.BuiltinOperator.CUSTOM:
        return f"CUSTOM:{code.CustomCode().decode()}"
    return OP_NAMES.get(builtin, f"BUILTIN_{builtin}")


def read_graph(buf: bytes | bytearray) -> Graph:
    """The ops and tensors of the model's main subgraph."""
    model = _model(buf)
    codes = [_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    sub = model.Subgraphs(0)
    tensors = []
    for i in range(sub.TensorsLength()):
        t = sub.Tensors(i)
        q = t.Quantization()
        data = model.Buffers(t.Buffer()) if t.Buffer() < model.BuffersLength() else None
        tensors.append(Tensor(
            name=t.Name().decode(),
            shape=[int(d) for d in t.ShapeAsNumpy()] if t.ShapeLength() else [],
            dtype=TYPE_NAMES[t.Type()],
            constant=bool(data is not None and (data.DataLength() or data.Size())),
            variable=bool(t.IsVariable()),
            scale=[float(v) for v in q.ScaleAsNumpy()] if q and q.ScaleLength() else [],
            zero_point=[int(v) for v in q.ZeroPointAsNumpy()] if q and q.ZeroPointLength() else [],
        ))
    ops = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        ops.append(Op(codes[op.OpcodeIndex()],
                      [int(v) for v in op.InputsAsNumpy()] if op.InputsLength() else [],
                      [int(v) for v in op.OutputsAsNumpy()] if op.OutputsLength() else []))
    return Graph(ops, tensors, [int(v) for v in sub.InputsAsNumpy()],
                 [int(v) for v in sub.OutputsAsNumpy()])


def model_ops(buf: bytes | bytearray) -> list[str]:
    """Names of the ops used anywhere in the model, sorted."""
    model = _model(buf)
    codes = [_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    used = set()
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        used |= {codes[sub.Operators(i).OpcodeIndex()] for i in range(sub.OperatorsLength())}
    return sorted(used)


@dataclass
class LstmPatch:
    op_index: int
    cell_clip: tuple[float, float]  # (before, after)
    cell_state_scale: tuple[float, float] | None  # (before, after); None for float models


def _lstm_options(op: schema.Operator) -> schema.UnidirectionalSequenceLSTMOptions:
    table = op.BuiltinOptions()
    options = schema.UnidirectionalSequenceLSTMOptions()
    options.Init(table.Bytes, table.Pos)
    return options


def _field_position(obj, slot: int) -> int | None:
    """Absolute byte position of a scalar field of a generated table object, None if absent."""
    offset = obj._tab.Offset(slot)
    return obj._tab.Pos + offset if offset else None


def patch_lstm(buf: bytearray, cell_clip: float = 0.0,
               cell_state_scale: float | None = None) -> list[LstmPatch]:
    """Set every fused LSTM's cell clip (0 = none) and, for int16 cell states, their scale.

    Why: the converter writes cell_clip = 10 into the fused op while Keras never clips, and
    trained cell states exceed 10, so the TFLite model disagrees with Keras; the int8 kernel's
    int16 cell state at scale 2**-11 only spans +-16 (docs/design.md, toolchain facts).
    """
    model = _model(buf)
    codes = [_op_name(model.OperatorCodes(i)) for i in range(model.OperatorCodesLength())]
    sub = model.Subgraphs(0)  # the fused route gives one subgraph (no WHILE bodies)
    patches = []
    for i in range(sub.OperatorsLength()):
        op = sub.Operators(i)
        if codes[op.OpcodeIndex()] != LSTM_OP:
            continue
        options = _lstm_options(op)
        clip_before = options.CellClip()
        position = _field_position(options, CELL_CLIP_SLOT)
        if position is None and cell_clip != 0.0:
            raise ValueError(f"LSTM op {i} stores no cell_clip field to patch in place")
        if position is not None:
            struct.pack_into("<f", buf, position, cell_clip)
        scale_change = None
        cell = sub.Tensors(op.Inputs(LSTM_CELL_STATE_INPUT))
        if cell_state_scale is not None and TYPE_NAMES[cell.Type()] == "INT16":
            q = cell.Quantization()
            if q is None or q.ScaleLength() != 1 or q.ZeroPoint(0) != 0:
                raise ValueError(f"LSTM op {i}: cell state has no single symmetric scale")
            before = q.Scale(0)
            struct.pack_into("<f", buf, q._tab.Vector(q._tab.Offset(SCALE_SLOT)),
                             cell_state_scale)
            scale_change = (before, cell_state_scale)
        patches.append(LstmPatch(i, (clip_before, cell_clip), scale_change))
    _verify(buf, patches, cell_clip)
    return patches


def _verify(buf: bytearray, patches: list[LstmPatch], cell_clip: float) -> None:
    """Read the patched values back through the schema bindings."""
    sub = _model(buf).Subgraphs(0)
    for patch in patches:
        op = sub.Operators(patch.op_index)
        got_clip = _lstm_options(op).CellClip()
        if got_clip != struct.unpack("<f", struct.pack("<f", cell_clip))[0]:
            raise AssertionError(f"LSTM op {patch.op_index}: cell_clip reads {got_clip} after patch")
        if patch.cell_state_scale is not None:
            got = sub.Tensors(op.Inputs(LSTM_CELL_STATE_INPUT)).Quantization().Scale(0)
            if got != patch.cell_state_scale[1]:
                raise AssertionError(f"LSTM op {patch.op_index}: cell scale reads {got} after patch")
