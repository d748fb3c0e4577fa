"""Data acquisition: download the public datasets, synthesise speech and digits, write dashboard samples.

`python -m app data …` is this package's command line (`app.datasets.cli`).
"""
