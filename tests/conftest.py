"""Shared test fixtures: synthesized Mandarin audio (espeak-ng), built once per session."""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from sentences import SENTENCES  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="session")
def synth_data_dir(tmp_path_factory):
    """A 16 kHz flac data dir (wav.scp + text) of SENTENCES, several voices."""
    synth = pytest.importorskip("synth_data")
    if not synth.espeak_available():
        pytest.skip("espeak-ng is not installed")
    out = tmp_path_factory.mktemp("synth")
    synth.make_data_dir(str(out), SENTENCES, synth.SynthOptions(seed=3))
    return str(out)
