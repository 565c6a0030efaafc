"""Command-line layers: the recipe scripts' shared flags and the ``funasr-lite`` console command.

Importing this package (every recipe script and the console command do, before torch is loaded) sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment already sets it: with OpenMP's default, torch's idle CPU
threads spin-wait, and on a machine shared with other jobs a SeACo decode of 40 short utterances (its BiLSTM
timestamp head runs many small ops) took 27.6 s instead of 1.7 s. The arithmetic, and so every result, is
the same under either policy.
"""

import os

__all__ = []

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
