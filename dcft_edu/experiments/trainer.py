"""One training loop for every method: full, head-only, LoRA, DCFT, Delta-LoRA.

``train(run)`` takes a ``RunConfig`` (see ``presets``), fine-tunes the model on a
GLUE task and returns a result record (a plain dict, JSON-ready):

- AdamW (no weight decay on biases and LayerNorm), linear warmup then linear
  decay (``transformers.get_linear_schedule_with_warmup``), gradient clipping,
  gradient accumulation, bf16 autocast on a GPU;
- DCFT adds γ · orthogonal_penalty to the loss (NOTES §1); every epoch records the task
  loss and the penalty γ·R apart (``train_loss`` is the task loss, for every method;
  ``train_penalty``/``dev_penalty`` are γ·R, 0 without a penalty);
- Delta-LoRA moves W after each *real* optimizer step (``register_delta_lora_hook``,
  a step post-hook on the optimizer), so accumulation boundaries are respected;
- dev evaluation after every epoch; the best epoch (as the papers report) and
  the final one are both recorded; with ``select_on="train_holdout"`` a fixed share of the
  training rows (``data.HOLDOUT_FRACTION``) is held out, scored every epoch too
  (``holdout_*``), and ``selected`` is the epoch best on it (the dev set plays no part);
- a non-finite training loss or gradient norm (checked before the step) or
  dev loss stops the run: the record says ``status: "diverged"`` (and where), with no best
  or final metric, instead of passing a NaN model's dev score off as a result;
- one run on several devices: under ``torchrun`` / ``accelerate launch`` (``WORLD_SIZE`` > 1)
  the model is wrapped in ``DistributedDataParallel`` and each rank trains on its rows of the
  very batches a single process would draw (``run.batch_size`` stays the global batch), so the
  result equals the single-process one; every rank returns it, only rank 0 should write it
  (``is_main_process``).

Used in: notebooks 04, 07, 08, 13, 14.
"""
from __future__ import annotations

import math
import os
import sys
import time
from typing import Any, Callable

import torch
import torch.distributed as dist
from torch import nn
from transformers import get_linear_schedule_with_warmup, set_seed

from ..config import DEFAULT_MODULES_TO_SAVE
from ..inject import adapter_layers, train_heads, count_adapter_parameters, count_trainable_parameters, inject_adapters
from .presets import RESULT_SCHEMA, RunConfig, total_optimizer_steps
from .runinfo import peak_memory_mb, provenance, resolve_device


def prepare_model(model: nn.Module, run: RunConfig) -> nn.Module:
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


def make_optimizer(model: nn.Module, run: RunConfig) -> torch.optim.Optimizer:
    """AdamW over the trainable parameters; no weight decay on biases and norms (HF convention)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(p)
    groups = [{"params": decay, "weight_decay": run.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=run.lr)


#: the attention projections whose similarity to the pretrained weights is recorded (Delta-LoRA Fig. 3)
SIMILARITY_MODULES = ("query", "value")


def effective_weights(model: nn.Module, suffixes=SIMILARITY_MODULES) -> dict[str, torch.Tensor]:
    """``{module name: effective (out, in) weight}`` of every linear module whose name ends in ``suffixes``.

    The effective weight is what the layer multiplies x by: W for a plain
    ``nn.Linear`` (full fine-tuning moves it), W + ΔW for an unmerged adapter
    layer (for Delta-LoRA W itself has moved too), W for a merged one. Float32
    copies on the CPU.

    Taught in: ``08_cosine_similarity``.
    """
    from ..adapter_layer import AdapterLayer

    out = {}
    for name, m in model.named_modules():
        if not name.endswith(tuple(f".{s}" for s in suffixes)):
            continue
        if isinstance(m, AdapterLayer):
            w = m.effective_weight().detach().float()
        elif hasattr(m, "lokr_w1"):  # PEFT's LoKr layer (method ``lokr``)
            from .lokr import lokr_effective_weight

            w = lokr_effective_weight(m).detach().float()
        elif isinstance(m, nn.Linear):
            w = m.weight.detach().float()
        else:
            continue
        out[name] = w.cpu().clone()
    return out


def weight_similarity(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> dict[str, dict[str, float]]:
    """Per module: cosine(W₀, W) of the flattened weights and the relative change ‖W − W₀‖ / ‖W₀‖.

    cos(W₀, W) = ⟨W₀, W⟩_F / (‖W₀‖_F ‖W‖_F)   (Delta-LoRA, Figure 3)
    """
    out = {}
    for name, w0 in before.items():
        w = after[name]
        cos = torch.nn.functional.cosine_similarity(w0.flatten().double(), w.flatten().double(), dim=0)
        out[name] = {"cosine": float(cos), "rel_change": float((w - w0).double().norm() / w0.double().norm())}
    return out


class _ScaleJump:
    """LoRA whose scale jumps from s to (1+λ)·s at step K: Delta-LoRA's twin (NOTES §4)."""

    def __init__(self, model: nn.Module, start: int, ratio: float):
        self.layers, self.start, self.ratio, self.n = [l for _, l in adapter_layers(model)], start, ratio, 0
        if start == 0:
            self.jump()

    @torch.no_grad()
    def jump(self) -> None:
        # from step K on:  W_eff = W₀ + s·((1+λ)·P_t − λ·P_K);  the constant −λ·s·P_K goes into W
        for layer in self.layers:
            w = layer.base_weight()
            w -= self.ratio * layer.get_delta_weight().to(w.dtype)
            layer.scaling *= 1 + self.ratio

    def step(self) -> None:
        self.n += 1
        if self.n == self.start:
            self.jump()


