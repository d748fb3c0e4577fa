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
