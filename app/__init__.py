"""OnePipe: one pipeline from a labelled folder of audio clips or images to a CNN and a dashboard.

Example:
    >>> from app.predict import Predictor
    >>> predictor = Predictor.load("models/spoken-digits")  # doctest: +SKIP
    >>> predictor("clip.wav", top_k=3)  # doctest: +SKIP
    [{'label': '7', 'score': 0.97}, ...]
"""

__version__ = "0.1.0"
