"""Keras model -> TFLite float and full-int8, with the LSTM as the fused op.

Keras 3 never lowers `LSTM` to TFLite's fused UNIDIRECTIONAL_SEQUENCE_LSTM (see docs/design.md,
toolchain facts), so the model is rebuilt in `tf_keras` at batch size 1 from the shared model
definition, the weights are copied by layer name, and that copy is converted. The converted
flatbuffer is then patched (`flatbuffer.patch_lstm`): no cell clip, and for int8 a wider
int16 cell-state scale.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from gesturekit.errors import UserError
from gesturekit.export.flatbuffer import LstmPatch, patch_lstm
from gesturekit.train.model import ModelConfig, build_cnn_head, build_cnn_lstm

BUILDERS = {"cnn_lstm": build_cnn_lstm, "cnn_head": build_cnn_head}
# int16 cell state at 2**-10 spans +-32: trained HAPT cell states exceed the converter's
# +-16 (2**-11); measured 99.3% int8/Keras agreement with 2**-10 (docs/design.md).
INT8_CELL_STATE_SCALE = 2.0 ** -10
CALIBRATION_PER_CLASS = 40  # representative windows per class; more changed nothing measurable


def rebuild_for_tflite(model, kind: str, cfg: ModelConfig, window: int, channels: int,
                       n_classes: int):
    """The same network in tf_keras at batch size 1, with `model`'s weights."""
    import tf_keras

    rebuilt = BUILDERS[kind](tf_keras, cfg, window, channels, n_classes, batch_size=1)
    source = {layer.name: layer for layer in model.layers}
    for layer in rebuilt.layers:
        if not layer.weights:
            continue
        if layer.name not in source:
            raise UserError(f"model has no layer '{layer.name}' that the run's model config "
                            f"{cfg.to_dict()} builds; config.json and the .keras file disagree")
        weights = source[layer.name].get_weights()
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [w.shape for w in weights] != expected:
            raise UserError(f"layer '{layer.name}' has weights {[w.shape for w in weights]}, the "
                            f"run's model config builds {expected}; config.json and the .keras "
                            "file disagree")
        layer.set_weights(weights)
    return rebuilt


@dataclass
class TfliteModels:
    float_model: bytes
    int8_model: bytes
    patches: dict[str, list[LstmPatch]]  # "float" | "int8" -> what was patched


def convert(tf_keras_model, calibration: np.ndarray) -> TfliteModels:
    """Float and full-int8 (int8 input/output, builtin int8 ops only) flatbuffers, patched."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(tf_keras_model)
    float_model = bytearray(converter.convert())

    def samples():
        for window in calibration:
            yield [window[None].astype(np.float32)]  # (1, T, C)

    converter = tf.lite.TFLiteConverter.from_keras_model(tf_keras_model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # Input statistics come from the representative windows; the warning does not apply.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        int8_model = bytearray(converter.convert())

    patches = {"float": patch_lstm(float_model, cell_clip=0.0),
               "int8": patch_lstm(int8_model, cell_clip=0.0,
                                  cell_state_scale=INT8_CELL_STATE_SCALE)}
    return TfliteModels(bytes(float_model), bytes(int8_model), patches)
