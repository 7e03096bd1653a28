"""Resumable sweeps: one JSON file per finished run, keyed by a hash of its config.

``run_sweep(name, grid, results_dir)`` expands a grid into ``RunConfig``s and
trains each one whose result file is missing. Each result is written
atomically (temporary file + rename), so a sweep killed at any moment resumes
where it stopped with nothing lost or duplicated: rerunning skips every run
whose file exists and reads as a whole result (``read_result``); a file that
does not is moved aside to ``<name>.json.bad``, reported and retrained. A run
that raises is reported and the others go on; ``run_sweeps`` then raises
``SweepFailed`` listing every failure. ``load_results`` reads a sweep back as a
pandas DataFrame.

Result files carry ``schema`` (``presets.RESULT_SCHEMA``). The first committed
results have none (schema 1: key without the model, which was always the
packaged MiniLM); they are not rewritten but found under ``RunConfig.legacy_key``
beside the new key, so they keep their identity and the figures read the same files.

A grid is a dict ``{"task": [...], "method": [...], "seed": [...], <any
RunConfig field>: [...]}`` (every combination is run) or a list of such dicts
(their union). ``python -m dcft_edu.experiments.sweep GRID --scale cpu`` runs a named grid
(see ``GRIDS``) or a JSON grid file.

Scaling out: ``gpus=[0, 1, …]`` (``--gpus 0,1``) pins each worker process to one GPU of the
machine, round-robin; ``executor=`` (``--launcher submitit``) submits each run as a job of a
SLURM cluster through ``submitit``. Either way a run writes its own result file, so a
rerun skips every finished run.

The grids live in ``recipes``, the result files in ``store`` (both re-exported here).

Used in: notebooks 12–14.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from .presets import RESULT_SCHEMA, SCALES, RunConfig, make_run  # noqa: F401
from .runinfo import RESULTS_ENV, atomic_write, atomic_write_json, user_results_dir, writable_dir
# the grids are data (``recipes``), the result files the store's (``store``); sweep runs the one into the other
from .recipes import (ABLATION_TASKS, GRIDS, INIT_TASKS, LR_FACTORS, STRIDE_DELTA_MODULE,  # noqa: F401
                      ZERO_INIT_STD, Grid)
from .store import (RESULT_FIELDS, _check_done, _find_elsewhere, _problem, _save_result, delta_path, find_done,  # noqa: F401
                    done_path, load_results, read_result, result_path)


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
    """The RunConfigs of a grid at a scale (``overrides`` apply to every run).

    Refused (``ValueError``, ``validate.check_grid`` / ``check_unique_runs``): a grid that is not a dict or a
    list of dicts, has no runs or an unknown key, and two points that make the same run (a repeated seed, or an
    override such as ``seed=5`` that erases what the points differ in).
    """
    from .validate import check_grid, check_unique_runs

    check_grid(grid, "grid", fields=RunConfig.__dataclass_fields__, given=overrides)
    runs, points = [], []
    for point in expand_grid(grid):
        points.append(point)
        point = {**point, **overrides}
        task, method, seed = point.pop("task"), point.pop("method"), point.pop("seed", 0)
        runs.append(make_run(task, method, scale=scale, seed=seed, **point))
    check_unique_runs(points, [r.key() for r in runs], "grid", overrides)
    return runs


def _worker_init(threads: int, parent: int, gpus: Optional[list[str]] = None, started=None) -> None:
    """A worker process's setup: torch threads, death with its parent, and with ``gpus`` the one GPU it sees.

    A SIGKILLed sweep cannot terminate its workers, which would finish their run and then
    wait forever for the next (~1 GB each). On Linux the kernel sends them SIGKILL when the
    parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a thread polls the parent's pid.
    ``started`` counts the workers started so far (a shared ``multiprocessing.Value``): worker i
    sees ``gpus[i % len(gpus)]`` as its only CUDA device, set before torch touches CUDA.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        import threading

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to report (one line); it stops us
    if gpus:
        with started.get_lock():
            i, started.value = started.value, started.value + 1
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
    import torch

    torch.set_num_threads(threads)


def _train_one(run: RunConfig, p: Path, name: str, train_fn: Optional[Callable[..., dict]] = None) -> str:
    """Worker-process (or cluster job) body: train one run and write its result (top-level, so it pickles)."""
    if train_fn is None:
        from .trainer import train as train_fn

    claim, why = _claim(run, p, name)
    if claim is None:
        return why
    t0 = time.perf_counter()
    with claim:
        result = train_fn(run, progress=False, log=lambda m: None)
        _save_result(p, name, run, result)
    if result.get("status") == "diverged":
        return f"DIVERGED {p.name} ({time.perf_counter() - t0:.0f} s, at {result['diverged_at']}): lower its lr"
    return f"done {p.name} ({time.perf_counter() - t0:.0f} s, {result['main_metric']}={result['best_metric']:.4f})"


