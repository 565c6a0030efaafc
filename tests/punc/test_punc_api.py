"""funasr_lite.punc's loading paths that need no FunASR: hub aliases, lazy imports, window edge cases."""

import subprocess
import sys

import pytest

from funasr_lite.errors import HubError
from funasr_lite.punc import api
from funasr_lite.punc.window import punctuate_windows, split_windows


def test_aliases_resolve_to_hub_ids(monkeypatch):
    from funasr_lite.hub import download
    from funasr_lite.hub.aliases import MODEL_ALIASES, resolve_alias

    assert resolve_alias("ct-punc") == "iic/punc_ct-transformer_cn-en-common-vocab471067-large"
    assert resolve_alias("ct-punc-c") == "iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch"
    assert resolve_alias("iic/some-other") == "iic/some-other"
    asked = []

    def not_cached(model, **kwargs):
        asked.append(model)
        raise FileNotFoundError("not cached")

    import modelscope

    monkeypatch.setattr(modelscope, "snapshot_download", not_cached)
    monkeypatch.setattr(download, "hub_reachable", lambda *a, **k: False)
    for alias in ("ct-punc", "ct-punc-c"):
        with pytest.raises(HubError):
            api.load_punc(alias)
    assert asked == [MODEL_ALIASES["ct-punc"], MODEL_ALIASES["ct-punc-c"]]


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
