"""``python -m dcft_edu.experiments.bench train``: training throughput and memory of every method on MiniLM.

Methods: head-only, our LoRA r=8, HF PEFT's LoRA r=8 on the same modules (the
peer; skipped when ``peft`` is not installed), DCFT k=8 (fast and conv),
Delta-LoRA r=8 and full fine-tuning — the settings of ``presets.make_run``.

- **Speed**: every method gets its own model in ONE process, and the methods
  take turns in interleaved rounds (a few optimizer steps each, on the same real
  RTE batches), so load from other processes hits all of them alike. Reported:
  the median samples/s over rounds, and each method's ratio to our LoRA.
- **Memory**: on a GPU, ``torch.cuda.max_memory_allocated`` per method. On a
  CPU there is no per-tensor counter, so each method runs in a fresh
  subprocess and we report its peak RSS growth during training (peak RSS minus
  RSS after the model and data were loaded): activations, gradients and
  optimizer state.

Its results are drawn by ``dcft_edu.figures.main_results.bench_train_frame`` (notebook 09).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

import torch

METHODS = ("head", "lora", "peft_lora", "dcft_fast", "dcft_conv", "delta_lora", "full")
LABELS = {
    "head": "head only", "lora": "LoRA r=8 (ours)", "peft_lora": "LoRA r=8 (HF PEFT)",
    "dcft_fast": "DCFT k=8 fast", "dcft_conv": "DCFT k=8 conv", "delta_lora": "Delta-LoRA r=8", "full": "full FT",
}


def _have_peft() -> bool:
    try:
        import peft  # noqa: F401

        return True
    except Exception:
        return False


def build(method: str, task: str, seed: int, device: torch.device):
    """(model, optimizer) for one benchmarked method."""
    from .models import load_model
    from .presets import make_run
    from transformers import set_seed

    from .trainer import make_optimizer, prepare_model

    set_seed(seed)
    ours = {"dcft_fast": "dcft", "dcft_conv": "dcft", "peft_lora": "lora"}.get(method, method)
    run = make_run(task, ours, scale="quick", seed=seed, **({"impl": "conv"} if method == "dcft_conv" else {}))
    model, _ = load_model(task, run.model)
    if method == "peft_lora":
        import peft

        from ..config import BERT_ALL_LINEAR

        cfg = peft.LoraConfig(r=run.r, lora_alpha=run.lora_alpha, lora_dropout=0.0,
                              target_modules=list(BERT_ALL_LINEAR), modules_to_save=["classifier"])
        model = peft.get_peft_model(model, cfg)
        for n, p in model.named_parameters():  # train the pooler too, like ours
            if ".pooler." in n:
                p.requires_grad_(True)
    else:
        model = prepare_model(model, run)
    model.to(device).train()
    optimizer = make_optimizer(model, run)
    if method == "delta_lora":  # the W update runs inside optimizer.step(), as in training
        from ..delta_lora import register_delta_lora_hook

        register_delta_lora_hook(optimizer, model)
    return model, optimizer


def batches(task: str, n: int, batch_size: int, max_length: int, device: torch.device) -> list[dict]:
    """The first n real training batches, padded to a fixed length (same shapes for every method)."""
    from transformers import AutoTokenizer

    from .data import load_glue
    from .models import resolve_model_name

    tok = AutoTokenizer.from_pretrained(resolve_model_name(None))
    ds = load_glue(task, "train", limit=n * batch_size)
    cols = [c for c in ("sentence1", "sentence2") if c in ds.column_names] or ["sentence"]
    out = []
    for i in range(n):
        rows = ds[i * batch_size:(i + 1) * batch_size]
        enc = tok(*[rows[c] for c in cols], truncation=True, padding="max_length", max_length=max_length,
                  return_tensors="pt")
        enc["labels"] = torch.tensor(rows["label"])
        out.append({k: v.to(device) for k, v in enc.items()})
    return out


def _steps(model, opt, data: list[dict]) -> float:
    cuda = data[0]["input_ids"].is_cuda
    t0 = time.perf_counter()
    for b in data:
        # as in training (dcft_edu.experiments.trainer): bf16 autocast on a GPU, float32 on a CPU
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _status_mb(field: str) -> float:
    """A memory line of /proc/self/status (VmRSS: now, VmHWM: peak since the last reset) in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    # Linux: writing 5 to clear_refs resets the peak-RSS counter (VmHWM) to the current RSS
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def memory_child(method: str, task: str, seed: int, steps: int, batch_size: int, max_length: int) -> dict:
    """Run in a fresh process: peak RSS growth while training ``method`` for ``steps`` steps."""
    device = torch.device("cpu")
    data = batches(task, steps, batch_size, max_length, device)
    model, opt = build(method, task, seed, device)
    import gc

    gc.collect()
    _reset_peak_rss()
    base = _status_mb("VmRSS")
    _steps(model, opt, data)
    peak = _status_mb("VmHWM")
    return {"method": method, "rss_after_load_mb": base, "peak_rss_mb": peak, "train_growth_mb": peak - base}


