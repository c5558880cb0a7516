"""Run every exported model on the same windows and compare it with Keras.

TFLite models run one window per invoke at batch size 1 with the variables reset first: the
fused LSTM keeps its state between invokes, and the deployed model sees each window fresh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from gesturekit.train.metrics import macro_f1


def keras_probabilities(model, x: np.ndarray) -> np.ndarray:
    """(W, K) softmax outputs of a Keras model."""
    return np.asarray(model.predict(x, batch_size=256, verbose=0), dtype=np.float32)


def tflite_probabilities(model_bytes: bytes, x: np.ndarray, xnnpack: bool = True) -> np.ndarray:
    """(W, K) outputs of a TFLite model (int8 input/output quantised and dequantised here).

    `xnnpack=False` runs TFLite's builtin kernels only: for int8 they give bit-identical
    outputs in ai_edge_litert and tflite-runtime 2.14 (and are what TFLM's reference kernels
    implement), while the default XNNPACK delegate rounds differently (measured up to 9
    int8 steps on HAPT).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(model_content=model_bytes, experimental_op_resolver_type=resolver)
    interpreter.allocate_tensors()
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    in_scale, in_zero = inp["quantization"]
    out_scale, out_zero = out["quantization"]
    probs = np.empty((len(x), out["shape"][-1]), dtype=np.float32)
    for i, window in enumerate(x):
        interpreter.reset_all_variables()
        if inp["dtype"] == np.int8:
            window = np.clip(np.round(window / in_scale + in_zero), -128, 127)
        interpreter.set_tensor(inp["index"], window[None].astype(inp["dtype"]))  # (1, T, C)
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])[0]
        probs[i] = (y.astype(np.float32) - out_zero) * out_scale if out["dtype"] == np.int8 else y
    return probs


def onnx_probabilities(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    """(W, K) outputs of an ONNX model in onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: x[i:i + 256].astype(np.float32)})[0]
                           for i in range(0, len(x), 256)])


@dataclass
class Agreement:
    max_abs_diff: float  # largest |p_model - p_keras| over all windows and classes
    argmax_agreement: float  # fraction of windows with the same top class as Keras
    macro_f1: float  # against the true labels
    macro_f1_delta: float  # macro_f1 - Keras macro_f1 (negative = loss)

    def to_dict(self) -> dict:
        return {k: round(v, 8) for k, v in asdict(self).items()}


def compare(reference: np.ndarray, other: np.ndarray, y: np.ndarray, n_classes: int) -> Agreement:
    """How closely `other` follows the Keras `reference` probabilities on labelled windows."""
    ref_f1 = macro_f1(y, reference.argmax(1), n_classes)
    f1 = macro_f1(y, other.argmax(1), n_classes)
    return Agreement(float(np.abs(other - reference).max()) if len(y) else 0.0,
                     float((other.argmax(1) == reference.argmax(1)).mean()) if len(y) else 1.0,
                     f1, f1 - ref_f1)
