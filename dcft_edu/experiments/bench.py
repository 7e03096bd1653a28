"""Benchmarks, one subcommand each:  ``python -m dcft_edu.experiments.bench <subcommand> --help``.

``train`` (in ``bench_train.py``): training samples/s and memory of every
method on MiniLM, printed as ratios to our LoRA.

``ops`` (in ``bench_ops.py``): aten ops (kernels) per training step of every
method on MiniLM, counted by ``torch.profiler`` on the CPU, as ratios to LoRA r = 8:
a CPU proxy for the launch cost that bounds MiniLM's training steps on a GPU.

``adapters``: the time of ONE adapted layer's forward + backward at DeBERTa-base
shapes (768×768, 768→3072, 3072→768; ``--shapes minilm``: MiniLM's 384×384,
384→1536, 1536→384; ``both``) and 8,192 tokens, for the frozen layer
alone, LoRA r = 1 and r = 8, and DCFT (k = s = 8) computed matrix-free
("fast") or by building ΔW with ``conv_transpose2d`` on every call as the
official code does ("conv"). The base weight is frozen and the input needs no
gradient, so the backward pass computes only the adapter's gradients (the
frozen row is forward only: it has nothing to differentiate). The backward
pass starts from a fixed random upstream gradient, as inside a network.

Methods and shapes are timed in interleaved rounds (every cell once per round,
after a warm-up), and the median over rounds is reported, so that load from
other processes hits all cells alike.

Used in: ``09_efficiency`` (why the matrix-free form matters).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import torch
from torch import nn

from ..config import DCFTConfig, LoRAConfig
from ..dcft import DCFTLinear
from ..lora import LoRALinear
from .cli import device_arg, int_at_least, run_cli  # noqa: F401  (int_at_least: bench's parsers use it)
from .runinfo import atomic_write_json, device_name, provenance, timing_env, timing_env_text

#: DeBERTa-v3-base's adapted matrices, (in, out): attention (q, k, v, o), FFN in, FFN out
DEBERTA_BASE_SHAPES = ((768, 768), (768, 3072), (3072, 768))
#: MiniLM-L6's (all-MiniLM-L6-v2), the same three kinds
MINILM_SHAPES = ((384, 384), (384, 1536), (1536, 384))
SHAPE_SETS = {"deberta-v3-base": DEBERTA_BASE_SHAPES, "minilm": MINILM_SHAPES,
              "both": MINILM_SHAPES + DEBERTA_BASE_SHAPES}

#: label -> how to wrap a frozen base layer (None: the frozen layer alone)
ADAPTER_METHODS: dict[str, Callable[[nn.Linear], nn.Module] | None] = {
    "frozen layer (forward only)": None,
    "LoRA r=1": lambda base: LoRALinear(base, LoRAConfig(r=1, lora_alpha=16)),
    "LoRA r=8": lambda base: LoRALinear(base, LoRAConfig(r=8, lora_alpha=16)),
    "DCFT fast (k=8, s=8)": lambda base: DCFTLinear(base, DCFTConfig(kernel_size=8, impl="fast")),
    "DCFT conv (k=8, s=8)": lambda base: DCFTLinear(base, DCFTConfig(kernel_size=8, impl="conv")),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(layer: nn.Module, x: torch.Tensor, grad_out: torch.Tensor) -> float:
    """Seconds for one forward + backward of ``layer`` (forward only if nothing trains)."""
    params = [p for p in layer.parameters() if p.requires_grad]
    for p in params:
        p.grad = None
    _sync(x.device)
    t0 = time.perf_counter()
    y = layer(x)
    if params:
        y.backward(grad_out)
    _sync(x.device)
    return time.perf_counter() - t0


def time_adapters(dims, tokens: int, warmup: int, repeats: int, device: torch.device) -> dict[tuple[str, str], float]:
    """Median milliseconds of one forward + backward of each ``ADAPTER_METHODS`` layer at each (in, out) of
    ``dims``: ``{(method, "in→out"): ms}``. The methods take turns in interleaved rounds (``warmup`` untimed)."""
    torch.manual_seed(0)
    shapes = [f"{i}→{o}" for i, o in dims]
    # one frozen base per shape, shared by every method's wrapper (none of them merges)
    cells = {}  # (method, shape) -> (layer, x, grad_out)
    for (d_in, d_out), shape in zip(dims, shapes):
        base = nn.Linear(d_in, d_out, device=device).requires_grad_(False)
        x = torch.randn(tokens, d_in, device=device)  # no grad: only the adapter trains
        grad_out = torch.randn(tokens, d_out, device=device)
        for method, wrap in ADAPTER_METHODS.items():
            cells[method, shape] = (base if wrap is None else wrap(base), x, grad_out)
    times: dict[tuple[str, str], list[float]] = {key: [] for key in cells}
    for rnd in range(warmup + repeats):
        for key, (layer, x, grad_out) in cells.items():
            t = time_step(layer, x, grad_out)
            if rnd >= warmup:
                times[key].append(t)
    return {key: 1e3 * statistics.median(ts) for key, ts in times.items()}


def adapter_table(shapes: str = "deberta-v3-base", tokens: int = 256, repeats: int = 1, warmup: int = 1,
                  device: str = "cpu") -> "pd.DataFrame":  # noqa: F821
    """``bench adapters``' timing table as a DataFrame, ms per forward + backward: one row per method
    (``ADAPTER_METHODS``), one column per shape of ``SHAPE_SETS[shapes]`` ("in→out"). Nothing printed.

    Taught in: ``09_efficiency`` (the same numbers ``python -m dcft_edu.experiments.bench adapters`` prints).
    """
    import pandas as pd

    dims = SHAPE_SETS[shapes]
    ms = time_adapters(dims, tokens, warmup, repeats, torch.device(device))
    cols = [f"{i}→{o}" for i, o in dims]
    return pd.DataFrame([[ms[m, c] for c in cols] for m in ADAPTER_METHODS], index=list(ADAPTER_METHODS), columns=cols)


def run_adapters(args: argparse.Namespace) -> int:
    """``adapters`` subcommand: time one adapted layer per method and shape, print a table."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t_start = time.perf_counter()
    dims = SHAPE_SETS[args.shapes]
    shapes = [f"{i}→{o}" for i, o in dims]
    print(f"dcft_edu.experiments.bench adapters: one layer, forward + backward, {args.tokens} tokens, float32")
    print(f"torch {torch.__version__} | threads {torch.get_num_threads()} | device {device_name(device)}"
          + timing_env_text())
    print(f"{args.warmup} warm-up + {args.repeats} interleaved rounds, median | load average before: "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    ms = time_adapters(dims, args.tokens, args.warmup, args.repeats, device)

    w = max(len(m) for m in ADAPTER_METHODS) + 2
    print()
    print("ms per forward+backward".ljust(w) + "".join(s.rjust(11) for s in shapes))
    for method in ADAPTER_METHODS:
        print(method.ljust(w) + "".join(f"{ms[method, s]:11.1f}" for s in shapes))

    fast, conv, lora1, lora8 = "DCFT fast (k=8, s=8)", "DCFT conv (k=8, s=8)", "LoRA r=1", "LoRA r=8"
    fast_vs_lora = {s: ms[fast, s] / ms[lora8, s] for s in shapes}
    fast_vs_lora1 = {s: ms[fast, s] / ms[lora1, s] for s in shapes}
    conv_vs_fast = {s: ms[conv, s] / ms[fast, s] for s in shapes}
    print()
    print("ratio".ljust(w) + "".join(s.rjust(11) for s in shapes))
    print("DCFT fast / LoRA r=8".ljust(w) + "".join(f"{fast_vs_lora[s]:11.2f}" for s in shapes))
    print("DCFT fast / LoRA r=1".ljust(w) + "".join(f"{fast_vs_lora1[s]:11.2f}" for s in shapes))
    print("DCFT conv / DCFT fast".ljust(w) + "".join(f"{conv_vs_fast[s]:11.2f}" for s in shapes))
    print()
    ok1 = all(v <= 1.10 for v in fast_vs_lora.values())
    print(f"{'PASS' if ok1 else 'FAIL'}  DCFT fast within 10% of LoRA r=8 on every shape "
          f"(max ratio {max(fast_vs_lora.values()):.2f} ≤ 1.10)")
    ok3 = all(v <= 1.0 for v in fast_vs_lora1.values())
    print(f"{'PASS' if ok3 else 'FAIL'}  DCFT fast no slower than LoRA r=1 on every shape "
          f"(max ratio {max(fast_vs_lora1.values()):.2f} ≤ 1.00)")
    # the FFN matrices (in ≠ out), where building ΔW costs a dense layer's worth of work
    big = [s for s, (d_in, d_out) in zip(shapes, dims) if d_in != d_out]
    ok2 = all(conv_vs_fast[s] >= 1.5 for s in big)
    print(f"{'PASS' if ok2 else 'FAIL'}  DCFT conv ≥ 1.5× DCFT fast on {' and '.join(big)} "
          f"(min ratio {min(conv_vs_fast[s] for s in big):.2f})")
    print("load average after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))
    if args.out:
        atomic_write_json(args.out, {
            "ms_per_step": {f"{m} | {s}": v for (m, s), v in ms.items()},
            "fast_vs_lora8": fast_vs_lora, "fast_vs_lora1": fast_vs_lora1, "conv_vs_fast": conv_vs_fast,
            "checks": {"fast within 10% of LoRA r=8": ok1, "conv >= 1.5x fast on the FFN shapes": ok2,
                       "fast no slower than LoRA r=1": ok3},
            "settings": {"tokens": args.tokens, "shapes": args.shapes, "repeats": args.repeats, "warmup": args.warmup, "dtype": "float32",
                         "env": timing_env()},
            "wall_time_s": time.perf_counter() - t_start, **provenance(device, "bench", 0)})
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .helptext import DefaultsHelpFormatter

    parser = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("adapters", help="time one adapted layer (LoRA vs DCFT fast vs DCFT conv)",
                       formatter_class=DefaultsHelpFormatter)
    p.add_argument("--shapes", default="deberta-v3-base", choices=tuple(SHAPE_SETS),
                   help="whose matrices: deberta-v3-base (default; 768/3072), minilm (384/1536) or both")
    p.add_argument("--tokens", type=int_at_least(1), default=8192, help="tokens per batch (rows of x); default 8192")
    p.add_argument("--repeats", type=int_at_least(1), default=5, help="timed rounds; the median is reported (default 5)")
    p.add_argument("--warmup", type=int_at_least(0), default=1, help="untimed rounds first (default 1)")
    p.add_argument("--threads", type=int_at_least(1), default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--device", type=device_arg, default="cpu", help="cpu (default) or cuda")
    p.add_argument("--out", help="also write the numbers and their provenance as JSON here")
    p.set_defaults(func=run_adapters)

    from .bench_ops import add_parser as add_ops_parser
    from .bench_train import add_parser as add_train_parser

    add_train_parser(sub)  # "train": every method on MiniLM (dcft_edu/bench_train.py)
    add_ops_parser(sub)  # "ops": aten ops per training step, the CPU proxy for GPU launch cost (bench_ops.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "out", None) and not getattr(args, "child", None):  # the numbers must be writable before timing
        from pathlib import Path

        from .runinfo import writable_dir

        try:
            if Path(args.out).is_dir():
                raise ValueError(f"--out {args.out} is a folder: give a file name, e.g. {Path(args.out) / 'bench.json'}")
            writable_dir(Path(args.out).parent, "--out")
        except ValueError as e:
            parser.error(str(e))
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