def _claim(run: RunConfig, p: Path, name: str):
    """``(claim, "")`` with this process holding ``run``'s claim (``validate.RunClaim``) in ``p``'s results folder,
    or ``(None, why)``: another live sweep is training it, or finished it since the queue was made."""
    from .validate import RunClaim

    results_dir = p.parent.parent
    claim = RunClaim(results_dir, run.key())
    if not claim.acquire():
        return None, f"skipped {p.name}: another sweep ({claim.holder()}) is training it; a rerun picks up its result"
    if _check_done(results_dir, name, run)[0] is not None or _find_elsewhere(results_dir, name, run) is not None:
        claim.release()
        return None, f"skipped {p.name}: another sweep finished it meanwhile"
    return claim, ""


def _pending(name: str, runs: list[RunConfig], results_dir: Path,
             log: Callable[[str], Any] = print) -> tuple[list[Path], list[tuple]]:
    """(all result paths, the (run, path) pairs still to train); copies results finished elsewhere.

    A bad result file (``_check_done``) is reported by path and moved aside to ``<name>.json.bad``.
    """
    from .validate import stale_temp

    for tmp in Path(results_dir, name).glob(".*.tmp"):  # left by a run killed mid-write; not another sweep's live one
        if stale_temp(tmp):
            tmp.unlink(missing_ok=True)
    paths, todo = [], []
    for run in runs:
        done = find_done(results_dir, name, run, log)
        if done is not None:
            paths.append(done)
            continue
        other = _find_elsewhere(Path(results_dir), name, run)
        if other is not None:
            p = Path(results_dir, name, other.name)  # the same key, so the same file name
            rec = read_result(other)
            rec["sweep"], rec["reused_from"] = name, str(Path(other.parent.name) / other.name)
            if run.save_delta:
                atomic_write(delta_path(p), lambda tmp, src=delta_path(other): shutil.copyfile(src, tmp))
            atomic_write_json(p, rec)
            paths.append(p)
            continue
        p = result_path(results_dir, name, run)
        paths.append(p)
        todo.append((run, p))
    return paths, todo


@dataclass
class RunFailure:
    """One run that raised: its sweep, config, would-be result file and error."""

    sweep: str
    run: RunConfig
    path: Path
    error: str

    def __str__(self) -> str:
        r = self.run
        return f"{self.sweep}: {r.task} {r.method} seed={r.seed} key={r.key()}: {self.error}"


class SweepFailed(RuntimeError):
    """Some runs raised. Every other run finished; rerunning the same sweep retries only the failed ones.

    ``failures``: the ``RunFailure``s; ``paths``: what ``run_sweeps`` would have returned.
    """

    def __init__(self, failures: list[RunFailure], paths: dict[str, list[Path]]):
        self.failures, self.paths = failures, paths
        super().__init__(f"{len(failures)} run(s) failed (the others finished; rerun the same sweep to retry "
                         "these):\n" + "\n".join(f"  {f}" for f in failures))


