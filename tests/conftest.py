import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/nbrun.py
# The unit tests use tiny models, for which one thread is fastest; it also keeps two pytest-xdist workers from
# oversubscribing a 2-core machine (OpenMP threads spin-wait).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _unit_tests_run_on_cpu(request):
    """Pin the kit's default device to the CPU, so the suite asserts the same numbers on every machine.

    On a GPU machine ``device=None`` would otherwise mean CUDA, and a test comparing against CPU tensors would
    fail for a reason unrelated to what it tests. The GPU paths have their own tests (``tests/test_gpu.py``,
    marked ``cuda``: they run only where CUDA is present, on the automatic device); the notebook runs
    keep the automatic choice, so on a GPU machine the lessons run on the GPU.
    """
    from transferlab import device as D

    saved = D._DEFAULT_DEVICE
    D.set_default_device(None if request.node.get_closest_marker("cuda") else "cpu")  # cuda tests: automatic
    try:
        yield
    finally:
        D._DEFAULT_DEVICE = saved
