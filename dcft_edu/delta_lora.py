"""Delta-LoRA (Zi et al., 2023): LoRA whose frozen W also moves, by the delta of B A.

A Delta-LoRA layer is a LoRA layer without dropout (docs/method_notes.md §4, paper Algorithm 1):

    h = W x + s · B A x,       s = α / r,   A ∈ R^{r×in} (Kaiming), B ∈ R^{out×r} (zeros)

A and B train with the optimizer as usual. W gets no gradient and no optimizer
state; instead, after every optimizer step n past the start step K, it moves by
the change of the product P = B A that the step just made:

    W ← W + λ · s · (P_n − P_{n−1}),      P_n = B_n A_n          (paper Eq. 6)

- λ is ``update_ratio`` (0.5 on GLUE, 2 on E2E), K is ``start_steps``.
- P_n − P_{n−1} stands in for the update W itself would have received, because
  without dropout ∂L/∂W = ∂L/∂(BA) / s exactly (paper Eq. 4; see
  ``dropout_gradient`` for the demo of why dropout breaks this, Eq. 7).
- The delta is computed from parameter values AFTER the optimizer step, so it
  follows whatever the optimizer did: AdamW's normalisation and weight decay,
  learning-rate schedules, gradient clipping, accumulation boundaries.

Index convention. Optimizer steps are counted from 1: after the n-th real
optimizer step the parameters are (A_n, B_n); (A_0, B_0) are their initial
values. W moves at every step n > K, so the first update is at n = K + 1 and
uses P_{K+1} − P_K. The paper's pseudocode loops ``for t = 0..T-1`` with
``if t > K`` and writes the step's result as A_{t+1}: taken literally its first
update is at t = K + 1, i.e. our n = K + 2. We follow the prose ("updates
commence after K training iterations"), which makes the algebra clean:

    The updates telescope:   W_T − W_K = λ · s · (P_T − P_K),   and W_K = W_0.

So the trained layer is  W_T + s·P_T = W_0 + s·((1+λ)·P_T − λ·P_K): an exact
rank-2r LoRA on the ORIGINAL weights (``export_delta_lora``), and the total
change of W has rank ≤ 2r.

Saving. Delta-LoRA changes W, so saving only A and B (a PEFT-style adapter file)
LOSES part of the fine-tuning; disabling the adapter gives W_T·x, not W_0·x.
Either save W too (``dcft_edu.save_adapters`` does), or export the rank-2r LoRA
on W_0 (``export_delta_lora``). The snapshots, (A_K, B_K) and the step counter
are persistent buffers, so ``model.state_dict()`` holds everything needed to
resume training exactly.

Use from any training loop: a torch optimizer step post-hook runs the W update
after every ``optimizer.step()``, so the loop and the scheduler stay as they are::

    model = inject_adapters(model, DeltaLoRAConfig(r=8, lora_alpha=16, update_ratio=0.5, start_steps=100))
    optimizer = torch.optim.AdamW(trainable_params, lr=4e-4)
    handle = register_delta_lora_hook(optimizer, model)  # handle.remove() detaches it
    scheduler = get_linear_schedule_with_warmup(optimizer, ...)
    ...  loss.backward(); optimizer.step(); scheduler.step(); optimizer.zero_grad()

Taught in: ``06_delta_lora_update``
"""
from __future__ import annotations

import gc
import weakref

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .config import DeltaLoRAConfig, LoRAConfig
from .lora import LoRALinear

_HALF_DTYPES = (torch.float16, torch.bfloat16)


