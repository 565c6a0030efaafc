"""funasr_lite.utils.lock: a second writer is refused; a killed holder's lock does not block."""

import os
import signal
import subprocess
import sys
import time

import pytest

from funasr_lite.utils.lock import DirLockedError, dir_lock

HOLD = (
    "from funasr_lite.utils.lock import dir_lock\nimport sys, time\nwith dir_lock(sys.argv[1]):\n"
    "    print('held', flush=True)\n    time.sleep(60)\n"
)


def test_second_writer_is_refused_and_a_killed_holder_does_not_block(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(DirLockedError, match=rf"{tmp_path} is in use by pid {holder.pid}"):
            with dir_lock(str(tmp_path), "decode"):
                pass
    finally:
        holder.kill()  # like kill -9: no cleanup runs
        holder.wait()
    with dir_lock(str(tmp_path)):  # the OS released the lock with the process
        with pytest.raises(DirLockedError):  # and the lock also excludes a second holder in one process
            with dir_lock(str(tmp_path)):
                pass
    start = time.time()
    with dir_lock(str(tmp_path)):
        pass
    assert time.time() - start < 1.0


FORK_HOLD = (
    "from funasr_lite.utils.lock import dir_lock\nimport os, sys, time\nwith dir_lock(sys.argv[1]):\n"
    "    child = os.fork()\n    if child == 0:\n        time.sleep(60)\n        os._exit(0)\n"
    "    print(child, flush=True)\n    time.sleep(60)\n"
)


def test_a_forked_child_outliving_a_killed_holder_does_not_block(tmp_path):
    """Like a DataLoader worker orphaned by kill -9 of the finetune: the resume must not be refused."""
    holder = subprocess.Popen([sys.executable, "-c", FORK_HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    child = int(holder.stdout.readline())
    holder.kill()
    holder.wait()
    try:
        with dir_lock(str(tmp_path)):  # the orphaned child still has the descriptor, but not the lock
            pass
    finally:
        os.kill(child, signal.SIGKILL)
