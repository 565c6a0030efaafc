"""Fixtures of the punctuation tests: tiny model dirs (tiny_punc.VARIANTS) and FunASR's AutoModel on them."""

import pytest
from tiny_punc import VARIANTS, build_variant


@pytest.fixture(scope="session")
def punc_dirs(tmp_path_factory):
    """name -> a tiny punctuation model dir, one per VARIANTS entry."""
    root = tmp_path_factory.mktemp("punc")
    return {name: build_variant(str(root / name), name) for name in VARIANTS}


@pytest.fixture(scope="session")
def funasr_punc():
    """dir -> FunASR's AutoModel on it (cached)."""
    from funasr import AutoModel

    cache = {}

    def get(model_dir: str):
        if model_dir not in cache:
            cache[model_dir] = AutoModel(model=model_dir, disable_update=True, disable_pbar=True, disable_log=True)
        return cache[model_dir]

    return get