class DeltaLoRALinear(LoRALinear):
    """A LoRA layer (``lora_A``, ``lora_B``, no dropout) whose base weight W moves by Δ(BA).

    Trainable: ``lora_A`` (r, in) and ``lora_B`` (out, r). The base weight W is
    NOT trainable (``requires_grad=False``): it changes only in ``delta_step()``.

    Buffers (persistent, i.e. in ``state_dict()``):

    - ``lora_A_prev``, ``lora_B_prev``: A and B after the previous optimizer step
      (the snapshot that the next delta is taken against);
    - ``lora_A_start``, ``lora_B_start``: (A_K, B_K), recorded when updates begin
      (needed by ``export_delta_lora`` and ``original_weights``);
    - ``num_steps``: optimizer steps seen so far (n).

    Attributes: ``update_ratio`` (λ), ``start_steps`` (K), ``scaling`` (s = α/r),
    ``base_dtype`` (the model's dtype, which W had before the float32 upcast).
    """

    def __init__(self, base_layer: nn.Module, config: DeltaLoRAConfig):
        # W is kept in float32: one Delta-LoRA update is λ·s·ΔP, typically 1e-5
        # relative to W's entries, below bfloat16's resolution (~4e-3): in bf16
        # most updates would round away to nothing. (float64 is kept as is.)
        base_dtype = base_layer.weight.dtype
        if base_dtype in _HALF_DTYPES:
            base_layer.float()
        super().__init__(base_layer, config)  # LoRA branch; config guarantees lora_dropout == 0
        self.base_dtype = base_dtype  # the model's dtype: merge_and_unload casts W back to it
        self.update_ratio = float(config.update_ratio)  # λ
        self.start_steps = int(config.start_steps)  # K
        # snapshots of (A, B) after the previous optimizer step: (A_{n-1}, B_{n-1})
        self.register_buffer("lora_A_prev", self.lora_A.detach().clone())
        self.register_buffer("lora_B_prev", self.lora_B.detach().clone())
        # (A_K, B_K): zeros until recorded at step n == K (at once when K == 0)
        self.register_buffer("lora_A_start", torch.zeros_like(self.lora_A.detach()))
        self.register_buffer("lora_B_start", torch.zeros_like(self.lora_B.detach()))
        # n: how many real optimizer steps have been taken
        self.register_buffer("num_steps", torch.zeros((), dtype=torch.long, device=self.lora_A.device))
        # a host-side copy of n: reading the buffer on a GPU would stall every step (a device sync per layer)
        self._n = 0
        if self.start_steps == 0:
            self._record_start()

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The base layer is float32 even inside a bf16 model: compute in W's
        # dtype, return in the input's dtype so the rest of the model is unchanged.
        if self.merged:
            self.refuse_training_while_merged()
        w_dtype = self.base_layer.weight.dtype
        xw = x.to(w_dtype)
        y = self.base_layer(xw)  # W x + b : (..., in) -> (..., out)
        if not (self.disable_adapters or self.merged):
            y = y + self.adapter_forward(xw.to(self.adapter_dtype())).to(y.dtype)
        # Under autocast y comes out in the autocast dtype (bf16), exactly like LoRA's output: keep it,
        # or every op after this layer (GELU, softmax, …) would keep float32 activations for backward.
        return y if y.dtype != w_dtype else y.to(x.dtype)

    # ------------------------------------------------------------- the update
    @property
    def steps_taken(self) -> int:
        """n: the real optimizer steps this layer has counted (the host-side copy of the ``num_steps`` buffer)."""
        return self._n

    @property
    def updates_started(self) -> bool:
        """True once step K has been reached (so (A_K, B_K) are recorded)."""
        return self._n >= self.start_steps

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._n = int(self.num_steps)  # keep the host-side n in step with a loaded buffer

    @torch.no_grad()
    def _record_start(self) -> None:
        # (A_K, B_K) <- (A, B): the reference point of the telescoping sum
        self.lora_A_start.copy_(self.lora_A)
        self.lora_B_start.copy_(self.lora_B)

    @torch.no_grad()
    def delta_step(self) -> None:
        """The readable one-layer update; call once after each REAL optimizer step (n = 1, 2, ...).

        If n > K:  W ← W + λ·s·(B_n A_n − B_{n−1} A_{n−1}); then snapshot ← (A_n, B_n).
        At n == K: record (A_K, B_K).

        ``register_delta_lora_hook`` does not call this: its hook runs ``grouped_delta_step``, the same update
        batched over same-shape layers for speed, and this method is that one's test oracle
        (``tests/test_delta_lora.py::test_grouped_hook_step_equals_the_one_layer_rule``). A loop of your own
        may call it per layer.
        """
        if self._count_step():
            w = self.base_weight()  # (out, in) view of the base weight
            # B_n A_n − B_{n−1} A_{n−1} as ONE product of concatenated factors
            # (never ΔB·ΔA, which is a different matrix):
            # [B_n | −B_{n−1}] : (out, r) ‖ (out, r) -> (out, 2r)
            b_cat = torch.cat([self.lora_B, -self.lora_B_prev], dim=1)
            # [A_n ; A_{n−1}]  : (r, in) over (r, in) -> (2r, in)
            a_cat = torch.cat([self.lora_A, self.lora_A_prev], dim=0)
            # W ← W + λ·s·[B_n | −B_{n−1}] @ [A_n ; A_{n−1}] :  (out, 2r) @ (2r, in) -> (out, in)
            w.addmm_(b_cat.to(w.dtype), a_cat.to(w.dtype), alpha=self.update_ratio * self.scaling)
        self._snapshot()

    def _count_step(self) -> bool:
        """The bookkeeping of one step, before the W update: checks, n ← n + 1. True if W moves now (n > K, λ ≠ 0)."""
        if self.merged:
            raise RuntimeError(
                "delta_step() on a merged Delta-LoRA layer: unmerge_adapters(model) before training "
                "(a merged layer's A and B get no gradients, and W would hold s·BA twice)."
            )
        if self.base_weight().dtype in _HALF_DTYPES:
            raise RuntimeError(
                f"the Delta-LoRA base weight is {self.base_weight().dtype}: the tiny W updates would round away. "
                "Keep the adapted layers in float32 (do not call model.half()/.to(bfloat16) after "
                "inject_adapters; use autocast for mixed precision instead)."
            )
        self._n += 1
        self.num_steps.fill_(self._n)  # the buffer (saved in state_dict) follows the host-side n, no sync
        return self._n > self.start_steps and self.update_ratio != 0.0  # λ = 0 is plain LoRA: W never moves

    @torch.no_grad()
    def _snapshot(self) -> None:
        """After the W update: snapshot ← (A_n, B_n), the "previous" factors of the next step; at n == K record them."""
        self.lora_A_prev.copy_(self.lora_A)
        self.lora_B_prev.copy_(self.lora_B)
        if self._n == self.start_steps:
            self._record_start()

    # ---------------------------------------------------- export / recovery
    #: the export is a rank-2r LoRA with α′ = 2α (``exported_lora_factors``)
    export_rank_multiple = 2

    @torch.no_grad()
    def exported_lora_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(lora_A (2r, in), lora_B (out, 2r)) of the equivalent LoRA on W_0, same scaling s.

        W_T + s·B_T A_T = W_0 + s·((1+λ)·B_T A_T − λ·B_K A_K)
                        = W_0 + s·[(1+λ)·B_T | −λ·B_K] @ [A_T ; A_K].
        Before step K (no update yet, W_T = W_0) the second block is zero.
        """
        lam = self.update_ratio
        if self.updates_started:
            a2, b2 = self.lora_A_start, -lam * self.lora_B_start
            b1 = (1.0 + lam) * self.lora_B
        else:
            a2, b2 = torch.zeros_like(self.lora_A), torch.zeros_like(self.lora_B)
            b1 = self.lora_B
        # [A_T ; A_K] : (r, in) over (r, in) -> (2r, in)
        lora_A = torch.cat([self.lora_A, a2], dim=0)
        # [(1+λ)·B_T | −λ·B_K] : (out, r) ‖ (out, r) -> (out, 2r)
        lora_B = torch.cat([b1, b2], dim=1)
        return lora_A.detach().clone(), lora_B.detach().clone()

    @torch.no_grad()
    def original_weight(self) -> torch.Tensor:
        """W_0 in (out, in) layout, recovered as W_T − λ·s·(B_T A_T − B_K A_K)."""
        if self.merged:
            raise RuntimeError("unmerge the layer first: a merged W also holds s·B A")
        w = self.base_weight().detach().clone()  # W_T : (out, in)
        if self.updates_started and self.update_ratio != 0.0:
            # [B_T | −B_K] : (out, 2r);  [A_T ; A_K] : (2r, in)
            b_cat = torch.cat([self.lora_B, -self.lora_B_start], dim=1)
            a_cat = torch.cat([self.lora_A, self.lora_A_start], dim=0)
            # W_0 = W_T − λ·s·[B_T | −B_K] @ [A_T ; A_K] :  (out, 2r) @ (2r, in) -> (out, in)
            w.addmm_(b_cat.to(w.dtype), a_cat.to(w.dtype), alpha=-self.update_ratio * self.scaling)
        return w

    @torch.no_grad()
    def twin_gap(self, w0: torch.Tensor) -> float:
        """max |W_eff − (W₀ + s·((1+λ)·P_t − λ·P_K))|, P = B·A, for this layer's pretrained weight ``w0`` (out, in).

        Past K it is float rounding: Delta-LoRA's effective weight IS that of the LoRA whose scale jumped from
        s to (1+λ)·s at K, with the constant −λ·s·P_K folded into W (the telescoping sum above).
        """
        if not self.updates_started:
            raise ValueError(f"only {self._n} steps, K = {self.start_steps}: train past K first")
        lam, s = self.update_ratio, self.scaling
        # P_t = B_t A_t,  P_K = B_K A_K :  (out, r) @ (r, in) -> (out, in)
        p_t = self.lora_B.double() @ self.lora_A.double()
        p_k = self.lora_B_start.double() @ self.lora_A_start.double()
        # the twin's effective weight:  W₀ + s·((1+λ)·P_t − λ·P_K)
        twin = w0.to(torch.float64) + s * ((1 + lam) * p_t - lam * p_k)
        return (self.effective_weight().double() - twin).abs().max().item()

    def extra_repr(self) -> str:
        return (
            super().extra_repr()
            + f", update_ratio={self.update_ratio:g}, start_steps={self.start_steps}, num_steps={int(self.num_steps)}"
        )


# ------------------------------------------------------------------ model level
def delta_lora_layers(model: nn.Module) -> list[tuple[str, DeltaLoRALinear]]:
    """All (name, DeltaLoRALinear) pairs of a model, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, DeltaLoRALinear)]


