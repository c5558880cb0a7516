"""Inference backends: a bundle's model behind one call, window (T, C) in raw units -> probs (K,).

`ai_edge_litert` and `tflite_runtime` run the TFLite files (float or full-int8),
`onnxruntime` runs `model.onnx`, and `tflite_micro` (TensorFlow Lite Micro's host build) runs
the int8 model with the kernels a board's TFLM runs, so its outputs are the board's bytes.
Each is imported only when chosen, so a board needs just one. The classifier does what every
caller would otherwise repeat: normalise with the bundle's training statistics, quantise for
int8 inputs, reset the LSTM state for stateful models, invoke, dequantise.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import numpy as np

from gesturekit.device.core.bundle import Bundle
from gesturekit.errors import UserError
from gesturekit.native_log import native_logs_dropped

BACKENDS = ("ai_edge_litert", "tflite_runtime", "onnxruntime", "tflite_micro")
_MODULES = {"ai_edge_litert": "ai_edge_litert.interpreter",
            "tflite_runtime": "tflite_runtime.interpreter",
            "onnxruntime": "onnxruntime",
            "tflite_micro": "tflite_micro.python.tflite_micro.runtime"}
TFLM_ARENA_BYTES = 1 << 20  # the host build's structs are 64-bit: give it room, not the board's size


def available_backends() -> list[str]:
    """Backends that import here, in the automatic order."""
    found = []
    for name in BACKENDS:
        try:
            importlib.import_module(_MODULES[name])
        except ImportError:
            continue
        found.append(name)
    return found


def choose_backend(bundle: Bundle, backend: str | None, int8: bool) -> tuple[str, str]:
    """(backend, model kind) for the flags; the first importable backend the bundle fits."""
    kinds = {"ai_edge_litert": "int8" if int8 else "float",
             "tflite_runtime": "int8" if int8 else "float", "onnxruntime": "onnx",
             "tflite_micro": "int8"}  # TFLM runs what boards run: always the int8 model
    if backend is not None:
        if backend not in BACKENDS:
            raise UserError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
        if backend == "onnxruntime" and int8:
            raise UserError("--backend onnxruntime runs the float ONNX model; drop --int8")
        bundle.path(kinds[backend])  # a clear error when the bundle lacks that file
        return backend, kinds[backend]
    found = available_backends()
    for name in found:
        if kinds[name] in bundle.files:
            return name, kinds[name]
    raise UserError(f"no interpreter for {bundle.root}: installed: {', '.join(found) or 'none'}; "
                    f"bundle files: {', '.join(sorted(bundle.files))}; install one with "
                    "`pip install ai-edge-litert` (or tflite-runtime, onnxruntime)")


MAX_MODEL_BYTES = 256 << 20  # a gesture model is KBs to a few MB; this is not one
TFLITE_IDENTIFIER = b"TFL3"  # flatbuffer file identifier, bytes 4..8 of every .tflite


def check_model_file(path: Path, kind: str) -> None:
    """Checks that need no interpreter: the file is there, of a sane size and, for TFLite,
    a TFLite flatbuffer. Interpreters then verify the rest (both refuse a truncated file)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
    except OSError as e:
        raise UserError(f"{path}: cannot read the model file ({e.strerror})") from None
    if size > MAX_MODEL_BYTES:
        raise UserError(f"{path}: {size} bytes, more than {MAX_MODEL_BYTES}; not a gesture model")
    if kind != "onnx" and head[4:8] != TFLITE_IDENTIFIER:
        raise UserError(f"{path}: not a TFLite model (no {TFLITE_IDENTIFIER.decode()} identifier "
                        "at byte 4); re-export the bundle with `gesturekit export`")


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: type = np.int8) -> np.ndarray:
    """Normalised values -> an int8 model's input: round(x / scale) + zero_point, clamped.

    The one quantiser of every deployed path (this runner, export parity, and the board's
    gk_preprocess.h, tested to agree at ties). np.round rounds half to even, as rintf does."""
    info = np.iinfo(dtype)
    q = np.round(x / scale) + zero_point
    return np.clip(q, info.min, info.max).astype(dtype)


