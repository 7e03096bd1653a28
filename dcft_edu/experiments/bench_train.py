"""``python -m dcft_edu.experiments.bench train``: training throughput and memory of every method.

Methods: head-only, our LoRA r=1 and r=8, HF PEFT's LoRA r=8 on the same
modules (the peer; skipped when ``peft`` is not installed), DCFT k=8 (fast,
conv and dense), Delta-LoRA r=8 and full fine-tuning — the settings of
``presets.make_run``. ``--methods`` picks a subset (LoRA r=8 always runs: the
ratios are to it).

Backbones (``--backbone``): ``minilm`` (default) is the packaged pretrained
MiniLM-L6 on the task's real first batches. ``deberta-v3-base`` and
``roberta-base`` are the papers' backbones (DCFT's and Delta-LoRA's) built from
their configs with RANDOM weights and fed random token ids: timing needs the
shapes, not the weights, and nothing is downloaded. Besides samples/s the
record gives the time of one epoch of each GLUE task at its full training size
(``GLUE_TRAIN_SIZES``) at this batch shape.

``--compile`` wraps every model in ``torch.compile`` (compiled during the
warm-up step, which is not timed; its wall time is reported).

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

METHODS = ("head", "lora", "lora_r1", "peft_lora", "dcft_fast", "dcft_conv", "dcft_dense", "delta_lora", "full")
LABELS = {
    "head": "head only", "lora": "LoRA r=8 (ours)", "lora_r1": "LoRA r=1 (ours)", "peft_lora": "LoRA r=8 (HF PEFT)",
    "dcft_fast": "DCFT k=8 fast", "dcft_conv": "DCFT k=8 conv", "dcft_dense": "DCFT k=8 dense",
    "delta_lora": "Delta-LoRA r=8", "full": "full FT",
}


def _have_peft() -> bool:
    try:
        import peft  # noqa: F401

        return True
    except Exception:
        return False


def backbone_config(backbone: str):
    """The config of a paper backbone, written out in ``models`` (no download)."""
    from . import models

    configs = {"deberta-v3-base": models.deberta_v3_base_config, "roberta-base": models.roberta_base_config}
    if backbone not in configs:
        raise ValueError(f"unknown backbone {backbone!r}: expected minilm or one of {', '.join(configs)}")
    return configs[backbone]()


def backbone_model(backbone: str, task: str):
    """A RANDOM ``*ForSequenceClassification`` model of a paper backbone, from its config (no download)."""
    from transformers import AutoModelForSequenceClassification

    from .data import get_task

    config = backbone_config(backbone)
    config.num_labels = get_task(task).num_labels
    return AutoModelForSequenceClassification.from_config(config)


def bench_run(method: str, task: str, seed: int = 0):
    """The ``RunConfig`` a benchmarked method trains with (``presets.make_run`` at the quick scale)."""
    from .presets import make_run

    ours = {"dcft_fast": "dcft", "dcft_conv": "dcft", "dcft_dense": "dcft", "peft_lora": "lora",
            "lora_r1": "lora"}.get(method, method)
    extra = {"dcft_conv": {"impl": "conv"}, "dcft_dense": {"impl": "dense"}, "lora_r1": {"r": 1}}.get(method, {})
    return make_run(task, ours, scale="quick", seed=seed, **extra)


def build(method: str, task: str, seed: int, device: torch.device, backbone: str = "minilm", compile: bool = False):
    """(model, optimizer) for one benchmarked method; the model is ``torch.compile``-d if asked."""
    from .models import load_model
    from transformers import set_seed

    from ..inject import find_target_modules
    from .fit import prepare, prepare_model

    set_seed(seed)
    run = bench_run(method, task, seed)
    model = load_model(task, run.model)[0] if backbone == "minilm" else backbone_model(backbone, task)
    if method == "peft_lora":
        import peft

        # the very modules our LoRA adapts, by full name (BERT's, DeBERTa's and RoBERTa's names differ)
        targets = find_target_modules(model, run.adapter_config())
        cfg = peft.LoraConfig(r=run.r, lora_alpha=run.lora_alpha, lora_dropout=0.0,
                              target_modules=targets, modules_to_save=["classifier"])
        model = peft.get_peft_model(model, cfg)
        for n, p in model.named_parameters():  # train the pooler too, like ours
            if ".pooler." in n:
                p.requires_grad_(True)
    else:
        model = prepare_model(model, run)
    model.to(device).train()
    # the optimizer and step hooks of training (Delta-LoRA's W update runs inside optimizer.step()); no schedule
    optimizer = prepare(model, run).optimizer
    if compile:
        model = torch.compile(model)
    return model, optimizer


def batches(task: str, n: int, batch_size: int, max_length: int, device: torch.device,
            backbone: str = "minilm") -> list[dict]:
    """The first n real training batches, padded to a fixed length (same shapes for every method).

    For a random-weight paper backbone: n batches of random token ids and labels, no padding.
    """
    if backbone != "minilm":
        from .data import get_task

        g = torch.Generator().manual_seed(0)
        num_labels, vocab = get_task(task).num_labels, backbone_config(backbone).vocab_size
        out = []
        for _ in range(n):
            # ids from 5 up: clear of the special tokens (pad, cls, sep, …) of both vocabularies
            ids = torch.randint(5, vocab, (batch_size, max_length), generator=g)
            labels = (torch.randn(batch_size, generator=g) if num_labels == 1
                      else torch.randint(0, num_labels, (batch_size,), generator=g))
            out.append({k: v.to(device) for k, v in
                        {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}.items()})
        return out
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


def train_steps(model, opt, data: list[dict]) -> float:
    """Seconds for one optimizer step per batch of ``data`` on ``(model, opt)`` from ``build`` (the public timing
    step of the benchmark; ``figures.main_results.measure_train_speed`` runs it too)."""
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


def memory_child(args: argparse.Namespace) -> dict:
    """Run in a fresh process: peak RSS growth while training ``args.child`` for a few steps."""
    device = torch.device("cpu")
    data = batches(args.task, min(args.steps, 4), args.batch_size, args.max_length, device, args.backbone)
    model, opt = build(args.child, args.task, args.seed, device, args.backbone, args.compile)
    import gc

    gc.collect()
    _reset_peak_rss()
    base = _status_mb("VmRSS")
    train_steps(model, opt, data)
    peak = _status_mb("VmHWM")
    return {"method": args.child, "rss_after_load_mb": base, "peak_rss_mb": peak, "train_growth_mb": peak - base}


#: GLUE training-set sizes, the data of one epoch at the papers' scale (time per epoch = size ÷ samples/s)
GLUE_TRAIN_SIZES = {"cola": 8551, "sst2": 67349, "mrpc": 3668, "stsb": 5749, "rte": 2490, "qnli": 104743}
#: max_length of each task in DCFT's official DeBERTa-v3-base scripts (docs/method_notes.md §1)
PAPER_MAX_LENGTH = {"cola": 64, "sst2": 128, "mrpc": 320, "stsb": 128, "rte": 320, "qnli": 512}


def run_train(args: argparse.Namespace) -> int:
    from .runinfo import provenance, resolve_device, timing_env, timing_env_text

    if args.child:
        print(json.dumps(memory_child(args)))
        return 0
    torch.set_num_threads(args.threads or torch.get_num_threads())
    device = resolve_device(args.device)
    methods = [m for m in METHODS if (m != "peft_lora" or _have_peft()) and (not args.methods or m in args.methods
                                                                              or m == "lora")]
    data = batches(args.task, args.steps, args.batch_size, args.max_length, device, args.backbone)
    t_start = time.perf_counter()
    built = {m: build(m, args.task, args.seed, device, args.backbone, args.compile) for m in methods}
    mem: dict[str, float] = {}
    if device.type == "cuda":
        for m in methods:
            torch.cuda.reset_peak_memory_stats(device)
            train_steps(*built[m], data[:2])
            mem[m] = torch.cuda.max_memory_allocated(device) / 2**20
    warmup_s = {m: sum(train_steps(*built[m], data[:1]) for _ in range(args.warmup)) for m in methods}  # compiles, if asked
    times: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(args.rounds):
        for m in methods:
            times[m].append(train_steps(*built[m], data))
    del built
    if device.type != "cuda" and not args.no_memory:
        for m in methods:
            cmd = [sys.executable, "-m", "dcft_edu.experiments.bench", "train", "--child", m, "--task", args.task,
                   "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--max-length",
                   str(args.max_length), "--seed", str(args.seed), "--backbone", args.backbone]
            out = subprocess.run(cmd + (["--compile"] if args.compile else []), capture_output=True, text=True,
                                 check=True).stdout.strip().splitlines()[-1]
            mem[m] = json.loads(out)["train_growth_mb"]
    n = args.steps * args.batch_size
    sps = {m: n / statistics.median(times[m]) for m in methods}
    # one epoch of each task at its full GLUE size, at this batch shape
    epoch_s = {m: {t: size / sps[m] for t, size in GLUE_TRAIN_SIZES.items()} for m in methods}
    mem_kind = "CUDA max allocated (MiB)" if device.type == "cuda" else "peak RSS growth in training (MiB)"
    info = provenance(device, "bench", args.seed)
    print(f"\nbench train: {args.backbone} ({'pretrained' if args.backbone == 'minilm' else 'random weights'}), "
          f"{args.task.upper()}, batch {args.batch_size} x {args.max_length} tokens, {args.steps} steps x "
          f"{args.rounds} interleaved rounds after {args.warmup} warm-up, median{', torch.compile' if args.compile else ''}")
    print(f"device: {info['device']} | torch {info['versions']['torch']} | "
          f"transformers {info['versions']['transformers']} | threads {torch.get_num_threads()}"
          + timing_env_text() + "\n")
    tasks = [t for t, L in PAPER_MAX_LENGTH.items() if L == args.max_length] or list(GLUE_TRAIN_SIZES)
    print(f"{'method':22s} {'samples/s':>10s} {'vs LoRA':>8s} {mem_kind:>34s} {'vs LoRA':>8s}  "
          + " ".join(f"{t + ' epoch s':>14s}" for t in tasks))
    for m in methods:
        mem_ratio = mem[m] / mem["lora"] if mem.get("lora") else float("nan")
        print(f"{LABELS[m]:22s} {sps[m]:10.2f} {sps[m] / sps['lora']:8.2f} {mem.get(m, float('nan')):34.1f} "
              f"{mem_ratio:8.2f}  " + " ".join(f"{epoch_s[m][t]:14.0f}" for t in tasks))
    checks = []
    if "dcft_fast" in sps:
        checks.append(("DCFT fast at least as fast as our LoRA r=8", sps["dcft_fast"] >= sps["lora"]))
    if "delta_lora" in sps:
        checks.append(("Delta-LoRA ≥ 0.95× our LoRA r=8's speed", sps["delta_lora"] >= 0.95 * sps["lora"]))
        if mem:
            checks.append(("Delta-LoRA peak memory ≤ 1.02× LoRA r=8's", mem["delta_lora"] <= 1.02 * mem["lora"]))
    if "peft_lora" in sps:
        checks.insert(0, ("our LoRA at least as fast as HF PEFT's", sps["lora"] >= sps["peft_lora"]))
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    wall = time.perf_counter() - t_start
    print(f"(wall time {wall:.0f} s; warm-up step{', with compilation,' if args.compile else ''} "
          f"{min(warmup_s.values()):.1f}–{max(warmup_s.values()):.1f} s per method)")
    if args.out:
        from .runinfo import atomic_write_json

        atomic_write_json(args.out, {"samples_per_s": sps, "memory_mb": mem, "memory_kind": mem_kind,
                                     "epoch_s": epoch_s, "paper_max_length": PAPER_MAX_LENGTH,
                                     "times_s": times, "warmup_s": warmup_s, "wall_time_s": wall,
                                     "settings": {**{k: v for k, v in vars(args).items() if k != "func"},
                                                  "env": timing_env()},
                                     "checks": {l: ok for l, ok in checks}, **info})
    return 0


def add_parser(sub) -> None:
    from .cli import device_arg, int_at_least  # noqa: F401
    from .helptext import RawDefaultsHelpFormatter

    p = sub.add_parser("train", help="training samples/s and memory of every method (MiniLM or a paper backbone)",
                       description=__doc__, formatter_class=RawDefaultsHelpFormatter)
    p.add_argument("--backbone", default="minilm", choices=("minilm", "deberta-v3-base", "roberta-base"),
                   help="minilm: pretrained, real batches (default); the others: random weights and token ids")
    p.add_argument("--methods", nargs="+", choices=METHODS, help="a subset of the methods (LoRA r=8 always runs)")
    p.add_argument("--task", default="rte", help="GLUE task whose first batches (or label count) are used")
    p.add_argument("--steps", type=int_at_least(1), default=4, help="optimizer steps per method per round")
    p.add_argument("--rounds", type=int_at_least(1), default=3, help="interleaved rounds (median reported)")
    p.add_argument("--warmup", type=int_at_least(0), default=1, help="untimed warm-up steps per method (default 1)")
    p.add_argument("--batch-size", type=int_at_least(1), default=16, help="rows per optimizer step")
    p.add_argument("--max-length", type=int_at_least(1), default=128, help="tokens per row")
    p.add_argument("--compile", action="store_true", help="torch.compile every model (compiled in the warm-up)")
    p.add_argument("--no-memory", action="store_true", help="CPU: skip the per-method memory subprocesses")
    p.add_argument("--seed", type=int, default=0, help="random seed (weights of the random backbones, adapters)")
    p.add_argument("--threads", type=int_at_least(0), default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", help="also write the numbers as JSON here")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.set_defaults(func=run_train)
