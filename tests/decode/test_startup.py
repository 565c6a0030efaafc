"""Startup: loading and decoding a local model dir imports nothing it does not use.

modelscope (the hub path), tensorboard and matplotlib (training outputs) are slow imports; torch._dynamo is
what a random init on the meta device pulls in (1.5-4 s of a model load; the decoder's embedding skips it).
Run in a subprocess so that other tests' imports do not count.
"""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEMO_MODEL = os.path.join(
    ROOT, "egs_modelscope", "asr", "paraformer", "speech_paraformer-tiny_asr_nat-zh-cn-16k-numbers-demo", "model"
)
UNWANTED = ["modelscope", "tensorboard", "torch.utils.tensorboard", "matplotlib", "torch._dynamo"]

SCRIPT = """
import json, sys
import numpy as np
import funasr_lite
asr = funasr_lite.load_model(sys.argv[1], device="cpu", quantize=sys.argv[2] or None)
out = asr.transcribe([np.zeros(16000, dtype=np.float32)])
print(json.dumps({"n": len(out), "loaded": sorted(m for m in sys.argv[3:] if m in sys.modules)}))
"""


@pytest.mark.parametrize("quantize", ["", "int8"])
def test_local_model_dir_decodes_without_slow_imports(quantize):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, DEMO_MODEL, quantize, *UNWANTED],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["n"] == 1
    assert report["loaded"] == [], f"decoding a local model dir imported {report['loaded']}"
