"""funasr_lite.punc's loading paths that need no FunASR: hub aliases, lazy imports, window edge cases."""

import subprocess
import sys

import pytest

from funasr_lite.errors import HubError
from funasr_lite.punc import api
from funasr_lite.punc.window import punctuate_windows, split_windows


def test_aliases_resolve_to_hub_ids(monkeypatch):
    asked = []

    def fake_resolve(model):
        asked.append(model)
        raise HubError("offline")

    monkeypatch.setattr(api, "resolve_model", fake_resolve)
    for alias in ("ct-punc", "ct-punc-c", "iic/some-other"):
        with pytest.raises(HubError):
            api.load_punc(alias)
    assert asked == [api.HUB_ALIASES["ct-punc"], api.HUB_ALIASES["ct-punc-c"], "iic/some-other"]


def test_import_is_torch_free():
    code = "import sys, funasr_lite.punc.window, funasr_lite.punc.config; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_window_edges():
    assert split_windows(20, 20) == [(0, 20)]
    assert split_windows(41, 20) == [(0, 20), (20, 40), (40, 41)]
    with pytest.raises(ValueError, match="split_size must be >= 2"):
        split_windows(5, 1)
    with pytest.raises(ValueError, match="as many ids as units"):
        punctuate_windows(["a"], [], lambda ids: [1] * len(ids), ["_"], 0, 20)
    with pytest.raises(ValueError, match="classify returned 0 classes for 1 ids"):
        punctuate_windows(["a"], [1], lambda ids: [], ["_"], 0, 20)
