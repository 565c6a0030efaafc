"""Decoding: search over a model's outputs, the :func:`load_model` Python API, the data-dir job, hotword input
(``--hotword``) and the hotword models' decode entries, and CER."""