def _require_layers(model: nn.Module) -> list[tuple[str, DeltaLoRALinear]]:
    layers = delta_lora_layers(model)
    if not layers:
        raise ValueError(
            "this model has no Delta-LoRA layers: call inject_adapters(model, DeltaLoRAConfig(...)) first"
        )
    return layers


#: layer -> (weak reference to the optimizer, handle, ids of the layers) of the live hook that updates it
_HOOKS: "weakref.WeakKeyDictionary[DeltaLoRALinear, tuple]" = weakref.WeakKeyDictionary()


def _live(entry: tuple) -> bool:
    """True while a registered hook can still fire: its optimizer exists and the handle was not removed."""
    optimizer_ref, handle, _ = entry
    hooks = handle.hooks_dict_ref()
    return optimizer_ref() is not None and hooks is not None and handle.id in hooks


def _check_hook_arguments(optimizer, model, named: list[tuple[str, DeltaLoRALinear]]) -> None:
    """Refuse what would make the W update silently wrong: merged layers, A and B the optimizer never moves."""
    merged = [n or type(model).__name__ for n, layer in named if layer.merged]
    if merged:
        raise ValueError(
            f"{len(merged)} Delta-LoRA layers are merged (e.g. {merged[0]}): unmerge_adapters(model) before training "
            "(merged, A and B get no gradient and W would hold s·BA twice)"
        )
    in_optimizer = {id(p) for group in optimizer.param_groups for p in group["params"]}
    untrained = [n or type(model).__name__ for n, layer in named
                 if id(layer.lora_A) not in in_optimizer or id(layer.lora_B) not in in_optimizer]
    if untrained:
        raise ValueError(
            f"this optimizer does not hold lora_A and lora_B of {len(untrained)} Delta-LoRA layers (e.g. {untrained[0]}), "
            "so its steps would move W by a B A that never changes. Build it from the model's trainable parameters: "
            "torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], ...)"
        )


