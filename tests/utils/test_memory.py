import sys

import pytest

from funasr_lite.utils.memory import release_free_memory


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim is Linux-only")
def test_release_free_memory_trims_the_glibc_heap():
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # ~128 MB on the heap, then freed
    del blocks
    assert release_free_memory() is True
