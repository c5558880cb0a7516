"""The CNN-LSTM and its phase-2 CNN head, defined once for any Keras module.

Training builds them with Keras 3; export rebuilds the same layers with `tf_keras` at batch
size 1, the only route to TFLite's fused LSTM op (see docs/design.md, toolchain facts). Passing the
Keras module in keeps one definition for both. Layers are named, so weights move by name
between the head, the CNN-LSTM and the rebuilds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gesturekit.options import AT_LEAST_ONE, Range, in_range


@dataclass
class ModelConfig:
    conv_filters: list[int] = field(default_factory=lambda: [16, 32, 32],
                                    metadata=in_range(AT_LEAST_ONE))
    kernel_size: int = field(default=5, metadata=in_range(AT_LEAST_ONE))
    # conv blocks followed by pool 2
    pool_after: list[int] = field(default_factory=lambda: [2, 3], metadata=in_range(AT_LEAST_ONE))
    lstm_units: int = field(default=32, metadata=in_range(AT_LEAST_ONE))
    dropout: float = field(default=0.2, metadata=in_range(Range(0, 1, high_open=True)))

    def to_dict(self) -> dict:
        return asdict(self)


FEATURE_PREFIX = "conv"  # layers whose names start with this are the feature extractor


def _features(keras, cfg: ModelConfig, x):
    """Conv1D blocks: (T, C) -> (T / 2**len(pool_after), conv_filters[-1])."""
    for i, filters in enumerate(cfg.conv_filters, start=1):
        x = keras.layers.Conv1D(filters, cfg.kernel_size, padding="same", activation="relu",
                                name=f"conv{i}")(x)  # (t, filters)
        if i in cfg.pool_after:
            x = keras.layers.MaxPooling1D(2, name=f"conv{i}_pool")(x)  # (t / 2, filters)
    return x


def build_cnn_lstm(keras, cfg: ModelConfig, window: int, channels: int, n_classes: int,
                   batch_size: int | None = None):
    """CNN -> LSTM -> dense softmax: the deployed model. Input normalised windows (T, C)."""
    inputs = keras.Input(shape=(window, channels), batch_size=batch_size, name="window")  # (T, C)
    x = _features(keras, cfg, inputs)  # (T', F)
    x = keras.layers.LSTM(cfg.lstm_units, name="lstm")(x)  # (lstm_units,) last step
    x = keras.layers.Dropout(cfg.dropout, name="lstm_dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="classifier")(x)  # (K,)
    return keras.Model(inputs, outputs, name="cnn_lstm")


def build_cnn_head(keras, cfg: ModelConfig, window: int, channels: int, n_classes: int,
                   batch_size: int | None = None):
    """CNN -> global average pool -> dense softmax: phase 2, and the smallest deployable model."""
    inputs = keras.Input(shape=(window, channels), batch_size=batch_size, name="window")  # (T, C)
    x = _features(keras, cfg, inputs)  # (T', F)
    x = keras.layers.GlobalAveragePooling1D(name="head_pool")(x)  # (F,)
    x = keras.layers.Dropout(cfg.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="head_classifier")(x)
    return keras.Model(inputs, outputs, name="cnn_head")


def feature_layers(model) -> list:
    """The feature-extractor layers of either model."""
    return [layer for layer in model.layers if layer.name.startswith(FEATURE_PREFIX)]


def copy_weights_by_name(source, target) -> None:
    """Copy the weights of every layer of `target` that `source` has under the same name."""
    by_name = {layer.name: layer for layer in source.layers}
    for layer in target.layers:
        if layer.name in by_name and layer.weights:
            layer.set_weights(by_name[layer.name].get_weights())
