"""funasr-lite: a small, exact and fast re-implementation of FunASR's Paraformer recipes."""

__version__ = "0.1.0"
