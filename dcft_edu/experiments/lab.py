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

import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import pandas as pd

from .presets import RunConfig
from .runinfo import RESULTS_ENV, is_quick, user_results_dir
from .recipes import LAB_GRIDS, LabGrid  # noqa: F401  (the lab grids are data, with the papers' grids)
from .sweep import Grid, grid_runs, load_results, run_sweep, run_sweeps

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
            log: Callable[[str], Any] = print, **kwargs: Any) -> pd.DataFrame:
    """Train notebook ``name``'s lab grid (``LAB_GRIDS``) and return its runs, one row per run
    (``load_results``'s columns, with ``sweep``).

    ``results_dir``: default ``user_results_dir()`` (a temporary folder in quick mode unless
    ``$DCFT_EDU_RESULTS`` is set). Runs already there are not retrained. ``kwargs`` go to ``run_sweeps``
    (``workers``, ``deadline``, ``train_fn``, ...).
    """
    scale, sweeps = lab_runs(name, reduced)
    if results_dir is None:
        quick_tmp = is_quick() and not os.environ.get(RESULTS_ENV)
        results_dir = Path(tempfile.gettempdir()) / "dcft_edu_quick_results" if quick_tmp else user_results_dir()
    results_dir = Path(results_dir)
    log(f"lab {name!r} ({LAB_GRIDS[name].notebook}): {sum(map(len, sweeps.values()))} runs at scale {scale!r} "
        f"into {results_dir}")
    paths = run_sweeps(list(sweeps.items()), results_dir, scale=scale, log=log, **kwargs)
    files = {str(p) for ps in paths.values() for p in ps if p.exists()}  # a deadline may leave some unfinished
    df = pd.concat([load_results(results_dir / sweep) for sweep in sweeps], ignore_index=True)
    return df[df["file"].isin(files)].reset_index(drop=True) if not df.empty else df


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
