"""``python -m dcft_edu.experiments.bench ops``: aten ops per training step, a CPU proxy for GPU launch cost.

At batch 32 MiniLM needs about a millisecond of GPU arithmetic per training step: on a GPU its runs are
bound by kernel launches and the Python that issues them, not by the arithmetic. Almost every op a step
dispatches is a kernel launch there (or a host sync), so the number of ops per step, counted by
``torch.profiler`` on the CPU, tells how the methods' host work per step compares on a GPU without one.
The count is exact, not a timing: a loaded machine gives the same numbers.

One step is counted as ``dcft_edu.experiments.trainer`` runs it (``train_step``): the forward pass,
DCFT's orthogonal penalty γ·R, the loss read-outs (``.item()``), backward, gradient clipping and the
AdamW step, with Delta-LoRA's W update in its step hook; on the packaged MiniLM with every method's run
settings (``presets.make_run``: all-linear targets, the task's γ), on a batch of random token ids (the
count does not depend on the text). Per method and per phase of the step it reports:

- **kernels**: the innermost aten ops that launch something (an op with such an op inside counts as
  those it holds), so views and aliases (``OpOverload.is_view``: ``view``, ``t``, ``expand``, ``detach``,
  a ``.to`` that returns its input …) and bare allocations (``empty``, ``empty_strided`` …) count
  nothing. A ``_foreach_*`` op counts once: on a GPU it is one multi-tensor kernel, where a CPU runs a
  loop of per-tensor ops inside it. ``.item()`` (``_local_scalar_dense``) counts, a device sync on a
  GPU, except AdamW's reads of its step counters, which torch keeps on the CPU.
- **aten events**: every aten op the profiler records, composite ops and views included (a coarser count).

AdamW and the clipping run in their ``foreach`` form, as torch runs them on a GPU; ``--cpu-defaults``
counts torch's CPU defaults instead (per-tensor loops: what a CPU run executes). ``--autocast`` counts
under CPU bf16 autocast, as a GPU trains (the casts it adds included). Ratios are to LoRA r = 8.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch import nn

#: the methods counted, as ``bench train`` names them (plus PEFT's LoKr, the DCFT question's control arm)
METHODS = ("head", "lora_r1", "lora", "dcft_fast", "dcft_conv", "dcft_dense", "delta_lora", "lokr", "full")
LABELS = {"head": "head only", "lora_r1": "LoRA r=1", "lora": "LoRA r=8", "dcft_fast": "DCFT k=8 fast",
          "dcft_conv": "DCFT k=8 conv", "dcft_dense": "DCFT k=8 dense", "delta_lora": "Delta-LoRA r=8",
          "lokr": "LoKr k=8 (PEFT)", "full": "full FT"}
#: the step's phases, in order (``train_step`` marks each with a ``record_function`` range)
PHASES = ("forward", "penalty", "read-outs", "backward", "clip", "optimizer")
_PREFIX = "step: "
#: ops that allocate or change metadata only (their schemas are not views, but they launch no kernel)
ALLOCATIONS = frozenset({"empty", "empty_strided", "empty_like", "new_empty", "new_empty_strided", "resize_",
                         "scalar_tensor", "set_", "lift_fresh", "_unsafe_view", "detach_", "as_strided_"})


@functools.lru_cache(maxsize=None)
def launches(name: str) -> bool:
    """Whether a leaf aten op (``"aten::mm"``) launches a kernel: not a view or alias, not a bare allocation."""
    op = name.removeprefix("aten::")
    if op in ALLOCATIONS:
        return False
    packet = getattr(torch.ops.aten, op, None)
    if packet is None:  # not an aten op torch knows by this name: count it
        return True
    return not any(getattr(packet, o).is_view for o in packet.overloads())


@dataclass
class OpCount:
    """Ops of one profiled region, per phase (``""``: outside any ``step:`` range)."""

    kernels: Counter = field(default_factory=Counter)
    aten_events: Counter = field(default_factory=Counter)
    by_op: Counter = field(default_factory=Counter)  # kernel-counted op names, all phases
    aten_by_op: Counter = field(default_factory=Counter)  # every aten event's name, all phases

    @property
    def total_kernels(self) -> int:
        return sum(self.kernels.values())

    @property
    def total_aten_events(self) -> int:
        return sum(self.aten_events.values())


def classify(events) -> OpCount:
    """Count a profiler's events (``prof.events()``) as ``OpCount`` (the rule: the module docstring).

    An aten op counts as one kernel if no op inside it does (so ``mm`` counts once, not the views it
    makes of its inputs, and ``linear`` counts what it calls); a ``_foreach_*`` op counts once. AdamW's
    ``.item()`` reads of its step counters are not counted: torch keeps those counters on the CPU even
    when training on a GPU, so they are no device syncs.
    """
    count = OpCount()

    def event(e, phase: str) -> bool:  # the aten totals; True for an aten op
        if e.name.startswith("aten::"):
            count.aten_events[phase] += 1
            count.aten_by_op[e.name] += 1
            return True
        return False

    def aten_only(e, phase: str) -> None:  # the aten totals inside a foreach op
        for c in e.cpu_children:
            event(c, phase)
            aten_only(c, phase)

    def walk(e, phase: str) -> int:
        if e.name.startswith(_PREFIX):
            phase = e.name[len(_PREFIX):]
        is_aten = event(e, phase)
        if e.name.startswith("aten::_foreach_"):
            aten_only(e, phase)
            inner = 0
        else:
            inner = sum(walk(c, phase) for c in e.cpu_children)
            if inner or not is_aten or not launches(e.name):
                return inner
            if phase == "optimizer" and e.name in ("aten::item", "aten::_local_scalar_dense"):
                return 0
        count.kernels[phase] += 1
        count.by_op[e.name] += 1
        return 1

    for e in events:
        if e.cpu_parent is None:
            walk(e, "")
    return count


def count_ops(fn: Callable[[], object]) -> OpCount:
    """Run ``fn()`` once under ``torch.profiler`` (CPU activity) and count its ops (``classify``)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    return classify(prof.events())


