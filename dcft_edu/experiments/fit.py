"""The training core every loop shares: what each method adds to training (``prepare``) and one epoch of it (``fit_epoch``).

``prepare(model, run)`` is the one place that knows the methods:

- ``prepare_model``: adapters injected (LoRA, DCFT, Delta-LoRA; PEFT's LoKr for ``lokr``), or the layers
  frozen / unfrozen (``head``, ``full``);
- ``make_optimizer``: AdamW over the trainable parameters, no weight decay on biases and norms;
- a linear warmup-then-decay schedule, when the loop gives its number of optimizer steps;
- Delta-LoRA's W update, a step post-hook on the optimizer (``register_delta_lora_hook``);
- the LoRA twin's scale jump at step K (``lora_scale_jump``, through ``AdapterLayer.jump_scale``);
- DCFT's γ · R(A, B), the orthogonal penalty added to the task loss (``Wiring.penalty``).

``fit_epoch`` runs one epoch of any of them: autocast (bf16 on a GPU), gradient accumulation, gradient
clipping, the divergence guard (a non-finite loss or gradient norm stops before it reaches the weights) and
the multi-process path (each rank trains on its rows of the global batch, DDP averages the gradients).
The GLUE trainer (``trainer.train``), E2E (``e2e.train_e2e``), the training benchmark (``bench_train``) and
the first-step probe (``probe``) all use these.
"""
from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
import torch.distributed as dist
from torch import nn

from ..config import DEFAULT_MODULES_TO_SAVE
from ..inject import adapter_layers, inject_adapters, train_heads


# ---- the methods -------------------------------------------------------------------

def prepare_model(model: nn.Module, run) -> nn.Module:
    """Inject adapters / freeze layers for ``run.method``."""
    cfg = run.adapter_config()
    if cfg is not None:
        return inject_adapters(model, cfg)
    if run.method == "lokr":  # PEFT's own LoKr layers on DCFT's modules (the control arm, ``lokr``)
        from .lokr import inject_lokr_for_run

        return inject_lokr_for_run(model, run)
    if run.method == "head":
        for p in model.parameters():
            p.requires_grad_(False)
        train_heads(model, DEFAULT_MODULES_TO_SAVE)
    elif run.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    return model


def make_optimizer(model: nn.Module, run) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and norms (HF convention)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": run.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=run.lr)


class ScaleJump:
    """LoRA whose scale jumps from s to (1+λ)·s at step K: Delta-LoRA's twin (docs/method_notes.md).

    ``step()`` after each real optimizer step; at step K (at once for K = 0) every adapter layer
    jumps through ``AdapterLayer.jump_scale(λ)``, which keeps the layer's output unchanged at that step.
    """

    def __init__(self, model: nn.Module, start: int, ratio: float):
        self.layers, self.start, self.ratio, self.n = [l for _, l in adapter_layers(model)], start, ratio, 0
        if start == 0:
            self.jump()

    def jump(self) -> None:
        for layer in self.layers:
            layer.jump_scale(self.ratio)

    def step(self) -> None:
        self.n += 1
        if self.n == self.start:
            self.jump()


@dataclass
class Wiring:
    """What a method adds to a plain training loop (``prepare``'s answer)."""

    optimizer: torch.optim.Optimizer
    scheduler: Optional[Any] = None  # linear warmup then decay; None when the loop gave no step count
    orth_gamma: float = 0.0  # γ of DCFT's orthogonal penalty (0: no penalty)
    model: Optional[nn.Module] = None
    step_hooks: list = field(default_factory=list)  # objects with .step(), called after each real optimizer step

    def penalty(self, device: Optional[torch.device] = None) -> torch.Tensor:
        """γ · R(A, B), the orthogonal penalty added to the task loss (a zero tensor for methods without it)."""
        if self.orth_gamma > 0:
            from ..regularizers import orthogonal_penalty

            return self.orth_gamma * orthogonal_penalty(self.model)
        return torch.zeros((), device=device)

    def step(self) -> None:
        """One real optimizer step: optimizer (and Delta-LoRA's W update, its post-hook), schedule, zero_grad,
        then the step hooks (the twin's scale jump)."""
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        for h in self.step_hooks:
            h.step()


def prepare(model: nn.Module, run, total_steps: Optional[int] = None) -> Wiring:
    """The optimizer, schedule, extra loss and step hooks of ``run.method`` for an already prepared ``model``
    (``prepare_model``; on its device). ``total_steps``: the run's optimizer steps, for the linear schedule
    (lr × t/warmup for t < warmup, then linear decay to 0 at the last step); None: no schedule (benchmarks)."""
    from transformers import get_linear_schedule_with_warmup

    optimizer = make_optimizer(model, run)
    scheduler = None if total_steps is None else get_linear_schedule_with_warmup(optimizer, run.warmup_steps,
                                                                                   total_steps)
    if run.method == "delta_lora":  # W ← W + λ·s·Δ(BA) inside every optimizer.step()
        from ..delta_lora import register_delta_lora_hook

        register_delta_lora_hook(optimizer, model)
    hooks = []
    if getattr(run, "lora_scale_jump", False):
        hooks.append(ScaleJump(model, run.start_steps or 0, run.update_ratio))
    gamma = run.orth_gamma if run.method == "dcft" and run.orth_gamma > 0 else 0.0
    return Wiring(optimizer, scheduler, gamma, model, hooks)


# ---- several processes ------------------------------------------------------------

def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: what ``torchrun`` / ``accelerate launch`` set in ``RANK`` and
    ``WORLD_SIZE`` (or an already initialised process group says); ``(0, 1)`` for a plain run."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """True on rank 0 (and in a plain run): the one process that prints and writes the result file."""
    return world()[0] == 0


def init_distributed(device: torch.device) -> tuple[torch.device, bool]:
    """Join the process group that ``torchrun`` / ``accelerate launch`` describe in the environment
    (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``): NCCL on GPUs, gloo on CPUs.
    Returns this rank's device (``cuda:LOCAL_RANK`` on GPUs) and whether the group was created here."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return device, False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, True


