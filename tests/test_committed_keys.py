"""Every committed GLUE result file is still found by the sweep command that wrote it (no training, fast).

A refactor of RunConfig, its key or the grids must keep the committed results valid: for each committed sweep
folder, the runs of its grid (the named grid, or the JSON grid of ``scripts/grids``, at the scale it was run)
must claim every result file there (``done_path``, under the schema-2 key or the schema-1 ``legacy_key``), so
that ``python -m dcft_edu.experiments.sweep <grid> --dry-run --results <folder>`` lists them as done.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcft_edu.experiments.sweep import GRIDS, done_path, grid_runs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "figures" / "data"
GRID_FILES = ROOT / "scripts" / "grids"

#: committed folder (under figures/data) -> the sweeps that wrote it: (grid name or scripts/grids file, scale)
COMMITTED = {
    "main": [("main", "gpu")],
    "kernel": [("kernel", "gpu")],
    "stride": [("stride", "gpu")],
    "layers": [("layers", "gpu")],
    "delta_lambda": [("delta_lambda", "gpu")],
    "delta_k": [("delta_k", "gpu")],
    "scale_jump": [("scale_jump", "gpu")],
    "cpu/delta_k": [("delta_k", "gpu")],
    "cpu/delta_lambda": [("delta_lambda", "gpu")],
    "cpu/layers": [("layers", "gpu")],
    "cpu/scale_jump": [("scale_jump", "gpu")],
    "cpu/stride": [("stride", "gpu")],
    "cpu/dcft_lr": [("dcft_lr_cpu.json", "cpu"), ("dcft_lr_cpu_sst2.json", "cpu"), ("dcft_lr_cpu_stsb.json", "cpu")],
    "cpu/dcft_init": [("dcft_init_cpu_stsb.json", "cpu"), ("dcft_init_cpu_sst2.json", "cpu")],
    "cpu/dcft_lr_budget": [(f"dcft_lr_budget_{t}{edge}.json", "gpu") for t in ("cola", "mrpc", "rte", "stsb")
                           for edge in ("", "_edge_dcft", "_edge_lokr", "_edge_lora")],
}
#: folders of figures/data that are not GLUE sweeps (E2E has its own key test in test_e2e.py; benchmarks)
NOT_SWEEPS = {"e2e", "efficiency", "engine_cpu", "cpu"}


def _grid(spec: str):
    return GRIDS[spec] if spec in GRIDS else json.loads((GRID_FILES / spec).read_text())


def test_every_committed_sweep_folder_is_listed():
    folders = {str(p.relative_to(DATA)) for p in DATA.iterdir() if p.is_dir()}
    folders |= {f"cpu/{p.name}" for p in (DATA / "cpu").iterdir() if p.is_dir()}
    missing = sorted(folders - set(COMMITTED) - NOT_SWEEPS)
    assert not missing, f"committed result folders without a sweep in COMMITTED: {missing}; add the grid that wrote them"


@pytest.mark.parametrize("folder", sorted(COMMITTED))
def test_committed_results_are_found_by_their_sweep(folder):
    results, name = (DATA / folder).parent, Path(folder).name
    files = {p.resolve() for p in (DATA / folder).glob("*.json")}
    assert files, f"{DATA / folder}: no result files"
    claimed = set()
    for spec, scale in COMMITTED[folder]:
        for run in grid_runs(_grid(spec), scale=scale):
            p = done_path(results, name, run)
            if p is not None:
                claimed.add(p.resolve())
    orphans = sorted(p.name for p in files - claimed)
    assert not orphans, (f"{folder}: {len(orphans)} of {len(files)} committed results are no longer found by their "
                         f"sweep (the key changed?), e.g. {orphans[:3]}")