def register_delta_lora_hook(optimizer: torch.optim.Optimizer, model: nn.Module) -> RemovableHandle:
    """Apply the Delta-LoRA W update after every ``optimizer.step()``; returns the hook's handle.

    Registers a torch step post-hook that runs ``grouped_delta_step`` over the
    Delta-LoRA layers of ``model``: ``delta_step()``'s update for every layer, batched
    per shape (paper Algorithm 1: the optimizer step on A, B, then W ← W + λ·s·Δ(BA)). The hook fires once per REAL optimizer step, so:

    - gradient accumulation: only on the micro-batches where you call ``step()``;
    - an AMP ``GradScaler`` that skips a step (inf/NaN gradients) never calls
      ``optimizer.step()``: the hook does not fire, W does not move and the step
      does not count towards K;
    - LR schedulers and other hooks are untouched: the optimizer is the plain one.

    ``handle.remove()`` detaches it. The hook holds no state of its own: the
    snapshots and the step counter live in the layers' buffers, so
    ``model.state_dict()`` is all there is to save.

    W moves once per step, whatever you repeat: registering again for the same
    optimizer and model (a re-run notebook cell) is a no-op that returns the
    first handle; a layer whose hook sits on another optimizer that still
    exists is refused (remove that hook, or drop that optimizer, first). Also
    refused: merged layers, and an optimizer that does not hold every layer's
    ``lora_A`` and ``lora_B``.
    """
    if not isinstance(optimizer, torch.optim.Optimizer) or not isinstance(model, nn.Module):
        swapped = isinstance(optimizer, nn.Module) and isinstance(model, torch.optim.Optimizer)
        raise TypeError(
            "register_delta_lora_hook(optimizer, model) takes a torch optimizer, then the model; got a "
            f"{type(optimizer).__name__} and a {type(model).__name__}" + (": the two are swapped" if swapped else "")
        )
    named = _require_layers(model)
    layers = [layer for _, layer in named]
    _check_hook_arguments(optimizer, model, named)
    ids = frozenset(map(id, layers))
    earlier = {id(e[1]): e for layer in layers if (e := _HOOKS.get(layer)) is not None and _live(e)}
    if any(e[0]() is not optimizer for e in earlier.values()):
        gc.collect()  # an optimizer the user let go may wait for the cycle collector: do not count it
        earlier = {k: e for k, e in earlier.items() if _live(e)}
    if len(earlier) == 1 and all(e[0]() is optimizer and e[2] == ids for e in earlier.values()):
        return next(iter(earlier.values()))[1]  # the same hook again: W must not move twice per step
    if earlier:
        other = any(e[0]() is not optimizer for e in earlier.values())
        raise ValueError(
            "some of these Delta-LoRA layers already get their W update from a hook registered "
            + ("on another optimizer that still exists" if other else "on this optimizer for another set of layers")
            + ": two hooks would move W twice per step. Remove the earlier hook first (handle.remove() on the handle "
            "register_delta_lora_hook returned" + (", or del the old optimizer)" if other else ")")
        )

    def delta_lora_step(optimizer, args, kwargs) -> None:
        grouped_delta_step(layers)

    handle = optimizer.register_step_post_hook(delta_lora_step)
    for layer in layers:
        _HOOKS[layer] = (weakref.ref(optimizer), handle, ids)
    return handle


