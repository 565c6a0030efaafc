"""Decoding: search over a model's outputs, the :func:`load_model` Python API, the data-dir job, and CER."""