def run_train(args: argparse.Namespace) -> int:
    from .runinfo import provenance, resolve_device

    if args.child:
        print(json.dumps(memory_child(args.child, args.task, args.seed, args.steps, args.batch_size, args.max_length)))
        return 0
    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = resolve_device(args.device)
    methods = [m for m in METHODS if m != "peft_lora" or _have_peft()]
    data = batches(args.task, args.steps, args.batch_size, args.max_length, device)
    t_start = time.perf_counter()
    built = {m: build(m, args.task, args.seed, device) for m in methods}
    mem: dict[str, float] = {}
    if device.type == "cuda":
        for m in methods:
            torch.cuda.reset_peak_memory_stats(device)
            _steps(*built[m], data[:2])
            mem[m] = torch.cuda.max_memory_allocated(device) / 2**20
    for m in methods:  # warm-up
        _steps(*built[m], data[:1])
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.rounds):
        for m in methods:
            times[m].append(_steps(*built[m], data))
    del built
    if device.type != "cuda":
        for m in methods:
            cmd = [sys.executable, "-m", "dcft_edu.experiments.bench", "train", "--child", m, "--task", args.task,
                   "--steps", str(min(args.steps, 4)), "--batch-size", str(args.batch_size),
                   "--max-length", str(args.max_length), "--seed", str(args.seed)]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            mem[m] = json.loads(out)["train_growth_mb"]
    n = args.steps * args.batch_size
    sps = {m: n / statistics.median(times[m]) for m in methods}
    mem_kind = "CUDA max allocated (MiB)" if device.type == "cuda" else "peak RSS growth in training (MiB)"
    info = provenance(device, "bench", args.seed)
    print(f"\nbench train: {args.task.upper()}, batch {args.batch_size} x {args.max_length} tokens, "
          f"{args.steps} steps x {args.rounds} interleaved rounds, median")
    print(f"device: {info['device']} | torch {info['versions']['torch']} | "
          f"transformers {info['versions']['transformers']} | threads {torch.get_num_threads()}\n")
    print(f"{'method':22s} {'samples/s':>10s} {'vs LoRA':>8s} {mem_kind:>34s} {'vs LoRA':>8s}")
    for m in methods:
        print(f"{LABELS[m]:22s} {sps[m]:10.1f} {sps[m] / sps['lora']:8.2f} {mem[m]:34.1f} "
              f"{mem[m] / mem['lora'] if mem['lora'] else float('nan'):8.2f}")
    checks = [("DCFT fast within 10% of our LoRA's speed", sps["dcft_fast"] >= 0.9 * sps["lora"]),
              ("Delta-LoRA within 10% of our LoRA's speed", sps["delta_lora"] >= 0.9 * sps["lora"]),
              ("Delta-LoRA peak memory within 5% of LoRA's", abs(mem["delta_lora"] - mem["lora"]) <= 0.05 * mem["lora"])]
    if "peft_lora" in sps:
        checks.insert(0, ("our LoRA at least as fast as HF PEFT's", sps["lora"] >= sps["peft_lora"]))
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    print(f"(wall time {time.perf_counter() - t_start:.0f} s)")
    if args.out:
        from .runinfo import atomic_write_json

        atomic_write_json(args.out, {"samples_per_s": sps, "memory_mb": mem, "memory_kind": mem_kind,
                                     "times_s": times, "settings": {k: v for k, v in vars(args).items() if k != "func"},
                                     "checks": {l: ok for l, ok in checks}, **info})
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="training samples/s and memory of every method on MiniLM",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="rte", help="GLUE task whose first batches are used")
    p.add_argument("--steps", type=int, default=4, help="optimizer steps per method per round")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median reported)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="also write the numbers as JSON here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.set_defaults(func=run_train)
