"""The command-line layers set OMP_WAIT_POLICY=PASSIVE before torch loads, and keep a value the user set."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROBE = (
    "import os, sys; import funasr_lite.cli.recipes, funasr_lite.cli.main; "
    "print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"
)


@pytest.mark.slow
@pytest.mark.parametrize("given, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_cli_sets_passive_wait_policy_before_torch(given, expected):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    # torch not yet imported: libgomp reads the policy when torch loads it, so setting it later has no effect
    assert out.stdout.split() == [expected, "False"]
