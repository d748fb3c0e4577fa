"""The seed CNN of the source article, the same for audio and images; only the input shape differs.

Conv2D(32, 3×3)+ReLU → MaxPool(2×2) → Conv2D(32, 3×3)+ReLU → MaxPool(2×2) → Flatten →
Dense(64)+ReLU → Dropout(0.5) → Dense(n)+softmax, with input normalisation inside the model so a
bundle takes raw features (dB spectrograms or 0–255 pixels).

Example:
    >>> import numpy as np
    >>> from app.model import as_model_input
    >>> as_model_input(np.zeros((8, 97, 40), np.float32)).shape  # spectrograms gain a channel axis
    (8, 97, 40, 1)
    >>> as_model_input(np.zeros((8, 28, 28, 1), np.uint8)).shape  # images pass through
    (8, 28, 28, 1)
"""

from __future__ import annotations

import numpy as np

# The smallest height and width the two valid 3×3 convolutions and 2×2 poolings leave a position of.
MIN_INPUT_SIZE = 10
# The networks `train --network` builds: the article's CNN, which every shipped bundle is, and a larger one whose
# only job is to teach it (`train --distill-from`, app.training.distill).
NETWORKS = ("article", "teacher")
TEACHER_WIDTHS = (32, 64, 128)  # channels of the teacher's three blocks


def build_model(input_shape: tuple[int, ...], n_classes: int, mean: np.ndarray, variance: np.ndarray):
    """A compiled-free Keras model.

    Args:
        input_shape: (height, width, channels); a spectrogram is (time, n_mels, 1).
        n_classes: softmax outputs.
        mean, variance: per-channel statistics of the training inputs, shape (channels,).

    Returns:
        keras.Model mapping (batch, *input_shape) float32 to (batch, n_classes) probabilities.
    """
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape, name="features"),
            layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalise"),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Flatten(),
            layers.Dense(64, activation="relu"),
            layers.Dropout(0.5),
            layers.Dense(n_classes, activation="softmax", name="probabilities"),
        ],
        name="onepipe_cnn",
    )


def build_network(network: str, input_shape: tuple[int, ...], n_classes: int, mean: np.ndarray, variance: np.ndarray):
    """The model of NETWORKS named `network` (build_model or build_teacher_model), with the same arguments."""
    if network not in NETWORKS:
        raise ValueError(f"no network named {network!r}; choose one of {', '.join(NETWORKS)}")
    builder = build_teacher_model if network == "teacher" else build_model
    return builder(input_shape, n_classes, mean, variance)


def build_teacher_model(input_shape: tuple[int, ...], n_classes: int, mean: np.ndarray, variance: np.ndarray):
    """A larger CNN that teaches the article's (app.training.distill): three blocks of two 3×3 'same'
    convolutions (TEACHER_WIDTHS channels, batch normalisation, ReLU) each followed by 2×2 max pooling, global
    average pooling and a softmax; about 290,000 weights and six times the article CNN's work per 32 × 32 image.
    Same arguments and output as build_model; the height and width must be at least 8."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="features")
    x = layers.Normalization(axis=-1, mean=mean, variance=variance, name="normalise")(inputs)
    for width in TEACHER_WIDTHS:
        for _ in range(2):
            x = layers.Conv2D(width, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(n_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="onepipe_teacher")


def with_features_output(model):
    """The same model with a second output, (batch, 64): the mean and the standard deviation over positions of
    each of the first convolution's 32 channels, which app.familiarity's feature statistic reads. They describe
    what the input is made of (strokes, textures, spectral texture) rather than which class it is, and so tell
    inputs unlike the training data from it where the top probability does not (benchmarks/familiarity.py). Its
    LiteRT conversion names them "output_1" (probabilities "output_0") in its serving signature; see
    app.litert_outputs."""
    import keras

    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)).output  # (b, h, w, 32)
    statistics = keras.ops.concatenate([keras.ops.mean(first, axis=(1, 2)), keras.ops.std(first, axis=(1, 2))], axis=-1)
    return keras.Model(model.inputs, [model.outputs[0], statistics], name=f"{model.name}_with_features")


def as_model_input(features: np.ndarray) -> np.ndarray:
    """(batch, time, n_mels) spectrograms gain a channel axis, (batch, time, n_mels, 1); (batch, height, width,
    channels) images pass through. The dtype is kept."""
    return features[..., None] if features.ndim == 3 else features


def to_tflite(model) -> bytes:
    """The model as a float32 LiteRT flatbuffer with a dynamic batch dimension."""
    import contextlib
    import io

    import tensorflow as tf

    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints the whole saved signature
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()
