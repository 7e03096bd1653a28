"""Resumable sweeps: one JSON file per finished run, keyed by a hash of its config.

``run_sweep(name, grid, results_dir)`` expands a grid into ``RunConfig``s and
trains each one whose result file is missing. Each result is written
atomically (temporary file + rename), so a sweep killed at any moment resumes
where it stopped with nothing lost or duplicated: rerunning skips every run
whose file exists. ``load_results`` reads a sweep back as a pandas DataFrame.

A grid is a dict ``{"task": [...], "method": [...], "seed": [...], <any
RunConfig field>: [...]}`` (every combination is run) or a list of such dicts
(their union). ``python -m dcft_edu.experiments.sweep GRID --scale cpu`` runs a named grid
(see ``GRIDS``) or a JSON grid file.

Used in: notebooks 10–13.
"""
from __future__ import annotations

import argparse
import itertools
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from .presets import METHODS, SCALES, RunConfig, make_run
from .runinfo import RESULTS_ENV, atomic_write, atomic_write_json, user_results_dir, writable_dir

Grid = Union[dict[str, Any], list[dict[str, Any]]]

#: the four small GLUE tasks of the papers' ablations
ABLATION_TASKS = ["cola", "mrpc", "stsb", "rte"]
#: the module whose learned ΔW the stride ablation keeps (heatmaps in 11_stride_ablation)
STRIDE_DELTA_MODULE = "layer.0.attention.self.query"

