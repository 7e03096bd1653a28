"""One training loop for every method: full, head-only, LoRA, DCFT, Delta-LoRA.

``train(run)`` takes a ``RunConfig`` (see ``presets``), fine-tunes the model on a
GLUE task and returns a result record (a plain dict, JSON-ready). The method wiring
(``fit.prepare``) and the epoch loop (``fit.fit_epoch``) are the training core's, shared
with E2E, the training benchmark and the probe; this module adds GLUE's data, evaluation
and result record:

- AdamW (no weight decay on biases and LayerNorm), linear warmup then linear
  decay (``transformers.get_linear_schedule_with_warmup``), gradient clipping,
  gradient accumulation, bf16 autocast on a GPU;
- DCFT adds γ · orthogonal_penalty to the loss (docs/method_notes.md); every epoch records the task
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

Used in: notebooks 04, 08, 13, 14.
"""
from __future__ import annotations

import math
import time
from typing import Any, Callable, Union

import torch
import torch.distributed as dist
from torch import nn
from transformers import set_seed

from ..inject import count_adapter_parameters, count_trainable_parameters
# the training core lives in ``fit``; prepare_model, make_optimizer, world and is_main_process stay importable here
from .fit import (autocast_for, fit_epoch, init_distributed, is_main_process, make_optimizer, prepare,  # noqa: F401
                  prepare_model, shard, sum_over_ranks, world)
from .presets import E2E_TASK, RESULT_SCHEMA, RunConfig, total_optimizer_steps
from .runinfo import peak_memory_mb, provenance, resolve_device


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
    m["loss"] = float(sum_over_ranks(torch.stack(losses).double(), world_size).mean())  # mean over batches of the batch means
    return m


def _join_world(run: RunConfig, device: torch.device) -> tuple[torch.device, int, int, bool]:
    """Under ``torchrun`` / ``accelerate launch``: check the global batch splits evenly, join the process group.
    Returns (device, rank, world size, whether this call created the group)."""
    rank, world_size = world()
    created_group = False
    if world_size > 1:
        if run.batch_size % world_size:
            raise ValueError(f"batch_size {run.batch_size} is the global batch, split evenly over {world_size} processes: "
                             f"it is not divisible by {world_size}; use a multiple of {world_size} "
                             f"(e.g. --batch-size {world_size * max(1, run.batch_size // world_size)})")
        device, created_group = init_distributed(device)
    return device, rank, world_size, created_group


def _build_model(run: RunConfig, model_and_tokenizer, device: torch.device, world_size: int):
    """(model, tokenizer, net): the run's model with its method injected, on ``device``; ``net`` is what the
    training forward runs: the model, or its DDP wrapper (gradients all-reduced) with several processes."""
    from .models import load_model
    from .validate import check_save_delta_adapted

    head = {} if run.classifier_dropout is None else {"classifier_dropout": run.classifier_dropout}
    model, tokenizer = model_and_tokenizer or load_model(run.task, run.model, **head)
    model = prepare_model(model, run).to(device)
    check_save_delta_adapted(model, run)  # the layer whose ΔW is kept exists and is adapted: before training
    net = model
    if world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model, tokenizer, net


def _epoch_record(ep, epoch: int, step: int, metrics: dict, dev_penalty: float) -> dict[str, Any]:
    """One epoch's entry of the result's ``epochs``: train losses (task and penalty apart), dev metrics."""
    train_loss = ep.task_loss_sum / max(1, ep.batches)
    return {"epoch": epoch, "train_loss": train_loss, "train_task_loss": train_loss,
            "train_penalty": ep.penalty_sum / max(1, ep.batches), "step": step, **metrics,
            "dev_task_loss": metrics["loss"], "dev_penalty": dev_penalty}


