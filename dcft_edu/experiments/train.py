"""Command line: train one run and print (and optionally save) its result.

    python -m dcft_edu.experiments.train --task rte --method dcft --kernel-size 8 --preset cpu --seed 0
    torchrun --nproc-per-node 4 -m dcft_edu.experiments.train --task rte --method dcft --preset gpu --out r.json

Every option maps to a ``RunConfig`` field (``dcft_edu.experiments.presets``); unset options
take the preset's / task recipe's / method's default. The training loop itself
is ``dcft_edu.experiments.trainer.train``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional

from .helptext import DefaultsHelpFormatter, preset_epilog, preset_help
from .presets import METHODS, SCALES, make_run
from .runinfo import atomic_write_json, writable_dir
from .validate import check_device

TASK_CHOICES = ("cola", "sst2", "mrpc", "stsb", "rte", "qnli")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="python -m dcft_edu.experiments.train",
        description="Fine-tune the packaged MiniLM (or --model) on a GLUE task with one PEFT method.",
        formatter_class=DefaultsHelpFormatter, epilog=preset_epilog(),
    )
    g = ap.add_argument_group("what to run")
    g.add_argument("--task", required=True, type=str.lower, choices=TASK_CHOICES, help="GLUE task")
    g.add_argument("--method", required=True, choices=METHODS,
                   help="full fine-tuning, head-only (the floor), LoRA, DCFT or Delta-LoRA")
    g.add_argument("--preset", "--scale", dest="scale", choices=SCALES, default="quick",
                   help=preset_help())
    g.add_argument("--seed", type=int, default=0, help="random seed (model head, adapters, data order)")
    g.add_argument("--model", default=None, help="HF model id or folder (default: $DCFT_EDU_MODEL or packaged MiniLM)")
    g.add_argument("--device", default="auto", help="auto, cpu or cuda")
    o = ap.add_argument_group("optimisation (default: preset / task recipe)")
    o.add_argument("--lr", type=float, help="peak learning rate")
    o.add_argument("--epochs", type=int, help="training epochs")
    o.add_argument("--batch-size", type=int, help="examples per forward pass, all processes together (each of N takes 1/N)")
    o.add_argument("--grad-accum", type=int, help="forward passes per optimizer step")
    o.add_argument("--weight-decay", type=float, help="AdamW weight decay")
    o.add_argument("--max-length", type=int, help="max tokens per example")
    o.add_argument("--limit-train", type=int, help="use only the first N training examples")
    o.add_argument("--limit-dev", type=int, help="use only the first N dev examples")
    a = ap.add_argument_group("adapters (PEFT names)")
    a.add_argument("--r", type=int, help="LoRA rank / DCFT subspace rank")
    a.add_argument("--lora-alpha", type=float, help="scale numerator: scaling = lora_alpha / r")
    a.add_argument("--lora-dropout", type=float, help="LoRA dropout (refused by Delta-LoRA)")
    a.add_argument("--target-modules", nargs="+", help="module-name suffixes to adapt, or all-linear")
    a.add_argument("--layers", type=int, nargs="+", help="only these transformer blocks")
    a.add_argument("--kernel-size", type=int, help="DCFT kernel size k")
    a.add_argument("--stride", type=int, help="DCFT stride s <= k (default: s = k)")
    a.add_argument("--dcft-init", choices=("paper", "zero"), help="DCFT init: paper (all N(0, .02²)) or zero (ΔW = 0)")
    a.add_argument("--impl", choices=("fast", "conv"), help="DCFT forward: matrix-free or the conv_transpose2d reference")
    a.add_argument("--orth-gamma", type=float, help="γ of DCFT's orthogonal penalty (0 turns it off)")
    a.add_argument("--update-ratio", type=float, help="Delta-LoRA λ")
    a.add_argument("--start-steps", type=int, help="Delta-LoRA K (default: the paper's K fraction of all steps)")
    ap.add_argument("--out", help="write the result JSON here (atomically)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def main(argv: Optional[list[str]] = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    fields = {k: v for k, v in vars(args).items()
              if v is not None and k not in ("task", "method", "scale", "seed", "out", "no_progress")}
    if "target_modules" in fields and fields["target_modules"] == ["all-linear"]:
        fields["target_modules"] = "all-linear"
    try:
        run = make_run(args.task, args.method, scale=args.scale, seed=args.seed, **fields)
        check_device(run.device)  # --device cuda on a machine without CUDA: now, not after loading
        if args.out:
            if Path(args.out).is_dir():
                raise ValueError(f"--out {args.out} is a folder: give a file name, e.g. {Path(args.out) / 'result.json'}")
            writable_dir(Path(args.out).parent, "--out")
    except (ValueError, TypeError) as e:
        ap.error(str(e))
    from .trainer import is_main_process, strip_model, train

    result = strip_model(train(run, progress=not args.no_progress and sys.stderr.isatty()))
    if not is_main_process():  # several processes (torchrun, accelerate launch): rank 0 reports and writes
        return 0 if result["status"] == "ok" else 1
    if result["status"] == "diverged":
        if args.out:  # kept, marked as diverged, so the failure is on record; sweeps' tables leave it out
            atomic_write_json(args.out, result)
        at = result["diverged_at"]
        print(f"error: training diverged at epoch {at['epoch']}, optimizer step {at['step']} ({at['what']}) "
              f"with lr={run.lr:g}: no result. Lower --lr (e.g. --lr {run.lr / 10:g}).", file=sys.stderr)
        return 1
    summary = {k: result[k] for k in ("task", "method", "main_metric", "best_metric", "final_metric",
                                      "adapter_params", "trainable_params", "samples_per_s", "wall_time_s", "device")}
    print(json.dumps(summary, indent=2))
    if args.out:
        atomic_write_json(args.out, result)
        print(f"result written to {args.out}")
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