#: Named grids for the papers' experiments (``seed`` lists give mean ± std). A run whose
#: exact config already finished in another sweep is copied, not retrained (e.g. DCFT k = 8
#: of ``main`` is also ``kernel``'s k = 8 and ``stride``'s s = 8).
GRIDS: dict[str, Grid] = {
    "smoke": {"task": ["rte"], "method": list(METHODS), "seed": [0]},
    # 07_glue_main_results (DCFT Table 1, Delta-LoRA Table 4); 08 and 09 read it too
    "main": [
        {"task": ["rte", "mrpc", "stsb", "cola", "sst2"], "method": ["head", "full", "delta_lora"], "seed": [0, 1, 2]},
        {"task": ["rte", "mrpc", "stsb", "cola", "sst2"], "method": ["lora"], "r": [1, 8], "seed": [0, 1, 2]},
        {"task": ["rte", "mrpc", "stsb", "cola", "sst2"], "method": ["dcft"], "kernel_size": [2, 8], "seed": [0, 1, 2]},
    ],
    # 10_kernel_ablation (DCFT Table 4)
    "kernel": {"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [2, 4, 6, 8, 12], "seed": [0, 1, 2]},
    # 11_stride_ablation (DCFT Table 5); seed 0 keeps one layer's learned ΔW
    "stride": [
        {"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "stride": [1, 2, 4, 6, 8], "seed": [0],
         "save_delta": [STRIDE_DELTA_MODULE]},
        {"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "stride": [1, 2, 4, 6, 8], "seed": [1, 2]},
    ],
    # 12_layer_ablation: which matrices, which blocks (MiniLM has blocks 0–5)
    "layers": [
        {"task": ["mrpc", "stsb"], "method": ["lora", "dcft"], "seed": [0, 1, 2],
         "target_modules": [["query", "value"], ["query", "key", "value", "attention.output.dense"], "all-linear"]},
        {"task": ["mrpc", "stsb"], "method": ["lora", "dcft"], "seed": [0, 1, 2], "target_modules": ["all-linear"],
         "layers": [[0, 1, 2], [3, 4, 5]]},
    ],
    # 13_delta_lora_lambda_k (Delta-LoRA Tables 7 and 8): λ at the task's K ...
    "delta_lambda": {"task": ABLATION_TASKS, "method": ["delta_lora"], "update_ratio": [0.0, 0.5, 1.0, 2.0, 3.0, 5.0],
                     "seed": [0, 1, 2]},
    # ... K as a fraction of all optimizer steps (run it with --set update_ratio=<best λ>) ...
    "delta_k": {"task": ABLATION_TASKS, "method": ["delta_lora"], "start_frac": [0.0, 0.1, 0.25, 0.5],
                "seed": [0, 1, 2]},
    # ... and LoRA whose scale jumps from s to (1+λ)·s at step K, Delta-LoRA's twin (NOTES §4)
    "scale_jump": {"task": ABLATION_TASKS, "method": ["lora"], "lora_scale_jump": [True], "update_ratio": [0.5, 2.0],
                   "seed": [0, 1, 2]},
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


def _save_result(p: Path, name: str, run: RunConfig, result: dict) -> None:
    """Write one run's result atomically; a kept ΔW goes beside it as ``<stem>.delta.safetensors``."""
    delta = result.get("_delta")
    result = {k: v for k, v in result.items() if not k.startswith("_")}
    result["sweep"] = name
    if delta:
        import torch
        from safetensors.torch import save_file

        atomic_write(delta_path(p), lambda tmp: save_file(
            {k: v.to(torch.float16).contiguous() for k, v in delta.items()}, tmp, metadata={"key": run.key()}))
    atomic_write_json(p, result)  # last: the JSON's presence means the run is complete


def delta_path(p: Path) -> Path:
    """Where a run's kept ΔW (``RunConfig.save_delta``) lives: beside its result file."""
    return p.with_name(p.stem + ".delta.safetensors")


def _find_elsewhere(results_dir: Path, name: str, run: RunConfig) -> Optional[Path]:
    """A finished result of the very same config in another sweep folder (so it need not be trained twice)."""
    for f in sorted(Path(results_dir).glob(f"*/*-{run.key()}.json")):
        if f.parent.name != name and (not run.save_delta or delta_path(f).exists()):
            return f
    return None


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _train_one(run: RunConfig, p: Path, name: str) -> str:
    """Worker-process body: train one run and write its result (top-level, so it pickles)."""
    from .trainer import train

    t0 = time.perf_counter()
    result = train(run, progress=False, log=lambda m: None)
    _save_result(p, name, run, result)
    return f"done {p.name} ({time.perf_counter() - t0:.0f} s, {result['main_metric']}={result['best_metric']:.4f})"


def _pending(name: str, runs: list[RunConfig], results_dir: Path) -> tuple[list[Path], list[tuple]]:
    """(all result paths, the (run, path) pairs still to train); copies results finished elsewhere."""
    for stale in Path(results_dir, name).glob(".*.tmp"):  # left by a run killed mid-write
        stale.unlink()
    paths, todo = [], []
    for run in runs:
        p = result_path(results_dir, name, run)
        paths.append(p)
        if p.exists():
            continue
        other = _find_elsewhere(Path(results_dir), name, run)
        if other is not None:
            rec = json.loads(other.read_text())
            rec["sweep"], rec["reused_from"] = name, str(Path(other.parent.name) / other.name)
            if run.save_delta:
                atomic_write(delta_path(p), lambda tmp, src=delta_path(other): shutil.copyfile(src, tmp))
            atomic_write_json(p, rec)
            continue
        todo.append((run, p))
    return paths, todo


def run_sweeps(sweeps: list[tuple[str, Union[Grid, Iterable[RunConfig]]]], results_dir: Union[str, Path],
               scale: str = "quick", train_fn: Optional[Callable[..., dict]] = None, progress: bool = False,
               log: Callable[[str], Any] = print, workers: int = 1, deadline: Optional[float] = None,
               threads_per_worker: int = 1, seed_major: bool = False, **overrides: Any) -> dict[str, list[Path]]:
    """Several sweeps as one queue, in the order given (so workers never idle between them).

    Each entry is ``(name, grid or RunConfigs)``; see ``run_sweep``. Returns each sweep's result paths.
    ``seed_major=True`` queues every sweep's seed 0 before any seed 1 (and so on).
    A config that appears in two sweeps is trained once, then copied.
    """
    results_dir = Path(results_dir)
    expanded = []
    for name, grid in sweeps:
        if isinstance(grid, (dict, list)) and all(isinstance(g, dict) for g in ([grid] if isinstance(grid, dict) else grid)):
            runs = grid_runs(grid, scale=scale, **overrides)
        else:
            runs = list(grid)
        expanded.append((name, runs))
    out, queue, seen = {}, [], set()
    for name, runs in expanded:
        paths, todo = _pending(name, runs, results_dir)
        out[name] = paths
        fresh = [(r, p, name) for r, p in todo if r.key() not in seen]
        seen.update(r.key() for r, _, _ in fresh)
        log(f"sweep {name!r}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to go"
            + (f" ({len(todo) - len(fresh)} shared with an earlier sweep)" if len(fresh) < len(todo) else ""))
        queue.extend(fresh)
    if seed_major:  # every sweep's seed 0 first, then seed 1, …: a cut-off queue still covers every grid
        queue.sort(key=lambda item: item[0].seed)  # stable: grid order kept within a seed
    if workers <= 1 or train_fn is not None:
        if train_fn is None:
            from .trainer import train as train_fn
        for i, (run, p, name) in enumerate(queue, 1):
            if deadline is not None and time.time() > deadline:
                log(f"deadline reached: {len(queue) - i + 1} runs left for a rerun")
                break
            log(f"[{i}/{len(queue)}] {name}: {run.task} {run.method} seed={run.seed} key={run.key()}")
            _save_result(p, name, run, train_fn(run, progress=progress, log=log))
    else:
        _run_parallel(queue, workers, deadline, threads_per_worker, log)
    for name, runs in expanded:  # configs shared between sweeps: copy what the queue trained once
        _pending(name, runs, results_dir)
    return out


def run_sweep(name: str, grid: Union[Grid, Iterable[RunConfig]], results_dir: Union[str, Path],
              scale: str = "quick", train_fn: Optional[Callable[..., dict]] = None,
              progress: bool = False, log: Callable[[str], Any] = print, **kwargs: Any) -> list[Path]:
    """Train every run of ``grid`` whose result file is missing; return all result paths.

    ``grid`` is a grid dict/list or an iterable of ready RunConfigs.
    ``train_fn`` defaults to ``dcft_edu.experiments.trainer.train`` (tests pass a fake).
    A run whose exact config already finished in another sweep under ``results_dir`` is
    copied, not retrained. ``workers=N`` trains N runs at once in separate processes
    (one GPU is shared well by several small models); ``deadline`` (a ``time.time()``
    value) stops starting new runs then and abandons unfinished ones, which a rerun
    picks up again. Other keyword arguments override RunConfig fields of every run.

    Used in: notebooks 10–13.
    """
    return run_sweeps([(name, grid)], results_dir, scale=scale, train_fn=train_fn, progress=progress, log=log,
                      **kwargs)[name]


def _run_parallel(queue: list, workers: int, deadline: Optional[float], threads: int,
                  log: Callable[[str], Any]) -> None:
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init, initargs=(threads,))
    pending = {pool.submit(_train_one, run, p, name): p for run, p, name in queue}
    done_n = 0
    try:
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            finished, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if not finished:  # deadline
                log(f"deadline reached: {len(pending)} runs left for a rerun")
                break
            for f in finished:
                p = pending.pop(f)
                done_n += 1
                try:
                    log(f"[{done_n}/{len(queue)}] {f.result()}")
                except Exception as e:  # one failed run must not sink the sweep; it is retried on a rerun
                    log(f"[{done_n}/{len(queue)}] FAILED {p.name}: {type(e).__name__}: {e}")
    finally:
        for f in pending:
            f.cancel()
        for proc in list(getattr(pool, "_processes", {}).values()):  # abandon runs still training
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def load_results(path: Union[str, Path]) -> "pandas.DataFrame":  # noqa: F821
    """All result files under ``path`` (a sweep folder, or a folder of sweeps) as one DataFrame.

    One row per run: the config fields, the best/final metric, parameter counts,
    timing, memory and provenance columns; per-epoch records stay in ``epochs``.
    ``status`` is ``"ok"`` or ``"diverged"`` (no metric; files older than the column are ``"ok"``):
    ``analysis.finished_runs`` drops the diverged ones before any table or figure.
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
        row.setdefault("status", "ok")
        best = r["best"] or {"epoch": None}  # None: the run diverged
        row.update({f"best_{k}": v for k, v in best.items() if k != "epoch"})
        row["best_epoch"] = best["epoch"]
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
        prog="python -m dcft_edu.experiments.sweep",
        description="Run resumable sweeps: every run's result is written atomically to "
                    "RESULTS/NAME/<task>-<method>-s<seed>-<hash>.json; rerun the same command to resume. "
                    "Several grids run as one queue, in the order given.",
    )
    ap.add_argument("grid", nargs="+", help=f"named grids ({', '.join(GRIDS)}) or JSON files holding a grid dict/list")
    ap.add_argument("--scale", "--preset", dest="scale", choices=SCALES, default="quick",
                    help="quick (CI, seconds), cpu (minutes per run), gpu (the papers' recipes, ~20k examples per run)")
    ap.add_argument("--results", type=Path, default=user_results_dir(),
                    help=f"results folder (default: ${RESULTS_ENV} or results/, git-ignored; the committed results: "
                         "--results figures/data)")
    ap.add_argument("--name", help="sweep name, with a single grid (default: the grid's name or file stem)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a RunConfig field for every run, e.g. --set epochs=2 (repeatable)")
    ap.add_argument("--workers", type=int, default=1,
                    help="runs trained at once, each in its own process (a GPU is shared well by ~8–16)")
    ap.add_argument("--threads-per-worker", type=int, default=1, help="torch CPU threads of each worker process")
    ap.add_argument("--deadline-min", type=float,
                    help="stop after this many minutes: no new runs start, unfinished ones are left for a rerun")
    ap.add_argument("--seed-major", action="store_true",
                    help="queue every grid's seed 0 first, then seed 1, … (a deadline then cuts seeds, not grids)")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and whether each is done, then stop")
    args = ap.parse_args(argv)
    if args.name and len(args.grid) > 1:
        ap.error("--name goes with a single grid")
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    overrides = {}
    for item in args.set:
        if "=" not in item:
            ap.error(f"--set needs FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k not in RunConfig.__dataclass_fields__:
            ap.error(f"--set {k}: not a RunConfig field (fields: {', '.join(RunConfig.__dataclass_fields__)})")
        overrides[k] = _parse_value(v)
    sweeps = []
    for g in args.grid:
        if g in GRIDS:
            grid, name = GRIDS[g], args.name or g
        elif Path(g).is_file():
            grid, name = json.loads(Path(g).read_text()), args.name or Path(g).stem
        else:
            ap.error(f"{g!r} is neither a named grid ({', '.join(GRIDS)}) nor a JSON file")
        try:
            sweeps.append((name, grid_runs(grid, scale=args.scale, **overrides)))
        except (ValueError, TypeError) as e:
            ap.error(f"{g}: {e}")
    if args.dry_run:
        for name, runs in sweeps:
            for run in runs:
                done = result_path(args.results, name, run).exists()
                print(f"{'done' if done else 'todo'}  {name:12s} {run.task:5s} {run.method:10s} seed={run.seed} key={run.key()}")
        return 0
    try:
        writable_dir(args.results, "--results")  # now, not when the first run finishes
    except ValueError as e:
        ap.error(str(e))
    deadline = time.time() + 60 * args.deadline_min if args.deadline_min else None
    run_sweeps(sweeps, args.results, progress=sys.stderr.isatty() and args.workers == 1, workers=args.workers,
               deadline=deadline, threads_per_worker=args.threads_per_worker, seed_major=args.seed_major,
               log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