class Classifier:
    """One model on one backend. Call it with a raw window (T, C); returns probabilities (K,).

    `xnnpack=False` runs TFLite models on the builtin kernels alone: for int8 they are what
    TFLM's reference kernels implement, bit-identical in ai_edge_litert and tflite-runtime,
    while the XNNPACK delegate (the default, faster) rounds differently."""

    def __init__(self, bundle: Bundle, backend: str, kind: str, threads: int = 1,
                 xnnpack: bool = True):
        self.bundle, self.backend, self.kind = bundle, backend, kind
        self.xnnpack = xnnpack
        self.path = bundle.path(kind)
        check_model_file(self.path, kind)
        self.invoke_seconds = 0.0  # time inside the interpreter alone, summed
        self.invokes = 0
        # Creating a TFLite interpreter logs "Created TensorFlow Lite XNNPACK delegate" from C++
        # (no setting turns it off but dropping the delegate, which changes the numbers).
        with native_logs_dropped():
            self._load(backend, threads)

    def _load(self, backend: str, threads: int) -> None:
        """Import the backend, load the model and invoke it once."""
        bundle = self.bundle
        try:
            module = importlib.import_module(_MODULES[backend])
        except ImportError as e:
            raise UserError(f"--backend {backend}: not installed ({e}); "
                            f"pip install {backend.replace('_', '-')}") from None
        if backend == "onnxruntime":
            self._init_onnx(module, threads)
        elif backend == "tflite_micro":
            self._init_tflm(module)
        else:
            self._init_tflite(module, threads)
        # The first invoke prepares kernels (XNNPACK packs weights): do it now, not on the
        # first live window; it also shows the output size.
        errors = _onnx_errors() if backend == "onnxruntime" else ()
        try:
            probs = self._run(self.quantize(np.zeros((1, bundle.window, len(bundle.channels)),
                                                     np.float32)))
        except (RuntimeError, ValueError, *errors) as e:
            raise UserError(f"{self.path}: {backend} cannot run this model ({e})") from None
        if probs.shape != (len(bundle.labels),):
            raise UserError(f"{self.path}: the model gives {probs.size} outputs but model.json "
                            f"has {len(bundle.labels)} labels ({', '.join(bundle.labels)})")

    def _init_tflite(self, module, threads: int) -> None:
        try:
            resolver = {} if self.xnnpack else {"experimental_op_resolver_type":
                                                module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES}
            self._interp = module.Interpreter(model_path=str(self.path), num_threads=threads,
                                              **resolver)
            self._interp.allocate_tensors()
            inp = self._interp.get_input_details()[0]
            out = self._interp.get_output_details()[0]
        except (ValueError, RuntimeError, IndexError) as e:  # a corrupt name is a ValueError
            raise UserError(f"{self.path}: {self.backend} cannot load this model ({e})") from None
        expected = (1, self.bundle.window, len(self.bundle.channels))
        if tuple(inp["shape"]) != expected:
            raise UserError(f"{self.path}: input shape {tuple(inp['shape'])} does not match "
                            f"model.json window/channels {expected}")
        self._in_index, self._out_index = inp["index"], out["index"]
        self._in_dtype = inp["dtype"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]
        self._out_quantized = out["dtype"] != np.float32
        self._run = self._run_tflite

    def _init_tflm(self, runtime) -> None:
        try:
            self._interp = runtime.Interpreter.from_file(str(self.path), arena_size=TFLM_ARENA_BYTES)
            inp = self._interp.get_input_details(0)
            out = self._interp.get_output_details(0)
        except (ValueError, RuntimeError) as e:
            raise UserError(f"{self.path}: tflite_micro cannot load this model ({e})") from None
        expected = (1, self.bundle.window, len(self.bundle.channels))
        if tuple(inp["shape"]) != expected:
            raise UserError(f"{self.path}: input shape {tuple(inp['shape'])} does not match "
                            f"model.json window/channels {expected}")
        self._in_dtype = inp["dtype"]
        self._in_scale = float(inp["quantization_parameters"]["scales"][0])
        self._in_zero = int(inp["quantization_parameters"]["zero_points"][0])
        self._out_scale = float(out["quantization_parameters"]["scales"][0])
        self._out_zero = int(out["quantization_parameters"]["zero_points"][0])
        self._run = self._run_tflm

    def _init_onnx(self, ort, threads: int) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            # No fallback: its retry prints an "EP Error" banner on stdout for a corrupt file.
            self._session = ort.InferenceSession(str(self.path), options,
                                                 providers=["CPUExecutionProvider"],
                                                 enable_fallback=0)
        except (RuntimeError, ValueError, *_onnx_errors()) as e:
            raise UserError(f"{self.path}: onnxruntime cannot load this model ({e})") from None
        inp = self._session.get_inputs()[0]
        expected = [None, self.bundle.window, len(self.bundle.channels)]  # batch: any
        shape = [d if isinstance(d, int) else None for d in inp.shape]
        if len(shape) != 3 or shape[1:] != expected[1:] or shape[0] not in (None, 1):
            raise UserError(f"{self.path}: input shape {inp.shape} does not match model.json "
                            f"window/channels {tuple(expected)}")
        self._onnx_input = inp.name
        self._in_dtype = np.float32
        self._run = self._run_onnx

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Normalised window -> the model's input type."""
        if self._in_dtype == np.float32:
            return x
        return quantize(x, self._in_scale, self._in_zero, self._in_dtype)

    def __call__(self, window: np.ndarray) -> np.ndarray:
        return self.run_normalized(self.bundle.normalization.apply(window))

    def run_normalized(self, window: np.ndarray) -> np.ndarray:
        """Probabilities (K,) of a window (T, C) already normalised with the bundle's statistics
        (export parity has its test windows that way)."""
        x = self.quantize(window)[np.newaxis]  # (1, T, C)
        start = time.perf_counter()
        probs = self._run(x)
        self.invoke_seconds += time.perf_counter() - start
        self.invokes += 1
        return probs

    def _run_tflite(self, x: np.ndarray) -> np.ndarray:
        interp = self._interp
        if self.bundle.stateful:
            interp.reset_all_variables()  # the fused LSTM keeps its state between invokes
        interp.set_tensor(self._in_index, x)
        interp.invoke()
        y = interp.get_tensor(self._out_index)[0]
        if self._out_quantized:
            return ((y.astype(np.float32) - self._out_zero) * self._out_scale).astype(np.float32)
        return y.astype(np.float32, copy=True)

    def _run_tflm(self, x: np.ndarray) -> np.ndarray:
        interp = self._interp
        if self.bundle.stateful:
            interp.reset()  # as the board's MicroInterpreter::Reset() before every window
        interp.set_input(x, 0)
        interp.invoke()
        y = interp.get_output(0)[0]
        return ((y.astype(np.float32) - self._out_zero) * self._out_scale).astype(np.float32)

    def _run_onnx(self, x: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._onnx_input: x})[0][0].astype(np.float32)


def _onnx_errors() -> tuple[type[Exception], ...]:
    """onnxruntime's load errors (InvalidProtobuf, Fail, ...) derive from Exception itself,
    not from RuntimeError: name them, so a corrupt model.onnx is a UserError."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    names = ("Fail", "InvalidArgument", "NoSuchFile", "NoModel", "InvalidProtobuf",
             "InvalidGraph", "RuntimeException", "NotImplemented", "EngineError")
    return tuple(getattr(state, n) for n in names if hasattr(state, n))