@torch.no_grad()
def grouped_delta_step(layers: list[DeltaLoRALinear]) -> None:
    """``layer.delta_step()`` for every layer, with one batched product per group of same-shape layers.

    What the hook of ``register_delta_lora_hook`` runs. ``delta_step`` is the readable form and its test
    oracle: the two must give the same W, snapshots and counters (tests/test_delta_lora.py).

    The same update as the one-layer rule, W ← W + λ·s·[B_n | −B_{n−1}] @ [A_n ; A_{n−1}],
    but with a few kernels per group instead of six per layer: stack the factors of the
    layers that share (out, in, r, λ·s, dtype, device), one ``bmm``, one ``_foreach_add_``
    into the W's, then one ``_foreach_copy_`` per snapshot for all layers. On a GPU the
    per-layer loop is launch-bound (BERT-base: 72 layers × 6 kernels after every step).
    """
    groups: dict[tuple, list[DeltaLoRALinear]] = {}
    for layer in layers:
        if layer._count_step():  # checks and n ← n + 1, as delta_step does
            w = layer.base_weight()
            key = (tuple(w.shape), w.dtype, w.device, layer.r, layer.update_ratio * layer.scaling)
            groups.setdefault(key, []).append(layer)
    for (_, dtype, _, _, alpha), group in groups.items():
        # [B_n | −B_{n−1}] per layer, stacked: G × (out, r) ‖ (out, r) -> (G, out, 2r)
        b_cat = torch.cat([torch.stack([l.lora_B for l in group]), -torch.stack([l.lora_B_prev for l in group])], dim=2)
        # [A_n ; A_{n−1}] per layer, stacked: G × (r, in) over (r, in) -> (G, 2r, in)
        a_cat = torch.cat([torch.stack([l.lora_A for l in group]), torch.stack([l.lora_A_prev for l in group])], dim=1)
        # ΔP of every layer at once: (G, out, 2r) @ (G, 2r, in) -> (G, out, in)
        delta = torch.bmm(b_cat.to(dtype), a_cat.to(dtype))
        # W ← W + λ·s·ΔP, for the G weights in one call
        torch._foreach_add_([l.base_weight() for l in group], list(delta.unbind(0)), alpha=alpha)
    # snapshot ← (A_n, B_n) for every layer; then (A_K, B_K) where n == K
    torch._foreach_copy_([l.lora_A_prev for l in layers], [l.lora_A for l in layers])
    torch._foreach_copy_([l.lora_B_prev for l in layers], [l.lora_B for l in layers])
    for layer in layers:
        if layer._n == layer.start_steps:
            layer._record_start()


