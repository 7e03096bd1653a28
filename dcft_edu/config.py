"""Adapter configurations: one dataclass per method, validated on construction.

The field names follow HF PEFT (``r``, ``lora_alpha``, ``lora_dropout``,
``target_modules``, ``modules_to_save``) so that what a student knows from PEFT
transfers. Every config knows its ``scaling`` (= α / r, as in LoRA and in the
official DCFT code).

Taught in: ``01_lora_and_the_rank_one_floor`` (LoRAConfig),
``02_dcft_deconvolution_in_subspace`` (DCFTConfig), ``06_delta_lora_update``
(DeltaLoRAConfig).
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Sequence as _Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Optional, Sequence, Union

#: Heads trained in full next to the adapters (never counted as adapter
#: parameters, as in both papers), and never adapted: the sequence-classification
#: heads of BERT/DeBERTa (``classifier``, ``pooler``), RoBERTa (``classifier.dense``
#: + ``classifier.out_proj``), BART/T5 (``classification_head``) and GPT-2/Llama
#: (``score``). Matched by suffix; names a model lacks are ignored, but on a task model
#: (``…ForSequenceClassification`` …) they must cover its whole new head (``inject.find_modules_to_save``).
DEFAULT_MODULES_TO_SAVE = ("classifier", "pooler", "score", "classification_head")


#: DCFT's forwards: matrix-free, the official conv_transpose2d reference, or one product with W + ΔW
#: (``dcft.DCFTLinear.dense_weight``: fewer, larger operations for launch-bound GPUs).
#: ``check_impl`` is the one place that validates an ``impl`` (config, layer, model).
DCFT_IMPLS = ("fast", "conv", "dense")


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


def _is_int(value: Any) -> bool:
    # bool is an int in Python, but r=True is a slip, not a rank
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_impl(impl: Any) -> None:
    """Refuse an ``impl`` that is not one of ``DCFT_IMPLS``."""
    _check(impl in DCFT_IMPLS, f"impl must be {' or '.join(map(repr, DCFT_IMPLS))}, got {impl!r}")


def _check_target_modules(targets: Any) -> None:
    names = [targets] if isinstance(targets, str) else targets
    _check(
        isinstance(names, _Sequence) and all(isinstance(t, str) for t in names),
        f"target_modules must be a string or a sequence of strings (module-name suffixes, 'all-linear' or "
        f"'re:<regex>'), got {targets!r}",
    )
    _check(len(names) > 0 and all(names), "target_modules is empty: name the modules to adapt, e.g. ('query', 'value')")
    _check(
        "all-linear" not in names or len(names) == 1,
        f"target_modules={list(names)!r}: 'all-linear' stands alone (it already means every linear layer of the "
        "blocks); pass target_modules='all-linear', or list the module names without it",
    )
    for t in names:
        if t.startswith("re:"):
            try:
                re.compile(t[3:])
            except re.error as e:
                raise ValueError(
                    f"target_modules: {t!r} is not a valid regular expression ({e}); fix the pattern"
                ) from None


def _check_modules_to_save(names: Any) -> tuple[str, ...]:
    """``modules_to_save`` as a tuple of names; one string is one name (``"classifier"``, not its letters)."""
    names = (names,) if isinstance(names, str) else tuple(names or ())
    _check(
        all(isinstance(n, str) and n for n in names),
        f"modules_to_save must be module names (suffixes such as 'classifier'), got {names!r}",
    )
    return names


@dataclass
class AdapterConfig:
    """Fields shared by every adapter method.

    ``target_modules``: module-name suffixes to adapt (``"value"`` matches
    ``encoder.layer.3.attention.self.value``), the string ``"all-linear"``
    (PEFT's meaning: every linear layer inside the transformer blocks, never
    the output head: the six BERT/RoBERTa/DeBERTa matrices, Llama's seven,
    GPT-2's four Conv1D, all of T5's and BART's encoder and decoder; it stands
    alone, never inside a list), or a single regex string prefixed with ``re:``.
    The default ``("query", "value")`` means ``q_proj``/``v_proj`` on Llama/BART,
    ``q``/``v`` on T5 and the fused ``c_attn`` (q, k and v in one matrix) on
    GPT-2. ``modules_to_save``: heads trained in full and never adapted
    (``DEFAULT_MODULES_TO_SAVE``). ``layers``: optional list of block indices
    to restrict to (used by the layer ablation).

    Checked here: types and values. Checked against the model by
    ``inject_adapters``: every entry of ``target_modules`` and of a
    ``modules_to_save`` you give must name a module of the model, and the rank
    must fit every adapted layer (``r ≤ min(in, out)``).
    """

    method: ClassVar[str] = "base"

    r: int = 8
    lora_alpha: float = 16.0
    target_modules: Union[str, Sequence[str]] = ("query", "value")
    modules_to_save: Sequence[str] = DEFAULT_MODULES_TO_SAVE
    layers: Optional[Sequence[int]] = None

    def __post_init__(self) -> None:
        _check(_is_int(self.r) and self.r >= 1, f"r must be a positive integer, got {self.r!r}")
        _check(
            _is_finite(self.lora_alpha) and self.lora_alpha > 0,
            f"lora_alpha must be a finite number > 0, got {self.lora_alpha!r}",
        )
        _check_target_modules(self.target_modules)
        if not isinstance(self.target_modules, str):
            self.target_modules = tuple(self.target_modules)
            if self.target_modules == ("all-linear",):  # ["all-linear"] (from a grid or a CLI list) is "all-linear"
                self.target_modules = "all-linear"
        self.modules_to_save = _check_modules_to_save(self.modules_to_save)
        if self.layers is not None:
            _check(
                isinstance(self.layers, _Sequence) and all(_is_int(i) and i >= 0 for i in self.layers),
                f"layers must be non-negative block indices, got {self.layers!r}",
            )
            _check(len(self.layers) > 0, "layers=[] selects no block: leave layers=None to adapt every block")
            self.layers = tuple(self.layers)

    @property
    def scaling(self) -> float:
        # LoRA / DCFT scale:  s = α / r
        return float(self.lora_alpha) / self.r

    # ---- (de)serialisation: a JSON file next to the safetensors weights ----
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["method"] = self.method
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


@dataclass
class LoRAConfig(AdapterConfig):
    """LoRA (Hu et al., 2022): ΔW = (α/r) · B A with A (r, in), B (out, r), B = 0 at init."""

    method: ClassVar[str] = "lora"
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            _is_finite(self.lora_dropout) and 0.0 <= self.lora_dropout < 1.0,
            f"lora_dropout must be a finite number in [0, 1), got {self.lora_dropout!r}",
        )


@dataclass
class DCFTConfig(AdapterConfig):
    """DCFT (Zhang et al., 2025): ΔW = (α/r) · Deconv(B A; C, stride s), NOTES §1.

    - ``kernel_size`` k: the transposed-convolution kernel is k×k (trainable).
    - ``stride`` s ≤ k (None means s = k: no overlap, the paper's default and a
      Kronecker product). With s < k, dims where (d − k)/s + 1 is not whole are
      padded: the deconvolution output is cropped to the layer's shape.
    - ``r``: rank of the small subspace matrix M = B A (1 in the paper and the
      official code). The scale is α / r. The official scripts hard-wire rank 1
      but use a separate "r" (2 or 3) only in the scale α/r; their α=32, r=2 is
      our ``r=1, lora_alpha=16`` (the same scale, 16).
    - ``init="paper"``: all three factors ~ N(0, 0.02²) (ΔW tiny but ≠ 0);
      ``init="zero"``: B = 0 so ΔW = 0 exactly at init.
    - ``impl="fast"`` (matrix-free), ``"conv"`` (the reference that calls
      ``conv_transpose2d`` as the official code does) or ``"dense"`` (one product with
      W + ΔW: fewer, larger operations, for small models on a GPU).
    """

    method: ClassVar[str] = "dcft"
    r: int = 1
    lora_alpha: float = 16.0
    kernel_size: int = 8
    stride: Optional[int] = None
    init: str = "paper"
    init_std: float = 0.02
    impl: str = "fast"
    target_modules: Union[str, Sequence[str]] = "all-linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        k = self.kernel_size
        _check(_is_int(k) and k >= 1, f"kernel_size must be a positive integer, got {k!r}")
        if self.stride is None:
            self.stride = k
        s = self.stride
        _check(_is_int(s) and s >= 1, f"stride must be a positive integer, got {s!r}")
        _check(s <= k, f"stride ({s}) > kernel_size ({k}) would leave gaps in ΔW: choose stride <= kernel_size")
        _check(self.init in ("paper", "zero"), f"init must be 'paper' or 'zero', got {self.init!r}")
        check_impl(self.impl)
        _check(
            _is_finite(self.init_std) and self.init_std > 0,
            f"init_std must be a finite number > 0, got {self.init_std!r}",
        )


@dataclass
class DeltaLoRAConfig(AdapterConfig):
    """Delta-LoRA (Zi et al., 2023), NOTES §4.

    LoRA without dropout, and after every optimizer step t > K the frozen W also
    moves:  W ← W + λ · (α/r) · (B₍t+1₎A₍t+1₎ − B₍t₎A₍t₎).

    - ``update_ratio`` λ (paper: 0.5 on GLUE, 2 on E2E).
    - ``start_steps`` K: no W update during the first K optimizer steps.
    """

    method: ClassVar[str] = "delta_lora"
    update_ratio: float = 0.5
    start_steps: int = 0
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(
            self.lora_dropout == 0.0,
            f"Delta-LoRA needs lora_dropout=0 (got {self.lora_dropout}): the W update uses ∂L/∂(BA) as a stand-in "
            "for ∂L/∂W, which only holds without dropout (paper Eq. 4/7). Set lora_dropout=0.",
        )
        _check(
            _is_finite(self.update_ratio) and self.update_ratio >= 0,
            f"update_ratio (λ) must be a finite number >= 0, got {self.update_ratio!r}",
        )
        _check(
            _is_int(self.start_steps) and self.start_steps >= 0,
            f"start_steps (K) must be a non-negative integer, got {self.start_steps!r}",
        )


CONFIG_CLASSES = {c.method: c for c in (LoRAConfig, DCFTConfig, DeltaLoRAConfig)}


def config_from_dict(d: dict[str, Any]) -> AdapterConfig:
    """Rebuild a config from ``to_dict()`` output (the JSON saved with adapters)."""
    d = dict(d)
    method = d.pop("method", None)
    if method not in CONFIG_CLASSES:
        raise ValueError(f"unknown adapter method {method!r}: expected one of {sorted(CONFIG_CLASSES)}")
    return CONFIG_CLASSES[method](**d)
