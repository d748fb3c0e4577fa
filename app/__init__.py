"""OnePipe: one pipeline from a labelled folder of audio clips or images to a CNN and a dashboard.

Example:
    >>> from app.paths import MODELS_DIR
    >>> from app.predict import Predictor
    >>> predictor = Predictor.load(MODELS_DIR / "spoken-digits")
    >>> [answer] = predictor(MODELS_DIR / "spoken-digits/samples/7/seven-2-espeak-en-us-m3.wav", top_k=1)
    >>> answer["label"], answer["score"] > 0.9  # the score is a calibrated probability (0–1)
    ('7', True)
"""

__version__ = "0.1.0"
