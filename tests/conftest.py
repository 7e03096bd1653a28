"""Shared fixtures: where the GLUE data is (``DCFT_EDU_DATA``: the full sets, or the shipped sample)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# one process: two threads (a 2-core machine); one of two pytest-xdist workers: one thread each (root conftest)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))


@pytest.fixture
def data_root() -> Path:
    """The GLUE folder the tests read: ``$DCFT_EDU_DATA``, which the root ``conftest.py`` sets to the shipped
    sample (``tests/data/glue_sample``) unless it names the full data."""
    return Path(os.environ["DCFT_EDU_DATA"])