def world() -> tuple[int, int]:
    """``(rank, world size)`` of this process: what ``torchrun`` / ``accelerate launch`` set in ``RANK`` and
    ``WORLD_SIZE`` (or an already initialised process group says); ``(0, 1)`` for a plain run."""
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def is_main_process() -> bool:
    """True on rank 0 (and in a plain run): the one process that prints and writes the result file."""
    return world()[0] == 0


def _init_distributed(device: torch.device) -> tuple[torch.device, bool]:
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


def _sum_over_ranks(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """Σ over ranks of ``x`` (every rank gets it); ``x`` itself in a plain run."""
    if world_size > 1:
        x = x.detach().clone()
        dist.all_reduce(x)
    return x


@torch.no_grad()
def evaluate(model: nn.Module, loader, task: str, device: torch.device, autocast,
             rank: int = 0, world_size: int = 1) -> dict[str, float]:
    """Dev-set metrics (see ``dcft_edu.experiments.metrics``) plus the mean dev loss.

    With several ranks each evaluates its rows of every batch; predictions and labels are all-gathered
    (the metrics do not depend on the order of the examples), so every rank gets the same metrics.
    """
    from .metrics import compute_metrics

    model.eval()
    preds, labels, losses = [], [], []
    for batch in loader:
        batch, n_r, n = shard(batch, rank, world_size)
        batch = {k: v.to(device) for k, v in batch.items()}
        with autocast():
            out = model(**batch)
        losses.append(out.loss.float() * (n_r / n))  # this rank's share of the batch's mean loss
        preds.append(out.logits.float()[:n_r].cpu())
        labels.append(batch["labels"][:n_r].cpu())
    preds, labels = torch.cat(preds), torch.cat(labels)
    if world_size > 1:
        gathered = [None] * world_size
        dist.all_gather_object(gathered, (preds, labels))
        preds, labels = (torch.cat(t) for t in zip(*gathered))
    m = compute_metrics(task, preds.numpy(), labels.numpy())
    m["loss"] = float(_sum_over_ranks(torch.stack(losses).double(), world_size).mean())  # mean over batches of the batch means
    return m


def train(run: RunConfig, progress: bool = True, log: Callable[[str], Any] = print,
          model_and_tokenizer=None, eval_at_start: bool = False) -> dict[str, Any]:
    """Fine-tune one model as ``run`` says; return the result record (JSON-ready).

    ``model_and_tokenizer`` lets a notebook pass an already-loaded (model,
    tokenizer) pair; by default the model is loaded with ``load_model``.
    ``eval_at_start`` also evaluates the untrained model (recorded as ``initial``).
    Under ``torchrun`` / ``accelerate launch`` with several processes every rank returns the same record;
    only rank 0 logs.

    Used in: notebooks 04, 08, 13, 14.
    """
    from tqdm import tqdm

    from .data import GLUE_TASKS, HOLDOUT_FRACTION, HOLDOUT_SEED, make_dataloaders
    from .models import load_model

    t_start = time.perf_counter()
    set_seed(run.seed)  # Python, NumPy, torch (CPU and every CUDA device)
    device = resolve_device(run.device)
    rank, world_size = world()
    created_group = False
    if world_size > 1:
        if run.batch_size % world_size:
            raise ValueError(f"batch_size {run.batch_size} is the global batch, split evenly over {world_size} processes: "
                             f"it is not divisible by {world_size}; use a multiple of {world_size} "
                             f"(e.g. --batch-size {world_size * max(1, run.batch_size // world_size)})")
        device, created_group = _init_distributed(device)
        if rank:  # every rank trains; rank 0 speaks
            progress, log = False, (lambda m: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    head = {} if run.classifier_dropout is None else {"classifier_dropout": run.classifier_dropout}
    model, tokenizer = model_and_tokenizer or load_model(run.task, run.model, **head)
    model = prepare_model(model, run).to(device)
    from .validate import check_save_delta_adapted

    check_save_delta_adapted(model, run)  # the layer whose ΔW is kept exists and is adapted: before training
    net = model  # what the training forward runs: the model, or its DDP wrapper (gradients all-reduced)
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    # query/value (and the module whose ΔW is kept) before training: W₀; for DCFT W₀ + its tiny init ΔW
    watched = SIMILARITY_MODULES + ((run.save_delta,) if run.save_delta else ())
    pretrained = effective_weights(model, suffixes=watched)
    holdout_fraction = HOLDOUT_FRACTION if run.select_on == "train_holdout" else 0.0
    train_loader, dev_loader, *holdout_loader = make_dataloaders(
        run.task, tokenizer, run.batch_size, limit_train=run.limit_train, limit_dev=run.limit_dev,
        seed=run.seed, max_length=run.max_length, holdout_fraction=holdout_fraction,
    )
    total = total_optimizer_steps(run)
    optimizer = make_optimizer(model, run)
    # lr × t/warmup for t < warmup, then linear decay to 0 at the last step (t counts optimizer steps from 0)
    scheduler = get_linear_schedule_with_warmup(optimizer, run.warmup_steps, total)
    if run.method == "delta_lora":  # W ← W + λ·s·Δ(BA) inside every optimizer.step()
        from ..delta_lora import register_delta_lora_hook

        register_delta_lora_hook(optimizer, model)
    hooks = []
    if run.lora_scale_jump:
        hooks.append(_ScaleJump(model, run.start_steps or 0, run.update_ratio))
    orth = None
    if run.method == "dcft" and run.orth_gamma > 0:
        from ..regularizers import orthogonal_penalty as orth

    def penalty() -> torch.Tensor:
        """γ · R(A, B), the orthogonal penalty added to the task loss (0 for methods without it)."""
        return run.orth_gamma * orth(model) if orth is not None else torch.zeros((), device=device)

    use_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()

    def autocast():
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16) if device.type == "cuda" \
            else torch.autocast("cpu", enabled=False)

    epochs, step, seen, train_time, diverged = [], 0, 0, 0.0, None
    main = GLUE_TASKS[run.task].main_metric
    initial = evaluate(model, dev_loader, run.task, device, autocast, rank, world_size) if eval_at_start else None
    if initial is not None:
        initial["dev_penalty"] = penalty().item()
    for epoch in range(1, run.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        running, running_penalty, nb = 0.0, 0.0, 0
        bar = tqdm(train_loader, desc=f"{run.task}/{run.method} ep{epoch}", disable=not progress,
                   file=sys.stderr, mininterval=10, leave=False)
        for i, batch in enumerate(bar):
            batch, n_r, n = shard(batch, rank, world_size)  # a plain run: the whole batch, n_r = n
            batch = {k: v.to(device) for k, v in batch.items()}
            with autocast():
                # DDP averages gradients over the W ranks; rank r's mean loss L_r weighted by W·n_r/n makes that
                # average the single-process one:  (1/W) Σ_r W·(n_r/n)·∇L_r = ∇((1/n) Σ_i ℓ_i)
                task_loss = net(**batch).loss * (world_size * n_r / n)
            reg = penalty()
            # L = L_task + γ · R(A, B)   (paper Eq. 4, NOTES §1); the factors are replicated, so every rank
            # adds the same γ·R and the average over ranks keeps its gradient as it is
            loss = task_loss + reg
            task_value = _sum_over_ranks(task_loss.detach(), world_size).item() / world_size  # the global batch's
            loss_value = task_value + reg.item()
            if not math.isfinite(loss_value):  # stop before a NaN/inf reaches the weights
                diverged = {"epoch": epoch, "step": step + 1, "what": f"training loss {loss_value}"}
                break
            (loss / run.grad_accum).backward()
            running += task_value
            running_penalty += reg.item()
            nb += 1
            seen += n
            if (i + 1) % run.grad_accum == 0 or i + 1 == len(train_loader):
                if run.max_grad_norm:
                    norm = torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                                          run.max_grad_norm)
                    if not torch.isfinite(norm):  # the norm clipping computes anyway: inf/NaN gradients
                        diverged = {"epoch": epoch, "step": step + 1, "what": f"gradient norm {norm.item()}"}
                        break
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                for h in hooks:  # the LoRA twin's scale jump: after each real optimizer step only
                    h.step()
        train_time += time.perf_counter() - t0
        if not diverged:
            metrics = evaluate(model, dev_loader, run.task, device, autocast, rank, world_size)
            if holdout_loader:  # the held-out training rows, for selection: holdout_<metric>, holdout_loss
                metrics.update({f"holdout_{k}": v for k, v in
                                evaluate(model, holdout_loader[0], run.task, device, autocast, rank, world_size).items()})
            if not math.isfinite(metrics["loss"]):  # the weights already give NaN/inf: no dev score to keep
                diverged = {"epoch": epoch, "step": step, "what": f"dev loss {metrics['loss']}"}
        if diverged:
            log(f"[{run.task} {run.method} seed={run.seed}] diverged at epoch {epoch}, optimizer step {diverged['step']}: "
                f"{diverged['what']}; stopped (lower the learning rate, now {run.lr:g})")
            break
        with torch.no_grad():
            dev_penalty = penalty().item()  # R depends on the weights only: one value for the whole dev set
        train_loss = running / max(1, nb)
        rec = {"epoch": epoch, "train_loss": train_loss, "train_task_loss": train_loss,
               "train_penalty": running_penalty / max(1, nb), "step": step, **metrics,
               "dev_task_loss": metrics["loss"], "dev_penalty": dev_penalty}
        epochs.append(rec)
        log(f"[{run.task} {run.method} seed={run.seed}] epoch {epoch}/{run.epochs}  "
            f"train_loss={rec['train_loss']:.4f}  penalty={rec['train_penalty']:.4f}  "
            f"dev_loss={metrics['loss']:.4f}  {main}={metrics[main]:.4f}")

    # a diverged run keeps the epochs it finished but has no best/final metric: it must not pass for a result
    best = max(epochs, key=lambda r: r[main]) if epochs and not diverged else None
    final = None if best is None else epochs[-1]
    # select_on="train_holdout": the epoch best on the held-out training rows, scored on dev
    selected = max(epochs, key=lambda r: r[f"holdout_{main}"]) if holdout_loader and best is not None else None
    final_weights = effective_weights(model, suffixes=watched)
    qv = tuple(f".{s}" for s in SIMILARITY_MODULES)
    similarity = weight_similarity({n: w for n, w in pretrained.items() if n.endswith(qv)}, final_weights)
    peak, peak_kind = peak_memory_mb(device)
    result = {
        "schema": RESULT_SCHEMA,
        "key": run.key(),
        "config": run.to_dict(),  # with the resolved model and its fingerprint
        "task": run.task,
        "method": run.method,
        "main_metric": main,
        "status": "diverged" if diverged else "ok",
        "diverged_at": diverged,  # {"epoch", "step" (from 1) that gave the first non-finite value, "what" it was}
        "epochs": epochs,
        "best": None if best is None else {"epoch": best["epoch"], main: best[main],
                                           **{k: v for k, v in best.items() if k != "epoch"}},
        "final": final,
        "initial": initial,
        "best_metric": None if best is None else best[main],
        "final_metric": None if final is None else final[main],
        "select_on": run.select_on,
        "holdout": {"fraction": holdout_fraction, "seed": HOLDOUT_SEED, "rows": len(holdout_loader[0].dataset)}
        if holdout_loader else None,
        "selected": selected,  # select_on="train_holdout": the epoch record best on the held-out rows
        "selected_metric": None if selected is None else selected[main],
        "adapter_params": count_adapter_parameters(model) + _count_lokr(model),
        "trainable_params": count_trainable_parameters(model),
        "optimizer_steps": step,
        "train_examples_seen": seen,
        "train_time_s": train_time,
        "samples_per_s": seen / train_time if train_time > 0 else math.nan,
        "peak_memory_mb": peak,
        "peak_memory_kind": peak_kind,
        "wall_time_s": time.perf_counter() - t_start,
        "world_size": world_size,  # processes (devices) the run was trained on; batch_size is their global batch
        "weight_similarity": similarity,
        **provenance(device, run.scale, run.seed),
    }
    if created_group:
        dist.destroy_process_group()
    result["_model"] = model  # removed by callers that serialise; handy in notebooks
    if run.save_delta:  # the learned change of one module, W_eff − W₀ (out, in), saved beside the result by sweeps
        name = next(n for n in final_weights if n.endswith(run.save_delta))
        result["_delta"] = {name: final_weights[name] - pretrained[name]}
    return result


def _count_lokr(model: nn.Module) -> int:
    from .lokr import count_lokr_parameters

    return count_lokr_parameters(model)


def strip_model(result: dict) -> dict:
    """The JSON-ready part of a result (drops the in-memory model)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}
