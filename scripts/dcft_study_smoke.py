"""Smoke test of the DCFT question's grids (docs/dcft_question_protocol.md): the first cell of each, timed.

    PYTHONPATH=$PWD DCFT_EDU_DATA=/work/shared/data python scripts/dcft_study_smoke.py

dcft_ref, dcft_lr and dcft_init at the quick scale; dcft_paper's first cell at the paper preset cut to 64
training rows and one epoch (its real length is for a GPU). Prints each run's seconds and its loss split.
"""
import time

from dcft_edu.experiments.recipes import GRIDS
from dcft_edu.experiments.sweep import grid_runs
from dcft_edu.experiments.trainer import train

cells = [(g, grid_runs(GRIDS[g], scale="quick")[0]) for g in ("dcft_ref", "dcft_lr", "dcft_init")]
cells.append(("dcft_paper", grid_runs(GRIDS["dcft_paper"], scale="paper", limit_train=64, limit_dev=32, epochs=1)[0]))
for name, run in cells:
    t0 = time.perf_counter()
    r = train(run, progress=False, log=lambda m: None)
    e = r["epochs"][-1]
    print(f"{name:10s} {run.task} {run.method} scale={run.scale} lr={run.lr:.2e} select_on={run.select_on} "
          f"max_len={run.max_length} cls_dropout={run.classifier_dropout} α/r={run.lora_alpha / run.r:.4g}: "
          f"{time.perf_counter() - t0:.0f} s, {r['optimizer_steps']} steps, train_task_loss={e['train_task_loss']:.4f} "
          f"train_penalty={e['train_penalty']:.4f} dev_penalty={e['dev_penalty']:.4f} holdout={r['holdout']} "
          f"{r['main_metric']}={r['best_metric']:.4f} selected={r['selected_metric']}", flush=True)