def phase(name: str):
    """A ``record_function`` range that ``classify`` attributes ops to (``name`` one of ``PHASES``)."""
    return torch.profiler.record_function(_PREFIX + name)


def train_step(model: nn.Module, batch: dict, optimizer: torch.optim.Optimizer, orth_gamma: float = 0.0,
               max_grad_norm: float = 1.0, foreach: Optional[bool] = True) -> float:
    """One optimizer step exactly as the body of ``trainer.train``'s loop runs it (one process, no
    accumulation), each phase in its ``record_function`` range. Returns the loss value.

    ``foreach`` is passed to the clipping and set in the optimizer's groups (``None``: torch's default).
    """
    from ..regularizers import orthogonal_penalty

    device = next(model.parameters()).device
    with phase("forward"):
        task_loss = model(**batch).loss
    with phase("penalty"):
        # γ · R(A, B), or a zero for a method without the penalty (trainer.train's penalty())
        reg = orth_gamma * orthogonal_penalty(model) if orth_gamma > 0 else torch.zeros((), device=device)
        loss = task_loss + reg
    with phase("read-outs"):
        loss_value = task_loss.detach().item() + reg.item()
        reg.item()  # the running penalty's read-out
    with phase("backward"):
        (loss / 1).backward()  # / grad_accum
    with phase("clip"):
        params = [p for p in model.parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm, foreach=foreach)
        if not torch.isfinite(norm):
            raise FloatingPointError(f"gradient norm {norm.item()}")
    with phase("optimizer"):
        for g in optimizer.param_groups:
            g["foreach"] = foreach
        optimizer.step()  # Delta-LoRA: its W update runs in the step's post-hook
        optimizer.zero_grad(set_to_none=True)
    return loss_value


