"""Keras 3 model -> ONNX through tf2onnx, checked with `onnx.checker`.

tf2onnx converts the Keras 3 model directly (docs/design.md, toolchain facts); the batch dimension
stays open, and the LSTM becomes one ONNX `LSTM` node.
"""

from __future__ import annotations

ONNX_OPSET = 17  # tf2onnx and onnxruntime here handle 15 to 18
INPUT_NAME = "window"


def convert_onnx(model, window: int, channels: int, opset: int = ONNX_OPSET) -> bytes:
    """Serialised ONNX model with input `window` (batch, window, channels) float32."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    signature = [tf.TensorSpec([None, window, channels], tf.float32, name=INPUT_NAME)]
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=opset)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


def onnx_ops(model_bytes: bytes) -> list[str]:
    """Node types of the ONNX graph, sorted."""
    import onnx

    return sorted({node.op_type for node in onnx.load_from_string(model_bytes).graph.node})