def shard(batch: dict[str, torch.Tensor], rank: int, world_size: int) -> tuple[dict[str, torch.Tensor], int, int]:
    """This rank's rows of a global batch: ``(rows, n_r, n)``, n_r of the batch's n examples.

    Contiguous blocks of n / world_size rows (a short last batch: sizes differ by at most one). A rank left
    with no row (a last batch smaller than the world) gets the first row as a stand-in with n_r = 0, so
    that it still runs forward and backward (DDP all-reduces on every backward) with weight 0.
    """
    n = len(batch["labels"])
    rows = torch.arange(n).tensor_split(world_size)[rank]
    n_r = len(rows)
    if n_r == 0:
        rows = torch.arange(1)
    return {k: v[rows] for k, v in batch.items()}, n_r, n


def sum_over_ranks(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """Σ over ranks of ``x`` (every rank gets it); ``x`` itself in a plain run."""
    if world_size > 1:
        x = x.detach().clone()
        dist.all_reduce(x)
    return x


def autocast_for(device: torch.device) -> Callable[[], Any]:
    """The forward's autocast context: bf16 on a GPU that has it, float32 (disabled) elsewhere."""
    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if device.type == "cuda" \
            else torch.autocast("cpu", enabled=False)

    return autocast


# ---- one epoch --------------------------------------------------------------------

@dataclass
class EpochResult:
    """What one epoch did: sums over its batches (global-batch task losses, γ·R), counts, and where it diverged."""

    task_loss_sum: float = 0.0
    penalty_sum: float = 0.0
    batches: int = 0
    seen: int = 0  # training examples (global)
    step: int = 0  # optimizer steps so far (the run's count, not the epoch's)
    diverged: Optional[dict] = None  # {"epoch", "step" (from 1), "what"}: the first non-finite value
    batch_losses: list = field(default_factory=list)  # the task loss of every global batch


def fit_epoch(net: nn.Module, model: nn.Module, loader, wiring: Wiring, *, epoch: int, step: int, grad_accum: int = 1,
              max_grad_norm: Optional[float] = 1.0, device: torch.device, autocast: Callable[[], Any],
              rank: int = 0, world_size: int = 1, desc: Optional[str] = None,
              on_step: Optional[Callable[[int, float], Any]] = None,
              on_batch: Optional[Callable[[int], Any]] = None) -> EpochResult:
    """One epoch over ``loader`` (batches with ``labels``): forward (``net``: the model or its DDP wrapper) under
    ``autocast``, task loss + ``wiring.penalty()``, backward, and every ``grad_accum`` batches (and at the end)
    clipping and ``wiring.step()``. ``step`` is the optimizer steps taken before this epoch. A non-finite
    training loss or gradient norm stops the epoch before the step (``EpochResult.diverged``).
    ``on_step(step, task loss)`` after each optimizer step; ``on_batch(1)`` after each training batch (the lab's
    one bar over all its runs); ``desc``: show a progress bar with this label (``tqdm.auto``: a widget in Jupyter)."""
    from tqdm.auto import tqdm

    out = EpochResult(step=step)
    # the bar is updated by hand, never handed the loader: tqdm.auto's class (tqdm.asyncio's) calls iter(loader) when
    # it is made, and each iter() of a shuffling DataLoader draws from its generator, so wrapping it would shuffle
    # differently from an unwrapped loop (the same seed, another run: found by scripts/bit_identity.py)
    bar = tqdm(total=len(loader), desc=desc, disable=desc is None, file=sys.stderr, mininterval=10, leave=False)
    for i, batch in enumerate(loader):
        bar.update(1)
        batch, n_r, n = shard(batch, rank, world_size)  # a plain run: the whole batch, n_r = n
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            # DDP averages gradients over the W ranks; rank r's mean loss L_r weighted by W·n_r/n makes that
            # average the single-process one:  (1/W) Σ_r W·(n_r/n)·∇L_r = ∇((1/n) Σ_i ℓ_i)
            task_loss = net(**batch).loss * (world_size * n_r / n)
        reg = wiring.penalty(device)
        # L = L_task + γ · R(A, B)   (DCFT Eq. 4, docs/method_notes.md); the factors are replicated, so every
        # rank adds the same γ·R and the average over ranks keeps its gradient as it is
        loss = task_loss + reg
        task_value = sum_over_ranks(task_loss.detach(), world_size).item() / world_size  # the global batch's
        loss_value = task_value + reg.item()
        if not math.isfinite(loss_value):  # stop before a NaN/inf reaches the weights
            out.diverged = {"epoch": epoch, "step": out.step + 1, "what": f"training loss {loss_value}"}
            break
        (loss / grad_accum).backward()
        out.task_loss_sum += task_value
        out.penalty_sum += reg.item()
        out.batches += 1
        out.seen += n
        out.batch_losses.append(task_value)
        if on_batch is not None:
            on_batch(1)
        if (i + 1) % grad_accum == 0 or i + 1 == len(loader):
            if max_grad_norm:
                norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                      max_grad_norm)
                if not torch.isfinite(norm):  # the norm clipping computes anyway: inf/NaN gradients
                    out.diverged = {"epoch": epoch, "step": out.step + 1, "what": f"gradient norm {norm.item()}"}
                    break
            wiring.step()  # optimizer (+ Delta-LoRA's W update), schedule, zero_grad, the twin's scale jump
            out.step += 1
            if on_step is not None:
                on_step(out.step, task_value)
    bar.close()
    return out