def train(run: RunConfig, progress: Union[bool, Callable[[int], Any]] = True, log: Callable[[str], Any] = print,
          model_and_tokenizer=None, eval_at_start: bool = False) -> dict[str, Any]:
    """Fine-tune one model as ``run`` says; return the result record (JSON-ready).

    ``model_and_tokenizer`` lets a notebook pass an already-loaded (model,
    tokenizer) pair; by default the model is loaded with ``load_model``.
    ``eval_at_start`` also evaluates the untrained model (recorded as ``initial``).
    ``progress``: a per-epoch bar (``tqdm.auto``: a widget in a notebook), or a callable, called with 1 after
    every training batch instead (the lab's one bar over all its runs, ``lab.run_lab``).
    Under ``torchrun`` / ``accelerate launch`` with several processes every rank returns the same record;
    only rank 0 logs.

    An E2E run (task ``"e2e"``) is trained, generated and scored by ``e2e.train_e2e`` (the same wiring and loop).

    Used in: notebooks 04, 08, 13, 14.
    """
    from .data import GLUE_TASKS, HOLDOUT_FRACTION, make_dataloaders

    if run.task == E2E_TASK:
        from .e2e import train_e2e

        return train_e2e(run, model_and_tokenizer=model_and_tokenizer, log=log, eval_at_start=eval_at_start,
                         progress=progress if callable(progress) else None)

    t_start = time.perf_counter()
    set_seed(run.seed)  # Python, NumPy, torch (CPU and every CUDA device)
    device = resolve_device(run.device)
    device, rank, world_size, created_group = _join_world(run, device)
    if rank:  # every rank trains; rank 0 speaks
        progress, log = False, (lambda m: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model, tokenizer, net = _build_model(run, model_and_tokenizer, device, world_size)
    # query/value (and the module whose ΔW is kept) before training: W₀; for DCFT W₀ + its tiny init ΔW
    watched = SIMILARITY_MODULES + ((run.save_delta,) if run.save_delta else ())
    pretrained = effective_weights(model, suffixes=watched)
    holdout_fraction = HOLDOUT_FRACTION if run.select_on == "train_holdout" else 0.0
    train_loader, dev_loader, *holdout_loader = make_dataloaders(
        run.task, tokenizer, run.batch_size, limit_train=run.limit_train, limit_dev=run.limit_dev,
        seed=run.seed, max_length=run.max_length, holdout_fraction=holdout_fraction,
    )
    wiring = prepare(model, run, total_optimizer_steps(run))  # optimizer, schedule, γ·R, Delta-LoRA / twin hooks
    autocast = autocast_for(device)

    def score(loader) -> dict[str, float]:
        return evaluate(model, loader, run.task, device, autocast, rank, world_size)

    epochs, step, seen, train_time, diverged = [], 0, 0, 0.0, None
    main = GLUE_TASKS[run.task].main_metric
    initial = score(dev_loader) if eval_at_start else None
    if initial is not None:
        initial["dev_penalty"] = wiring.penalty(device).item()
    for epoch in range(1, run.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        ep = fit_epoch(net, model, train_loader, wiring, epoch=epoch, step=step, grad_accum=run.grad_accum,
                       max_grad_norm=run.max_grad_norm, device=device, autocast=autocast, rank=rank,
                       world_size=world_size, on_batch=progress if callable(progress) else None,
                       desc=f"{run.task}/{run.method} ep{epoch}" if progress and not callable(progress) else None)
        step, seen, diverged = ep.step, seen + ep.seen, ep.diverged
        train_time += time.perf_counter() - t0
        if not diverged:
            metrics = score(dev_loader)
            if holdout_loader:  # the held-out training rows, for selection: holdout_<metric>, holdout_loss
                metrics.update({f"holdout_{k}": v for k, v in score(holdout_loader[0]).items()})
            if not math.isfinite(metrics["loss"]):  # the weights already give NaN/inf: no dev score to keep
                diverged = {"epoch": epoch, "step": step, "what": f"dev loss {metrics['loss']}"}
        if diverged:
            log(f"[{run.task} {run.method} seed={run.seed}] diverged at epoch {epoch}, optimizer step {diverged['step']}: "
                f"{diverged['what']}; stopped (lower the learning rate, now {run.lr:g})")
            break
        with torch.no_grad():
            dev_penalty = wiring.penalty(device).item()  # R depends on the weights only: one value for the dev set
        epochs.append(rec := _epoch_record(ep, epoch, step, metrics, dev_penalty))
        log(f"[{run.task} {run.method} seed={run.seed}] epoch {epoch}/{run.epochs}  "
            f"train_loss={rec['train_loss']:.4f}  penalty={rec['train_penalty']:.4f}  "
            f"dev_loss={metrics['loss']:.4f}  {main}={metrics[main]:.4f}")

    final_weights = effective_weights(model, suffixes=watched)
    result = _record(run, model, epochs, diverged, initial, holdout_loader, holdout_fraction, pretrained,
                     final_weights, device, step=step, seen=seen, train_time=train_time, t_start=t_start,
                     world_size=world_size)
    if created_group:
        dist.destroy_process_group()
    result["_model"] = model  # removed by callers that serialise; handy in notebooks
    if run.save_delta:  # the learned change of one module, W_eff − W₀ (out, in), saved beside the result by sweeps
        name = next(n for n in final_weights if n.endswith(run.save_delta))
        result["_delta"] = {name: final_weights[name] - pretrained[name]}
    return result


def _record(run: RunConfig, model: nn.Module, epochs: list, diverged, initial, holdout_loader, holdout_fraction,
            pretrained, final_weights, device, *, step: int, seen: int, train_time: float, t_start: float,
            world_size: int) -> dict[str, Any]:
    """The JSON-ready result record of a finished (or diverged) GLUE run."""
    from .data import GLUE_TASKS, HOLDOUT_SEED

    main = GLUE_TASKS[run.task].main_metric
    # a diverged run keeps the epochs it finished but has no best/final metric: it must not pass for a result
    best = max(epochs, key=lambda r: r[main]) if epochs and not diverged else None
    final = None if best is None else epochs[-1]
    # select_on="train_holdout": the epoch best on the held-out training rows, scored on dev
    selected = max(epochs, key=lambda r: r[f"holdout_{main}"]) if holdout_loader and best is not None else None
    qv = tuple(f".{s}" for s in SIMILARITY_MODULES)
    similarity = weight_similarity({n: w for n, w in pretrained.items() if n.endswith(qv)}, final_weights)
    peak, peak_kind = peak_memory_mb(device)
    return {
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


def _count_lokr(model: nn.Module) -> int:
    from .lokr import count_lokr_parameters

    return count_lokr_parameters(model)


def strip_model(result: dict) -> dict:
    """The JSON-ready part of a result (drops the in-memory model)."""
    return {k: v for k, v in result.items() if not k.startswith("_")}
