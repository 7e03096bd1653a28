"""Shared fixtures: where the GLUE data is (``DCFT_EDU_DATA``: the full sets, or the shipped sample)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def data_root() -> Path:
    """The GLUE folder the tests read: ``$DCFT_EDU_DATA``, which the root ``conftest.py`` sets to the shipped
    sample (``tests/data/glue_sample``) unless it names the full data."""
    return Path(os.environ["DCFT_EDU_DATA"])