def run_sweeps(sweeps: list[tuple[str, Union[Grid, Iterable[RunConfig]]]], results_dir: Union[str, Path],
               scale: str = "quick", train_fn: Optional[Callable[..., dict]] = None, progress: bool = False,
               log: Callable[[str], Any] = print, workers: int = 1, deadline: Optional[float] = None,
               threads_per_worker: int = 1, seed_major: bool = False, gpus: Optional[list[str]] = None,
               executor=None, **overrides: Any) -> dict[str, list[Path]]:
    """Several sweeps as one queue, in the order given (so workers never idle between them).

    Each entry is ``(name, grid or RunConfigs)``; see ``run_sweep``. Returns each sweep's result paths.
    ``seed_major=True`` queues every sweep's seed 0 before any seed 1 (and so on).
    ``gpus`` (e.g. ``["0", "1"]``): at least one worker process per GPU, each pinned to one, round-robin.
    ``executor`` (a ``submitit`` executor): every run is a job of it, then this waits for them all.
    With either, ``train_fn`` (if given) must be a top-level function, so it pickles.
    A config that appears in two sweeps is trained once, then copied. A run that raises is
    logged and the queue goes on; at the end ``SweepFailed`` lists every failed run.
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
        paths, todo = _pending(name, runs, results_dir, log)
        out[name] = paths
        fresh = [(r, p, name) for r, p in todo if r.key() not in seen]
        seen.update(r.key() for r, _, _ in fresh)
        log(f"sweep {name!r}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to go"
            + (f" ({len(todo) - len(fresh)} shared with an earlier sweep)" if len(fresh) < len(todo) else ""))
        queue.extend(fresh)
    from .sweep_eta import eta_text, summary_text

    started = time.time()
    if seed_major:  # every sweep's seed 0 first, then seed 1, …: a cut-off queue still covers every grid
        queue.sort(key=lambda item: item[0].seed)  # stable: grid order kept within a seed
    failures: list[RunFailure] = []
    if executor is not None:
        if queue:
            failures = _run_jobs(queue, executor, train_fn, log)
    elif gpus:
        failures = _run_parallel(queue, max(workers, len(gpus)), deadline, threads_per_worker, log, gpus, train_fn)
    elif workers <= 1 or train_fn is not None:
        if train_fn is None:
            from .trainer import train as train_fn
        for i, (run, p, name) in enumerate(queue, 1):
            if deadline is not None and time.time() > deadline:
                log(f"deadline reached: {len(queue) - i + 1} runs left for a rerun")
                break
            claim, why = _claim(run, p, name)  # two sweeps on one folder: one trains each run
            if claim is None:
                log(f"[{i}/{len(queue)}] {why}")
                continue
            log(f"[{i}/{len(queue)}] {name}: {run.task} {run.method} seed={run.seed} key={run.key()}"
                + eta_text(i - 1, len(queue), started))
            try:
                with claim:
                    _save_result(p, name, run, train_fn(run, progress=progress, log=log))
            except Exception as e:  # one failed run must not sink the queue; it is listed at the end
                failures.append(RunFailure(name, run, p, f"{type(e).__name__}: {e}"))
                log(f"[{i}/{len(queue)}] FAILED {failures[-1]}")
    else:
        failures = _run_parallel(queue, workers, deadline, threads_per_worker, log)
    for name, runs in expanded:  # configs shared between sweeps: copy what the queue trained once
        out[name] = _pending(name, runs, results_dir, log)[0]
    if queue:
        trained = sum(p.exists() for _, p, _ in queue)
        log(summary_text(trained, len(failures), sum(map(len, out.values())) - len(queue),
                         len(queue) - trained - len(failures), time.time() - started))
    if failures:
        raise SweepFailed(failures, out)
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
    Raises ``SweepFailed`` (after every other run) if some runs raised.

    Used in: notebook 13; used by the solutions of 10–12.
    """
    return run_sweeps([(name, grid)], results_dir, scale=scale, train_fn=train_fn, progress=progress, log=log,
                      **kwargs)[name]


def _run_jobs(queue: list, executor, train_fn: Optional[Callable[..., dict]], log: Callable[[str], Any]) -> list[RunFailure]:
    """Submit every run as a job of a ``submitit`` executor (one SLURM job array), then wait for them.

    Each job trains one run and writes its result file (``_train_one``), exactly as a worker process
    would; a job that fails is logged and retried by a rerun. Interrupting the wait leaves the jobs
    running; rerun once they are done (``squeue``), as a rerun while they run submits them again.
    """
    with executor.batch():
        jobs = [(executor.submit(_train_one, run, p, name, train_fn), (run, p, name)) for run, p, name in queue]
    log(f"submitted {len(jobs)} jobs: {', '.join(str(job.job_id) for job, _ in jobs[:3])}{' …' if len(jobs) > 3 else ''}")
    failures = []
    for i, (job, (run, p, name)) in enumerate(jobs, 1):
        try:
            log(f"[{i}/{len(jobs)}] job {job.job_id}: {job.result()}")
        except Exception as e:  # one failed job must not sink the sweep; it is listed at the end and retried on a rerun
            failures.append(RunFailure(name, run, p, f"{type(e).__name__}: {e} (job {job.job_id}, log {job.paths.stderr})"))
            log(f"[{i}/{len(jobs)}] FAILED {failures[-1]}")
    return failures


