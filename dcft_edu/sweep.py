"""Resumable sweeps: one JSON file per finished run, keyed by a hash of its config.

``run_sweep(name, grid, results_dir)`` expands a grid into ``RunConfig``s and
trains each one whose result file is missing. Each result is written
atomically (temporary file + rename), so a sweep killed at any moment resumes
where it stopped with nothing lost or duplicated: rerunning skips every run
whose file exists. ``load_results`` reads a sweep back as a pandas DataFrame.

A grid is a dict ``{"task": [...], "method": [...], "seed": [...], <any
RunConfig field>: [...]}`` (every combination is run) or a list of such dicts
(their union). ``python -m dcft_edu.sweep GRID --scale cpu`` runs a named grid
(see ``GRIDS``) or a JSON grid file.

Used in: notebooks 07–13.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from .presets import METHODS, SCALES, RunConfig, make_run
from .runinfo import atomic_write_json

Grid = Union[dict[str, Any], list[dict[str, Any]]]

#: Named grids for the papers' experiments (``seed`` lists give mean ± std).
GRIDS: dict[str, Grid] = {
    "smoke": {"task": ["rte"], "method": list(METHODS), "seed": [0]},
    "main": [
        {"task": ["cola", "sst2", "mrpc", "stsb", "rte"], "method": ["head", "full", "delta_lora"], "seed": [0, 1, 2]},
        {"task": ["cola", "sst2", "mrpc", "stsb", "rte"], "method": ["lora"], "r": [1, 8], "seed": [0, 1, 2]},
        {"task": ["cola", "sst2", "mrpc", "stsb", "rte"], "method": ["dcft"], "kernel_size": [2, 8], "seed": [0, 1, 2]},
    ],
    "kernel": {"task": ["cola", "mrpc", "stsb", "rte"], "method": ["dcft"], "kernel_size": [2, 4, 6, 8, 12],
               "seed": [0, 1, 2]},
    "stride": {"task": ["cola", "mrpc", "stsb", "rte"], "method": ["dcft"], "kernel_size": [8],
               "stride": [1, 2, 4, 6, 8], "seed": [0, 1, 2]},
}


def expand_grid(grid: Grid) -> list[dict[str, Any]]:
    """Every combination of a grid dict (or of each dict in a list), in a stable order."""
    grids = [grid] if isinstance(grid, dict) else list(grid)
    out = []
    for g in grids:
        keys = list(g)
        values = [v if isinstance(v, (list, tuple)) else [v] for v in g.values()]
        out.extend(dict(zip(keys, combo)) for combo in itertools.product(*values))
    return out


def grid_runs(grid: Grid, scale: str = "quick", **overrides: Any) -> list[RunConfig]:
    """The RunConfigs of a grid at a scale (``overrides`` apply to every run)."""
    runs = []
    for point in expand_grid(grid):
        point = {**point, **overrides}
        missing = [k for k in ("task", "method") if k not in point]
        if missing:
            raise ValueError(f"every grid point needs {missing}: got {point}")
        task, method, seed = point.pop("task"), point.pop("method"), point.pop("seed", 0)
        runs.append(make_run(task, method, scale=scale, seed=seed, **point))
    return runs


def result_path(results_dir: Union[str, Path], name: str, run: RunConfig) -> Path:
    return Path(results_dir) / name / f"{run.task}-{run.method}-s{run.seed}-{run.key()}.json"


def run_sweep(name: str, grid: Union[Grid, Iterable[RunConfig]], results_dir: Union[str, Path],
              scale: str = "quick", train_fn: Optional[Callable[..., dict]] = None,
              progress: bool = False, log: Callable[[str], Any] = print, **overrides: Any) -> list[Path]:
    """Train every run of ``grid`` whose result file is missing; return all result paths.

    ``grid`` is a grid dict/list or an iterable of ready RunConfigs.
    ``train_fn`` defaults to ``dcft_edu.trainer.train`` (tests pass a fake).
    """
    if train_fn is None:
        from .trainer import train as train_fn
    if isinstance(grid, (dict, list)) and all(isinstance(g, dict) for g in ([grid] if isinstance(grid, dict) else grid)):
        runs = grid_runs(grid, scale=scale, **overrides)
    else:
        runs = list(grid)
    for stale in Path(results_dir, name).glob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink()
    paths, todo = [], []
    for run in runs:
        p = result_path(results_dir, name, run)
        paths.append(p)
        if not p.exists():
            todo.append((run, p))
    log(f"sweep {name!r}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to go")
    for i, (run, p) in enumerate(todo, 1):
        log(f"[{i}/{len(todo)}] {run.task} {run.method} seed={run.seed} key={run.key()}")
        result = train_fn(run, progress=progress, log=log)
        result = {k: v for k, v in result.items() if not k.startswith("_")}
        result["sweep"] = name
        atomic_write_json(p, result)
    return paths


def load_results(path: Union[str, Path]) -> "pandas.DataFrame":  # noqa: F821
    """All result files under ``path`` (a sweep folder, or a folder of sweeps) as one DataFrame.

    One row per run: the config fields, the best/final metric, parameter counts,
    timing, memory and provenance columns; per-epoch records stay in ``epochs``.
    """
    import pandas as pd

    rows = []
    for f in sorted(Path(path).rglob("*.json")):
        if f.name.startswith("."):
            continue
        r = json.loads(f.read_text())
        if "config" not in r:
            continue
        row = {**r["config"], **{k: v for k, v in r.items() if k not in ("config", "best", "final")}}
        row.update({f"best_{k}": v for k, v in r["best"].items() if k != "epoch"})
        row["best_epoch"] = r["best"]["epoch"]
        row["file"] = str(f)
        rows.append(row)
    return pd.DataFrame(rows)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m dcft_edu.sweep",
        description="Run a resumable sweep: every run's result is written atomically to "
                    "RESULTS/NAME/<task>-<method>-s<seed>-<hash>.json; rerun the same command to resume.",
    )
    ap.add_argument("grid", help=f"a named grid ({', '.join(GRIDS)}) or a JSON file holding a grid dict/list")
    ap.add_argument("--scale", "--preset", dest="scale", choices=SCALES, default="quick",
                    help="quick (CI, seconds), cpu (minutes per run), gpu (the papers' recipes)")
    ap.add_argument("--results", default="figures/data", help="results folder (default: figures/data)")
    ap.add_argument("--name", help="sweep name (default: the grid's name or file stem)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a RunConfig field for every run, e.g. --set epochs=2 (repeatable)")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and whether each is done, then stop")
    args = ap.parse_args(argv)
    if args.grid in GRIDS:
        grid, name = GRIDS[args.grid], args.name or args.grid
    elif Path(args.grid).is_file():
        grid, name = json.loads(Path(args.grid).read_text()), args.name or Path(args.grid).stem
    else:
        ap.error(f"{args.grid!r} is neither a named grid ({', '.join(GRIDS)}) nor a JSON file")
    overrides = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set needs FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k not in RunConfig.__dataclass_fields__:
            ap.error(f"--set {k}: not a RunConfig field (fields: {', '.join(RunConfig.__dataclass_fields__)})")
        overrides[k] = _parse_value(v)
    try:
        runs = grid_runs(grid, scale=args.scale, **overrides)
    except (ValueError, TypeError) as e:
        ap.error(str(e))
    if args.dry_run:
        for run in runs:
            done = result_path(args.results, name, run).exists()
            print(f"{'done' if done else 'todo'}  {run.task:5s} {run.method:10s} seed={run.seed} key={run.key()}")
        return 0
    run_sweep(name, runs, args.results, progress=sys.stderr.isatty())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
