"""Shared test fixtures: synthesized Mandarin audio (espeak-ng), built once per session."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

# A few short sentences in the demo's domain; tests decode or featurize them.
SENTENCES = {
    "utt01": "今天是二零二四年三月五日",
    "utt02": "电话号码是一三八零零一三八零零零",
    "utt03": "下午三点四十五分开会",
    "utt04": "一共是九十九元五角",
    "utt05": "明天早上八点出发",
    "utt06": "我的号码是六六八八",
}


@pytest.fixture(scope="session")
def synth_data_dir(tmp_path_factory):
    """A 16 kHz flac data dir (wav.scp + text) of SENTENCES, several voices."""
    synth = pytest.importorskip("synth_data")
    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("synth")
    synth.make_data_dir(str(out), SENTENCES, synth.SynthOptions(seed=3))
    return str(out)