def original_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """name -> W_0 (out, in) for every Delta-LoRA layer: W_T − λ·s·(P_T − P_K).

    The weights the model had before fine-tuning, recovered exactly (up to
    float rounding) from the trained model alone, thanks to the telescoping sum.
    """
    return {name: layer.original_weight() for name, layer in _require_layers(model)}


def export_delta_lora(model: nn.Module) -> tuple[dict[str, dict[str, torch.Tensor]], LoRAConfig]:
    """The trained Delta-LoRA model as an exact rank-2r LoRA on the ORIGINAL weights W_0.

    Returns ``(factors, lora_config)``: ``factors[name] = {"lora_A": (2r, in),
    "lora_B": (out, 2r)}`` with ``lora_B = [(1+λ)·B_T | −λ·B_K]`` and
    ``lora_A = [A_T ; A_K]``; ``lora_config`` has r' = 2r and α' = 2α, so the
    scaling α'/r' = α/r = s is unchanged. Applied as LoRA on the pretrained
    model (W_0, obtainable with ``original_weights``), it reproduces the trained
    model's outputs. If updates never began (n < K), the second block is zero:
    it is the plain LoRA. The ``modules_to_save`` (classifier head, pooler) are
    not part of it: copy them from the trained model.
    """
    layers = _require_layers(model)
    cfg = getattr(model, "adapter_config", None)
    if isinstance(cfg, DeltaLoRAConfig):
        # r' = 2r and α' = 2α keep the scaling α'/r' = α/r = s
        lora_config = LoRAConfig(
            r=2 * cfg.r,
            lora_alpha=2 * float(cfg.lora_alpha),
            target_modules=cfg.target_modules,
            modules_to_save=cfg.modules_to_save,
            layers=cfg.layers,
        )
    else:  # layers built by hand: name them in full, and read α from the scaling s = α/r
        r = layers[0][1].r
        alpha = layers[0][1].scaling * r
        lora_config = LoRAConfig(r=2 * r, lora_alpha=2 * alpha, target_modules=tuple(n for n, _ in layers))
    factors = {}
    for name, layer in layers:
        lora_A, lora_B = layer.exported_lora_factors()
        factors[name] = {"lora_A": lora_A, "lora_B": lora_B}
    return factors, lora_config
