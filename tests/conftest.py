from __future__ import annotations

import torch

# The models under test are tiny: one thread avoids oversubscribing the cores that pytest's
# worker processes and the storages' servers share.
torch.set_num_threads(1)
