"""funasr_lite.utils.lazy: the packages' PEP 562 lazy exports."""

import json

import pytest

import funasr_lite.punc
import funasr_lite.vad
from funasr_lite.utils.lazy import lazy_exports


def test_lazy_exports_imports_on_first_use_and_caches():
    namespace = {"__name__": "pkg", "present": 1}
    getattr_, dir_ = lazy_exports("pkg", {"dumps": "json"}, namespace)
    assert "dumps" not in namespace
    assert getattr_("dumps") is json.dumps
    assert namespace["dumps"] is json.dumps  # later lookups are plain globals
    assert dir_() == ["__name__", "dumps", "present"]
    with pytest.raises(AttributeError, match="module 'pkg' has no attribute 'loads'"):
        getattr_("loads")  # in json, but not exported


def test_packages_list_their_lazy_names():
    assert {"load_punc", "PuncModel", "PuncResult"} <= set(dir(funasr_lite.punc))
    assert {"load_vad", "VadModel"} <= set(dir(funasr_lite.vad))
    assert {"load_model", "Transcriber", "DecodingOptions"} <= set(dir(funasr_lite))
    with pytest.raises(AttributeError, match="module 'funasr_lite.vad' has no attribute 'nothing'"):
        funasr_lite.vad.nothing  # noqa: B018
