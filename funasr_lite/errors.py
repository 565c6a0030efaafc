"""Typed, user-facing errors.

Every error that bad input can cause is a subclass of :class:`FunasrLiteError`.
Its message names the file (and line, where there is one) and the problem, so
the recipe scripts can print it without a traceback.
"""


class FunasrLiteError(Exception):
    """Base class: a problem with the user's input, shown without a traceback."""


class DataDirError(FunasrLiteError):
    """A Kaldi data dir file (wav.scp, text) is malformed; message has file:line."""


class AudioError(FunasrLiteError):
    """An audio file cannot be used: unreadable, empty, too short, NaN/Inf, ..."""


class NonFiniteError(FunasrLiteError):
    """Numbers that must be finite are NaN or Inf: a checkpoint's weights, or a model's output for an
    utterance (the message says which)."""


class ConfigError(FunasrLiteError, ValueError):
    """A YAML/JSON config or an option is invalid: unknown key, wrong type, bad value."""


class ModelDirError(FunasrLiteError):
    """A model dir is incomplete or inconsistent (missing file, size mismatch)."""


class CheckpointError(ModelDirError):
    """A checkpoint file is truncated, unsafe (code in pickle) or mismatched."""


class HubError(FunasrLiteError):
    """A ModelScope hub id could not be resolved (offline, unknown id)."""
