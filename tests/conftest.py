import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))  # tests/nbrun.py
# The unit tests use tiny models, for which one thread is fastest; it also keeps two pytest-xdist workers from
# oversubscribing a 2-core machine (OpenMP threads spin-wait).
torch.set_num_threads(1)
