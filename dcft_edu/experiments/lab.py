"""Lab mode: an experiment notebook trains a small version of its own sweep on the student's device.

Each notebook 07–14 shows the committed results (``figures/data``, trained by the authors on a GPU).
In lab mode it also trains a *lab grid*: a subset of the committed sweep's grid (fewer tasks, seeds
and settings; ``LAB_GRIDS``) at the ``lab`` scale, with the very same ``run_sweep`` code, into the
student's results folder (``user_results_dir()``, never ``figures/``), and then draws the student's
runs over the committed ones::

    from dcft_edu.experiments import lab
    from dcft_edu.figures.lab import overlay_user_runs

    TRAIN = lab.train_switch()      # DCFT_EDU_TRAIN=1 / 0, else: train when a CUDA GPU is present
    if TRAIN:
        yours = lab.run_lab("kernel")  # GPU: LAB_GRIDS["kernel"].gpu at scale "lab"; CPU: .cpu at "lab_cpu"
        display(lab.yours_vs_committed(yours, committed, by=["task", "kernel_size"]))
        overlay_user_runs(ax, yours[yours.task == "stsb"], x="kernel_size")  # on the committed figure's axes

Rerunning a cell resumes: finished runs are files, and ``run_sweep`` skips them.

Before it trains, ``run_lab`` times a few training batches of each task and method on the student's machine
(``calibrate``, a few seconds each, nothing written) and prints the whole lab's expected time ("about 4 min on
this machine", ``estimate_lab``); while it trains, one progress bar counts every training batch of the lab, with
its ETA (``tqdm.auto``: a widget in Jupyter and Colab with ``ipywidgets``, text elsewhere); at the end it prints
the time taken beside the estimate.

Expected time of one notebook's lab sweep, and its basis:

- Reduced CPU form (``lab_cpu``: STS-B, seed 0, 400 training rows × 3 epochs, 300 dev rows, batch 16,
  max 128 tokens; 3–6 runs): about 3–5 minutes on one idle core, so ≤ 15 minutes on a 2-core CPU
  with a 3× margin. Measured here (AMD EPYC, ``torch.set_num_threads(1)``, one run per method, CPU
  seconds of the process, since the machine was shared: load 11–15 on 2 cores made wall times 6–10×
  longer): head 25 s, LoRA 43 s, Delta-LoRA 49 s, DCFT k=8 52 s, DCFT k=8 s=2 50 s, full FT 64 s
  (+ ~5 s per run to load the model). Per notebook: 07 ≈ 4.3 min (5 runs), 10 ≈ 3.8 (4), 11 ≈ 2.8 (3),
  12 ≈ 4.5 (6), 13 and 14 ≈ 4.5 (5, shared), 15 ≈ 3.5 (4). Measured end to end on the *idle* 2-core machine
  (2026-12-02, the whole notebook under nbval with ``DCFT_EDU_TRAIN=1``, 2 sweep workers): 07 in 2 min 25 s
  wall (261 CPU-s), 10 in 1 min 34 s (172 CPU-s). LoRA at this size on the other tasks: CoLA 33 s (Mcc 10.0), MRPC 122 s
  (70.7 accuracy; the majority class is 68), RTE 204 s (57.8): longer pairs cost more, and MRPC and
  CoLA learn little from 400 rows, which is why the CPU form uses STS-B only. Its Pearson r ×100 at this size: LoRA 87.4, Delta-LoRA 85.5, full FT 67.1, DCFT k=8
  59.2 (s=2: 82.2), head only 34.7 — with so few steps full FT (lr 1e-4) and DCFT k=8 lag behind
  their committed ≈ 85.
- GPU form (``lab``: STS-B and MRPC, seed 0, 2,000 training rows × 3 epochs, full dev sets, batch 32,
  max 128 tokens; 8–14 runs): ≤ 10 minutes on a Colab T4, an *estimate*, not a measurement (no GPU was
  available to this work): it assumes a T4 trains this workload ≈ 25× faster than one core of the CPU
  above (T4: 8.1 TFLOPS fp32 peak vs ≈ 0.1–0.16 TFLOPS for one AVX-512 core, i.e. 50–100× in peak,
  about half of it reached with batches of 32 short pairs). Per run that is ≈ 15 s on STS-B and ≈ 30 s
  on MRPC with model loading, so notebook 07's 14 runs take ≈ 5–6 minutes. Time it on your GPU with
  ``time python -c "from dcft_edu.experiments import lab; lab.run_lab('kernel')"``.

A lab run sees far fewer examples than a committed one (``lab``: 3 epochs of 2,000 rows; ``lab_cpu``:
3 epochs of 400 rows; committed: ~20,000 examples per run), so its metric often sits *below* the
committed seeds' spread. The "yours vs committed" table says so cell by cell; the ordering of the
methods or settings is what to compare.

With ``DCFT_EDU_QUICK=1`` (CI) the lab trains the first ``QUICK_RUNS`` runs of each reduced grid at
the ``quick`` scale into a temporary folder, so the code path is exercised in seconds.

For notebooks 07 (08 reads 07's runs), 10, 11, 12, 13 and 14 (which share one lab grid) and 15.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import pandas as pd

from .presets import RunConfig, train_size
from .runinfo import RESULTS_ENV, is_quick, user_results_dir
from .recipes import LAB_GRIDS, LabGrid  # noqa: F401  (the lab grids are data, with the papers' grids)
from .recipes import Grid
from .store import done_path, load_results
from .sweep import grid_runs, run_sweep, run_sweeps

TRAIN_ENV = "DCFT_EDU_TRAIN"
#: runs per sweep in quick mode (CI): enough to exercise training, the tables and the overlay
QUICK_RUNS = 2


def train_switch(verbose: bool = True) -> bool:
    """A notebook's ``TRAIN``: ``DCFT_EDU_TRAIN=1`` trains, ``0`` does not; unset, train when a CUDA GPU
    is present (or in quick mode, ``DCFT_EDU_QUICK=1``, so CI runs the lab path at its tiny scale).
    """
    import torch

    env = os.environ.get(TRAIN_ENV, "").strip()
    if env not in ("", "0", "1"):
        raise ValueError(f"{TRAIN_ENV}={env!r}: expected 1 (train) or 0 (read the committed results only); "
                         f"unset it to train exactly when a CUDA GPU is present")
    if env:
        train, why = env == "1", f"{TRAIN_ENV}={env}"
    elif is_quick():
        train, why = True, "quick mode (DCFT_EDU_QUICK=1): a tiny lab grid at the quick scale"
    else:
        train = torch.cuda.is_available()
        why = "a CUDA GPU is present" if train else f"no CUDA GPU (set {TRAIN_ENV}=1 to train the CPU lab form)"
    if verbose:
        print(f"TRAIN = {train}: {why}")
    return train


def lab_runs(name: str, reduced: Optional[bool] = None) -> tuple[str, dict[str, list[RunConfig]]]:
    """``(scale, {sweep: RunConfigs})`` that ``run_lab(name, reduced)`` trains (nothing is trained here).

    ``reduced=None``: the CPU form when no CUDA GPU is present. Quick mode: the first ``QUICK_RUNS`` runs
    of each reduced grid at the ``quick`` scale.
    """
    import torch

    if name not in LAB_GRIDS:
        raise ValueError(f"no lab grid {name!r}: expected one of {', '.join(LAB_GRIDS)}")
    if reduced is None:
        reduced = not torch.cuda.is_available()
    quick = is_quick()
    scale = "quick" if quick else "lab_cpu" if reduced else "lab"
    grids = LAB_GRIDS[name].cpu if reduced or quick else LAB_GRIDS[name].gpu
    return scale, {sweep: grid_runs(grid, scale=scale)[:QUICK_RUNS if quick else None] for sweep, grid in grids.items()}


def run_lab(name: str, reduced: Optional[bool] = None, results_dir: Union[str, Path, None] = None,
            log: Callable[[str], Any] = print, estimate: bool = True, progress: bool = True,
            **kwargs: Any) -> pd.DataFrame:
    """Train notebook ``name``'s lab grid (``LAB_GRIDS``) and return its runs, one row per run
    (``load_results``'s columns, with ``sweep``).

    ``results_dir``: default ``user_results_dir()`` (a temporary folder in quick mode unless
    ``$DCFT_EDU_RESULTS`` is set). Runs already there are not retrained. ``kwargs`` go to ``run_sweeps``
    (``workers``, ``deadline``, ``train_fn``, ...).

    Before training, ``estimate`` times a few training batches of each task and method still to train
    (``calibrate``, ``estimate_lab``) and prints the whole lab's expected time on this machine (``LabEstimate``). While it
    trains, ``progress`` shows one bar over every training batch of the lab, with its ETA (``tqdm.auto``:
    a widget in a notebook; with ``workers`` > 1 the runs train in other processes and there is no bar).
    At the end it prints the time taken beside the estimate.
    """
    scale, sweeps = lab_runs(name, reduced)
    if results_dir is None:
        quick_tmp = is_quick() and not os.environ.get(RESULTS_ENV)
        results_dir = Path(tempfile.gettempdir()) / "dcft_edu_quick_results" if quick_tmp else user_results_dir()
    results_dir = Path(results_dir)
    log(f"lab {name!r} ({LAB_GRIDS[name].notebook}): {sum(map(len, sweeps.values()))} runs at scale {scale!r} "
        f"into {results_dir}")
    todo = pending_runs(sweeps, results_dir)
    train_fn = kwargs.pop("train_fn", None)
    workers = kwargs.get("workers", 1)
    guess = None
    if todo and estimate:
        log(f"timing {CALIBRATION_BATCHES} training batches of each task and method for an estimate …")
        guess = estimate_lab(todo, train_fn)
        log(guess.describe(workers))
    bar = None
    if todo and progress and workers <= 1 and not kwargs.get("gpus") and kwargs.get("executor") is None:
        from tqdm.auto import tqdm

        from .trainer import train as default_train

        inner = train_fn or default_train
        bar = tqdm(total=sum(run_batches(r)[0] for r in todo), desc=f"lab {name}", unit="batch", mininterval=1)
        if log is print:  # messages above the bar, not through it
            log = bar.write

        def train_fn(run: RunConfig, progress: Any = False, log: Callable[[str], Any] = log) -> dict:
            bar.set_postfix_str(f"{run.task} {run.method}", refresh=False)
            return inner(run, progress=bar.update, log=log)

    t0 = time.perf_counter()
    try:
        paths = run_sweeps(list(sweeps.items()), results_dir, scale=scale, log=log, train_fn=train_fn, **kwargs)
    finally:
        if bar is not None:
            bar.close()
    if todo:
        took = time.perf_counter() - t0
        log(f"lab {name!r}: trained {len(todo)} runs in {_duration(took)}"
            + (f" (estimated {_duration(guess.seconds)})" if guess is not None and guess.seconds is not None else ""))
    files = {str(p) for ps in paths.values() for p in ps if p.exists()}  # a deadline may leave some unfinished
    df = pd.concat([load_results(results_dir / sweep) for sweep in sweeps], ignore_index=True)
    return df[df["file"].isin(files)].reset_index(drop=True) if not df.empty else df


def pending_runs(sweeps: dict[str, list[RunConfig]], results_dir: Union[str, Path]) -> list[RunConfig]:
    """The runs of ``sweeps`` that ``run_sweeps`` will train: no result under ``results_dir`` in their own sweep
    or any other one there (a config shared by two sweeps is trained once). Reads only."""
    results_dir = Path(results_dir)
    names = set(sweeps) | ({d.name for d in results_dir.iterdir() if d.is_dir()} if results_dir.is_dir() else set())
    todo, seen = [], set()
    for runs in sweeps.values():
        for run in runs:
            if run.key() in seen or any(done_path(results_dir, n, run) for n in names):
                continue
            seen.add(run.key())
            todo.append(run)
    return todo


#: training batches ``calibrate`` times, after one warm-up batch it does not count
CALIBRATION_BATCHES = 6
#: an evaluation batch (a forward pass) costs about this share of a training batch (forward, backward, step)
EVAL_SHARE = 1 / 3


def run_batches(run: RunConfig) -> tuple[int, int]:
    """``(training batches, evaluation batches)`` of the whole run: every epoch trains ⌈rows / batch⌉ batches,
    then evaluates the dev rows (and the held-out rows of ``select_on="train_holdout"``)."""
    from .data import GLUE_TASKS, holdout_size

    n_train = GLUE_TASKS[run.task].num_rows["train"]
    n_train = min(n_train, run.limit_train) if run.limit_train else n_train
    n_dev = GLUE_TASKS[run.task].num_rows["dev"]
    n_dev = min(n_dev, run.limit_dev) if run.limit_dev else n_dev
    held = holdout_size(n_train) if run.select_on == "train_holdout" else 0

    def batches(rows: int) -> int:
        return -(-rows // run.batch_size)

    return batches(train_size(run)) * run.epochs, (batches(n_dev) + (batches(held) if held else 0)) * run.epochs


def calibrate(run: RunConfig, train_fn: Optional[Callable[..., dict]] = None,
              batches: int = CALIBRATION_BATCHES) -> tuple[Optional[float], float]:
    """Time ``batches`` training batches of ``run`` on this machine: ``(seconds per training batch, seconds of
    fixed cost per run)``; the first is None when ``train_fn`` reported no batches.

    It trains a throw-away copy of ``run`` cut to ``batches`` + 1 batches, one epoch and one dev batch (nothing is
    written). The first batch is the warm-up (allocations, lazy initialisation): it counts to the fixed cost
    (loading the model and the data, evaluation set-up), with everything else outside the timed batches.
    """
    from .trainer import train as default_train

    train_fn = train_fn or default_train
    cut = (batches + 1) * run.batch_size
    probe = dataclasses.replace(run, epochs=1, limit_train=min(run.limit_train or cut, cut),
                                limit_dev=run.batch_size, select_on="dev", save_delta=None)
    stamps: list[float] = []
    t0 = time.perf_counter()
    train_fn(probe, progress=lambda n: stamps.append(time.perf_counter()), log=lambda m: None)
    wall = time.perf_counter() - t0
    if len(stamps) < 2:
        return None, wall
    # seconds per batch: the batches after the first, (t_last − t_first) / (count − 1)
    per_batch = (stamps[-1] - stamps[0]) / (len(stamps) - 1)
    return per_batch, max(0.0, wall - (len(stamps) - 1) * per_batch - EVAL_SHARE * per_batch)


@dataclass(frozen=True)
class LabEstimate:
    """How long the runs still to train should take here, from ``calibrate`` on one run of each (task, method)."""

    runs: int
    train_batches: int
    eval_batches: int
    seconds: Optional[float]  # None: a calibration timed no batches (a train_fn without the progress hook)
    per_batch_s: dict[str, Optional[float]]  # "stsb lora": seconds per training batch, as timed
    setup_s: float  # fixed cost per run (loading the model and the data), the mean over the calibrations
    calibration_s: float  # what the calibrations took

    def describe(self, workers: int = 1) -> str:
        timed = ", ".join(f"{k} {v:.2f} s" for k, v in self.per_batch_s.items() if v is not None)
        if self.seconds is None:
            return (f"Estimated time: unknown (the calibration timed no training batch); {self.runs} runs, "
                    f"{self.train_batches:,} training batches to go")
        par = f", divided by up to {workers} for {workers} workers if the machine has the cores" if workers > 1 else ""
        return (f"Estimated time: {_duration(self.seconds)} on this machine{par}. Basis: {self.runs} runs, "
                f"{self.train_batches:,} training batches at the seconds per batch timed here ({timed}; "
                f"{CALIBRATION_BATCHES} batches each, {self.calibration_s:.0f} s in all), {self.eval_batches:,} "
                f"evaluation batches at ≈ {EVAL_SHARE:.2f} of that, ≈ {self.setup_s:.0f} s of loading per run. "
                "The progress bar's ETA refines it as it goes.")


def estimate_lab(todo: Sequence[RunConfig], train_fn: Optional[Callable[..., dict]] = None) -> LabEstimate:
    """``LabEstimate`` of training ``todo`` one run after another on this machine.

    Each (task, method) is timed once (``calibrate`` on its first run): a training batch costs very different
    times by method (head only backpropagates into the head alone, full FT into every weight and keeps Adam
    moments for them all) and by task (longer sentence pairs)::

        seconds = Σ_runs [ setup + (training batches + EVAL_SHARE × evaluation batches) × seconds per batch ]
    """
    t0 = time.perf_counter()
    timed: dict[str, tuple[Optional[float], float]] = {}
    for run in todo:
        if f"{run.task} {run.method}" not in timed:
            timed[f"{run.task} {run.method}"] = calibrate(run, train_fn)
    setup = sum(s for _, s in timed.values()) / len(timed)
    total: Optional[float] = 0.0
    train_batches = eval_batches = 0
    for run in todo:
        per_batch = timed[f"{run.task} {run.method}"][0]
        n_train, n_eval = run_batches(run)
        train_batches, eval_batches = train_batches + n_train, eval_batches + n_eval
        total = None if total is None or per_batch is None else total + setup + (n_train + EVAL_SHARE * n_eval) * per_batch
    return LabEstimate(runs=len(todo), train_batches=train_batches, eval_batches=eval_batches, seconds=total,
                       per_batch_s={k: v[0] for k, v in timed.items()}, setup_s=setup,
                       calibration_s=time.perf_counter() - t0)


def _duration(seconds: float) -> str:
    """``"about 4 min"``, ``"under a minute"``, ``"about 1 h 10 min"``."""
    if seconds < 60:
        return "under a minute"
    m = round(seconds / 60)
    return f"about {m} min" if m < 60 else f"about {m // 60} h {m % 60} min"


def yours_vs_committed(user: pd.DataFrame, committed: pd.DataFrame, by: Sequence[str] = ("task", "label"),
                       metric: str = "best_metric") -> pd.DataFrame:
    """The student's runs beside the committed ones, one row per cell ``by`` that the student ran.

    Columns (metric ×100): ``yours`` (the student's values, in seed order), ``yours mean``, ``committed``
    (mean over the committed seeds), ``min`` and ``max`` (their spread), ``n`` (committed seeds; 0 where
    the committed results lack the cell) and ``inside`` (the student's mean lies within [min, max]).
    A ``label`` column (``analysis.method_label``) is added to either frame when missing.
    """
    from .analysis import method_label, summarize

    by = list(by)

    def keyed(df: pd.DataFrame) -> pd.DataFrame:  # cells as hashable keys: lists -> tuples, None -> "—"
        if "label" in by and "label" not in df:
            df = df.assign(label=df.apply(method_label, axis=1))
        return df.assign(**{c: df[c].map(_cell_key) for c in by})

    user, committed = keyed(user), keyed(committed)
    ref = summarize(committed, by, metric, extra=()).set_index(by)  # mean, std, n of metric ×100
    spread = committed.groupby(by, sort=False)[metric]
    ref["min"], ref["max"] = 100 * spread.min(), 100 * spread.max()
    yours = user.sort_values("seed").groupby(by, sort=False)[metric]
    out = pd.DataFrame({"yours": yours.agg(lambda x: ", ".join(f"{100 * v:.1f}" for v in x)),
                        "yours mean": 100 * yours.mean()})
    out = out.join(ref[["mean", "min", "max", "n"]].rename(columns={"mean": "committed"}))
    out["n"] = out["n"].fillna(0).astype(int)
    out["inside"] = (out["yours mean"] >= out["min"]) & (out["yours mean"] <= out["max"])
    return out


def _cell_key(v: Any) -> Any:
    if isinstance(v, (list, tuple)):
        return tuple(v)
    return "—" if v is None or (isinstance(v, float) and v != v) else v


#: a run of seconds on a CPU: the quick scale cut further (the exercises' solutions train with it)
TINY = dict(scale="quick", limit_train=32, limit_dev=32, max_length=32, epochs=2, device="cpu")


def tiny_runs(grid: Grid, **overrides: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Train ``grid`` at the ``TINY`` scale (``overrides`` win) into a fresh temporary folder with ``run_sweep``;
    return ``(results, {run key: trained model})``: the models stay in memory for the caller to inspect.

    Used by: the solutions of notebooks 13 and 14 (``notebooks/solutions/``).
    """
    from .trainer import train

    models: dict[str, Any] = {}

    def keep(run, **kwargs):
        result = train(run, **kwargs)
        models[run.key()] = result["_model"]
        return result

    folder = Path(tempfile.mkdtemp(prefix="dcft_edu_tiny_"))
    run_sweep("tiny", grid, folder, train_fn=keep, log=lambda m: None, **{**TINY, **overrides})
    return load_results(folder / "tiny"), models
