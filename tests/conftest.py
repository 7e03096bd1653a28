"""Shared fixtures: where the GLUE data is (DCFT_EDU_DATA, or ../shared/data beside the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def data_root(monkeypatch) -> Path:
    root = os.environ.get("DCFT_EDU_DATA") or str(Path(__file__).resolve().parents[2] / "shared" / "data")
    if not (Path(root) / "RTE" / "train.tsv").exists():
        pytest.skip(f"GLUE data not found at {root}: set DCFT_EDU_DATA")
    monkeypatch.setenv("DCFT_EDU_DATA", str(Path(root).resolve()))
    return Path(root)
