"""Root conftest: loaded for every test path (tests/ and the nbval notebooks).

The README's test command passes ``DCFT_EDU_DATA`` as a path relative to the repository
root, but nbval's kernels run inside ``notebooks/`` and inherit this process's environment:
hand them (and every test) the absolute path.
"""
import os
from pathlib import Path

if os.environ.get("DCFT_EDU_DATA"):
    os.environ["DCFT_EDU_DATA"] = str(Path(os.environ["DCFT_EDU_DATA"]).expanduser().resolve())
