"""Where data is looked for, known without importing the tasks (and PyTorch): ``dendrisim
models`` names these folders, the dataset loaders search them."""
from __future__ import annotations

from pathlib import Path

#: Debian's package ``dataset-fashion-mnist`` installs the four IDX files here
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