def _run_parallel(queue: list, workers: int, deadline: Optional[float], threads: int,
                  log: Callable[[str], Any], gpus: Optional[list[str]] = None,
                  train_fn: Optional[Callable[..., dict]] = None) -> list[RunFailure]:
    """Train ``queue`` in ``workers`` processes; return the runs that raised."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    ctx = mp.get_context("spawn")  # CUDA cannot be forked
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(threads, os.getpid(), gpus, ctx.Value("i", 0)))
    pending = {pool.submit(_train_one, run, p, name, train_fn): (run, p, name) for run, p, name in queue}
    from .sweep_eta import eta_text

    done_n, failures, started = 0, [], time.time()
    try:
        while pending:
            timeout = None if deadline is None else max(0.0, deadline - time.time())
            finished, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
            if not finished:  # deadline
                log(f"deadline reached: {len(pending)} runs left for a rerun")
                break
            for f in finished:
                run, p, name = pending.pop(f)
                done_n += 1
                try:
                    log(f"[{done_n}/{len(queue)}] {f.result()}" + eta_text(done_n, len(queue), started))
                except Exception as e:  # one failed run must not sink the sweep; it is listed at the end
                    failures.append(RunFailure(name, run, p, f"{type(e).__name__}: {e}"))
                    log(f"[{done_n}/{len(queue)}] FAILED {failures[-1]}")
    finally:
        for f in pending:
            f.cancel()
        for proc in list(getattr(pool, "_processes", {}).values()):  # abandon runs still training
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    return failures


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _print_dry_run_totals(sweeps: list, todo: list[RunConfig], results: Path, workers: int) -> None:
    """``--dry-run``'s closing lines, on stderr (stdout stays one line per run, for scripts that count them):
    the totals, and a time estimate from the recorded wall times of the committed results (and of ``results``)."""
    import torch

    from .runinfo import committed_results_dir
    from .sweep_eta import dry_run_estimate

    total = sum(len(runs) for _, runs in sweeps)
    print(f"\ntotal: {total} runs in {len(sweeps)} sweep(s), {total - len(todo)} done (or shared), {len(todo)} to train",
          file=sys.stderr)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(dry_run_estimate(todo, [committed_results_dir(), results], device, workers), file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    """The sweep command line's arguments."""
    from .helptext import DefaultsHelpFormatter, preset_epilog, preset_help

    ap = argparse.ArgumentParser(
        prog="python -m dcft_edu.experiments.sweep", formatter_class=DefaultsHelpFormatter, epilog=preset_epilog(),
        description="Run resumable sweeps: every run's result is written atomically to "
                    "RESULTS/NAME/<task>-<method>-s<seed>-<hash>.json; rerun the same command to resume. "
                    "Several grids run as one queue, in the order given.",
    )
    ap.add_argument("grid", nargs="+", help=f"named grids ({', '.join(GRIDS)}) or JSON files holding a grid dict/list")
    ap.add_argument("--scale", "--preset", dest="scale", choices=SCALES, default="quick",
                    help=preset_help())
    ap.add_argument("--results", type=Path, default=user_results_dir(),
                    help=f"results folder (default: ${RESULTS_ENV} or results/, git-ignored; the committed results: "
                         "--results figures/data)")
    ap.add_argument("--name", help="sweep name, with a single grid (default: the grid's name or file stem)")
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="override a RunConfig field for every run, e.g. --set epochs=2 (repeatable)")
    ap.add_argument("--workers", type=int, default=1,
                    help="runs trained at once, each in its own process (a GPU is shared well by ~8–16)")
    ap.add_argument("--threads-per-worker", type=int, default=1, help="torch CPU threads of each worker process")
    ap.add_argument("--gpus", help="spread the workers over these GPUs of the machine, e.g. 0,1,2,3: each worker "
                                   "process sees one (CUDA_VISIBLE_DEVICES), round-robin; at least one worker per GPU")
    ap.add_argument("--launcher", choices=("local", "submitit"), default="local",
                    help="local: worker processes on this machine; submitit: one SLURM job per run (pip install "
                         "dcft_edu[cluster]; without SLURM, submitit runs the jobs as local processes, all at once)")
    c = ap.add_argument_group("cluster jobs (--launcher submitit)")
    c.add_argument("--slurm-partition", help="SLURM partition (default: the cluster's)")
    c.add_argument("--job-gpus", type=int, default=1, help="GPUs per job")
    c.add_argument("--job-cpus", type=int, default=4, help="CPU cores per job")
    c.add_argument("--job-time-min", type=int, default=120, help="time limit of each job, in minutes")
    c.add_argument("--max-jobs", type=int, default=64, help="jobs of the array running at once")
    ap.add_argument("--deadline-min", type=float,
                    help="stop after this many minutes: no new runs start, unfinished ones are left for a rerun")
    ap.add_argument("--seed-major", action="store_true",
                    help="queue every grid's seed 0 first, then seed 1, … (a deadline then cuts seeds, not grids)")
    ap.add_argument("--dry-run", action="store_true", help="list the runs and whether each is done, then stop")
    return ap