def random_batch(vocab_size: int, num_labels: int, batch_size: int, max_length: int, seed: int = 0) -> dict:
    """A batch of random token ids (from 5 up: clear of the special tokens), all attended, random labels."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab_size, (batch_size, max_length), generator=g)
    labels = (torch.randn(batch_size, generator=g) if num_labels == 1
              else torch.randint(0, num_labels, (batch_size,), generator=g))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def count_step(model: nn.Module, optimizer: torch.optim.Optimizer, batch: dict, orth_gamma: float = 0.0,
               warmup: int = 2, foreach: Optional[bool] = True, autocast: bool = False) -> OpCount:
    """Ops of one training step (``train_step``), counted after ``warmup`` steps (lazy state built,
    Delta-LoRA past its start step K)."""
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    model.train()
    for _ in range(warmup):
        with ctx():
            train_step(model, batch, optimizer, orth_gamma, foreach=foreach)

    def step():
        with ctx():
            train_step(model, batch, optimizer, orth_gamma, foreach=foreach)

    return count_ops(step)


def run_ops(args: argparse.Namespace) -> int:
    """``ops`` subcommand: count one training step per method, print the table and the ratios."""
    from ..delta_lora import delta_lora_layers
    from .bench_train import bench_run, build
    from .runinfo import atomic_write_json, provenance

    torch.set_num_threads(args.threads or torch.get_num_threads())
    t_start = time.perf_counter()
    device = torch.device("cpu")
    methods = [m for m in METHODS if not args.methods or m in args.methods or m == "lora"]
    if "lokr" in methods:
        from .lokr import peft_available

        if not peft_available():
            print("(LoKr left out: peft is not installed)")
            methods.remove("lokr")
    counts: dict[str, OpCount] = {}
    for m in methods:
        run = bench_run(m, args.task, args.seed)
        model, optimizer = build(m, args.task, args.seed, device)
        batch = random_batch(model.config.vocab_size, model.config.num_labels, args.batch_size, args.max_length,
                             args.seed)
        gamma = run.orth_gamma if run.method == "dcft" else 0.0
        counts[m] = count_step(model, optimizer, batch, gamma, warmup=args.warmup,
                               foreach=None if args.cpu_defaults else True, autocast=args.autocast)
        if m == "delta_lora":  # the W update must be in the counted step
            assert all(layer.steps_taken > layer.start_steps for _, layer in delta_lora_layers(model)), \
                "Delta-LoRA had not started its W updates: raise --warmup"
        del model, optimizer
    ref = counts["lora"]
    mode = ("torch's CPU defaults (per-tensor AdamW and clipping)" if args.cpu_defaults
            else "AdamW and clipping in their foreach form, as on a GPU") + (", bf16 autocast" if args.autocast else "")
    print(f"bench ops: ops per training step on MiniLM ({args.task.upper()} settings, batch {args.batch_size} x "
          f"{args.max_length} random token ids), torch.profiler on the CPU; {mode}\n")
    w = max(len(LABELS[m]) for m in methods) + 2
    print("kernels per step".ljust(w) + "".join(p.rjust(10) for p in PHASES) + "     total  ÷ LoRA r=8"
          + "  aten events  ÷ LoRA r=8")
    for m in methods:
        c = counts[m]
        print(LABELS[m].ljust(w) + "".join(f"{c.kernels[p]:10d}" for p in PHASES)
              + f"{c.total_kernels:10d}{c.total_kernels / ref.total_kernels:11.2f}"
              + f"{c.total_aten_events:13d}{c.total_aten_events / ref.total_aten_events:11.2f}")
    ratio = {m: counts[m].total_kernels / ref.total_kernels for m in methods}
    print()
    checks = {f"{LABELS[m]} ≤ 1.2× LoRA r=8's kernels per step": ratio[m] <= 1.2
              for m in ("dcft_fast", "dcft_dense") if m in ratio}
    for (label, ok), m in zip(checks.items(), [m for m in ("dcft_fast", "dcft_dense") if m in ratio]):
        print(f"{'PASS' if ok else 'FAIL'}  {label} ({ratio[m]:.2f})")
    if args.show_ops:
        for m in args.show_ops:
            print(f"\n{LABELS[m]}: kernel-counted ops, most frequent first")
            for name, n in counts[m].by_op.most_common():
                print(f"  {n:6d}  {name}")
    wall = time.perf_counter() - t_start
    print(f"(wall time {wall:.0f} s)")
    if args.out:
        atomic_write_json(args.out, {
            "kernels_per_step": {m: c.total_kernels for m, c in counts.items()},
            "aten_events_per_step": {m: c.total_aten_events for m, c in counts.items()},
            "kernels_by_phase": {m: {p: c.kernels[p] for p in PHASES} for m, c in counts.items()},
            "kernels_by_op": {m: dict(c.by_op.most_common()) for m, c in counts.items()},
            "kernel_ratio_to_lora8": ratio,
            "aten_event_ratio_to_lora8": {m: c.total_aten_events / ref.total_aten_events for m, c in counts.items()},
            "labels": {m: LABELS[m] for m in methods}, "checks": checks,
            "settings": {k: v for k, v in vars(args).items() if k != "func"}, "wall_time_s": wall,
            **provenance(device, "bench", args.seed)})
    return 0


def add_parser(sub) -> None:
    from .cli import device_arg, int_at_least  # noqa: F401
    from .helptext import RawDefaultsHelpFormatter

    p = sub.add_parser("ops", help="aten ops per training step of every method (a CPU proxy for GPU launch cost)",
                       description=__doc__, formatter_class=RawDefaultsHelpFormatter)
    p.add_argument("--methods", nargs="+", choices=METHODS, help="a subset (LoRA r=8 always runs: the reference)")
    p.add_argument("--task", default="rte", help="GLUE task whose run settings (labels, γ) are used (default rte)")
    p.add_argument("--batch-size", type=int_at_least(1), default=8, help="the count does not depend on it (default 8)")
    p.add_argument("--max-length", type=int_at_least(1), default=64, help="tokens per row (default 64)")
    p.add_argument("--warmup", type=int_at_least(0), default=2, help="uncounted steps first (default 2)")
    p.add_argument("--cpu-defaults", action="store_true",
                   help="count torch's CPU defaults (per-tensor AdamW and clipping) instead of the foreach form")
    p.add_argument("--autocast", action="store_true", help="count under CPU bf16 autocast, as a GPU trains")
    p.add_argument("--show-ops", nargs="+", choices=METHODS, default=[], help="also list these methods' ops by name")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=int_at_least(0), default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", help="also write the counts and their provenance as JSON here")
    p.set_defaults(func=run_ops)