def _check_args(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Optional[list[str]]:
    """Flags that argparse alone cannot check; returns the GPUs of --gpus (None: not given)."""
    if args.name and len(args.grid) > 1:
        ap.error("--name goes with a single grid")
    if args.workers < 1:
        ap.error("--workers must be >= 1")
    gpus = [g.strip() for g in args.gpus.split(",") if g.strip()] if args.gpus else None
    if args.gpus is not None and not gpus:
        ap.error(f"--gpus {args.gpus!r}: expected GPU indices, e.g. --gpus 0,1")
    if gpus and args.launcher == "submitit":
        ap.error("--gpus spreads local workers; with --launcher submitit give --job-gpus (GPUs per job) instead")
    if args.deadline_min is not None and not args.deadline_min > 0:
        ap.error(f"--deadline-min {args.deadline_min:g}: give a number of minutes > 0 (leave it out for no deadline)")
    return gpus


def _load_sweeps(ap: argparse.ArgumentParser, args: argparse.Namespace) -> list:
    """(name, runs) per grid argument, every run validated (and its device checked) before any work."""
    from .validate import check_device, check_set_overrides, load_grid_file

    try:
        overrides = check_set_overrides(args.set, RunConfig.__dataclass_fields__, _parse_value)
    except ValueError as e:
        ap.error(str(e))
    sweeps = []
    for g in args.grid:
        try:
            if g in GRIDS:
                grid, name = GRIDS[g], args.name or g
            elif Path(g).is_file():
                grid, name = load_grid_file(g), args.name or Path(g).stem
            else:
                raise ValueError(f"{g!r} is neither a named grid ({', '.join(GRIDS)}) nor a JSON file")
            runs = grid_runs(grid, scale=args.scale, **overrides)
            if args.launcher == "local" and not args.dry_run:  # a cluster job's device is the job's to check
                for device in sorted({r.device for r in runs}):
                    check_device(device)
            sweeps.append((name, runs))
        except (ValueError, TypeError) as e:
            ap.error(str(e) if str(e).startswith(g) else f"{g}: {e}")  # named once
    return sweeps


def _dry_run(sweeps: list, args: argparse.Namespace) -> int:
    """List every run, done or todo, then the totals and a time estimate."""
    todo = {}
    for name, runs in sweeps:
        for run in runs:
            done, bad = _check_done(Path(args.results), name, run)
            for _, why in bad:
                print(f"bad   {why}")
            print(f"{'done' if done else 'todo'}  {name:12s} {run.task:5s} {run.method:10s} seed={run.seed} key={run.key()}")
            if not done:
                todo.setdefault(run.key(), run)  # a config in two sweeps trains once
    _print_dry_run_totals(sweeps, list(todo.values()), args.results, args.workers)
    return 0


def _executor(ap: argparse.ArgumentParser, args: argparse.Namespace):
    """The submitit executor of --launcher submitit, else None (local worker processes)."""
    executor = None
    if args.launcher == "submitit":
        try:
            import submitit
        except ImportError:
            ap.error("--launcher submitit needs submitit: pip install 'dcft_edu[cluster]' (or pip install submitit)")
        executor = submitit.AutoExecutor(folder=args.results / ".submitit" / "%j")  # each job's logs and pickles
        executor.update_parameters(gpus_per_node=args.job_gpus, cpus_per_task=args.job_cpus, tasks_per_node=1,
                                   timeout_min=args.job_time_min, slurm_array_parallelism=args.max_jobs,
                                   **({"slurm_partition": args.slurm_partition} if args.slurm_partition else {}))
    return executor


def main(argv: Optional[list[str]] = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    gpus = _check_args(ap, args)
    sweeps = _load_sweeps(ap, args)
    if args.dry_run:
        return _dry_run(sweeps, args)
    try:
        writable_dir(args.results, "--results")  # now, not when the first run finishes
        for name, _ in sweeps:
            writable_dir(args.results / name, "--results")
    except ValueError as e:
        ap.error(str(e))
    deadline = time.time() + 60 * args.deadline_min if args.deadline_min is not None else None
    executor = _executor(ap, args)
    try:
        run_sweeps(sweeps, args.results, progress=sys.stderr.isatty() and args.workers == 1, workers=args.workers,
                   deadline=deadline, threads_per_worker=args.threads_per_worker, seed_major=args.seed_major,
                   gpus=gpus, executor=executor, log=lambda m: print(m, flush=True))
    except SweepFailed as e:
        print(f"\n{e}", file=sys.stderr)
        for f in e.failures:
            print(f"  {f.run.task} {f.run.method} seed={f.run.seed} config: {json.dumps(f.run.to_dict())}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
