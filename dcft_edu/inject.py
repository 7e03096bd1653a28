"""Put adapters into any HF transformers model, and take them out again.

``inject_adapters(model, config)`` walks the model, replaces every linear layer
whose name matches ``config.target_modules`` by the adapter layer of
``config.method`` (LoRA, DCFT or Delta-LoRA), and freezes everything else except
the ``modules_to_save`` (the classifier heads and pooler by default, which both
papers train but do not count; adapters never go inside them). It works for
BERT, RoBERTa, DeBERTa-v2/v3, GPT-2 (Conv1D), Llama, T5 and BART.

Matching rule (as in PEFT): a target ``"value"`` matches a module whose full name
is ``value`` or ends with ``.value``; a string starting with ``re:`` is a regular
expression matched against the full name. ``"all-linear"`` follows PEFT: every
linear layer (``nn.Linear`` or GPT-2's ``Conv1D``) but the output embedding
(``lm_head``), here kept to the transformer blocks (a name with a block index,
``….layer.3.…``), so poolers and heads are never adapted. That is the six
matrices of a BERT/RoBERTa/DeBERTa-v3 block (the ones the DCFT paper adapts; a
DeBERTa-v2 with ``share_att_key=False`` adds ``pos_key_proj``/``pos_query_proj``),
Llama's seven, GPT-2's four, and T5's and BART's six per encoder block and ten
per decoder block (with the cross-attention). BERT names (``query``, ``key``,
``value``) fall back to their DeBERTa/Llama/T5 spelling (``query_proj`` /
``q_proj`` / ``q`` …) when the model has none of the former, and to GPT-2's
fused ``c_attn`` (q, k and v in one matrix), so one config serves every backbone.

Nothing is dropped in silence: an entry of ``target_modules`` or of a
``modules_to_save`` you give that names nothing, a default ``modules_to_save``
that leaves a task head frozen at its random init, and a rank larger than a
layer are errors that name the entry (or layer) and the fix.

Taught in: ``01_lora_and_the_rank_one_floor`` (injection, counting).
"""
from __future__ import annotations

import contextlib
import re
from typing import Iterator, Optional

import torch
from torch import nn

from .adapter_layer import SUPPORTED_BASE_LAYERS, AdapterLayer
from .config import DEFAULT_MODULES_TO_SAVE, AdapterConfig, LoRAConfig, check_impl
from .dcft import DCFTLinear
from .delta_lora import DeltaLoRALinear
from .lora import LoRALinear

#: the layer class of each method (``config.method``)
LAYER_CLASSES: dict[str, type[AdapterLayer]] = {"lora": LoRALinear, "dcft": DCFTLinear, "delta_lora": DeltaLoRALinear}

#: Other spellings of the BERT attention names (DeBERTa-v2/v3, Llama/BART,
#: DistilBERT, T5), and GPT-2's ``c_attn``, the one matrix that holds q, k and v.
TARGET_ALIASES = {
    "query": ("query_proj", "q_proj", "q_lin", "q", "c_attn"),
    "key": ("key_proj", "k_proj", "k_lin", "k", "c_attn"),
    "value": ("value_proj", "v_proj", "v_lin", "v", "c_attn"),
}

_BLOCK_INDEX = re.compile(r"\.(?:layer|layers|h|block|blocks)\.(\d+)\.")


def layer_class(method: str) -> type[AdapterLayer]:
    """The adapter layer class for a method name ('lora', 'dcft', 'delta_lora')."""
    if method not in LAYER_CLASSES:
        raise ValueError(f"unknown adapter method {method!r}: expected one of {', '.join(map(repr, LAYER_CLASSES))}")
    return LAYER_CLASSES[method]


def _is_linear(m: nn.Module) -> bool:
    return isinstance(m, SUPPORTED_BASE_LAYERS)


def _suffix_match(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def _inside(name: str, part: str) -> bool:
    """True if the dotted path ``part`` occurs in ``name`` (``pooler`` in ``bert.pooler.dense``)."""
    return ("." + part + ".") in ("." + name + ".")


def block_index(name: str) -> int | None:
    """Transformer block number in a module name (``encoder.layer.3.…`` -> 3), or None."""
    m = _BLOCK_INDEX.search("." + name + ".")
    return int(m.group(1)) if m else None


def _candidate_names(model: nn.Module) -> list[str]:
    """Linear-layer names with block numbers folded to ``*`` (for error messages)."""
    seen: dict[str, None] = {}
    for name, mod in model.named_modules():
        if _is_linear(mod):
            seen[_BLOCK_INDEX.sub(lambda m: m.group(0).replace(m.group(1), "*"), "." + name + ".")[1:-1]] = None
    return list(seen)


def _match(linear: list[str], target: str) -> list[str]:
    """The names in ``linear`` that one ``target_modules`` entry matches: a suffix, or ``re:`` a full regex match."""
    if target.startswith("re:"):
        return [n for n in linear if re.fullmatch(target[3:], n) is not None]
    return [n for n in linear if _suffix_match(n, target)]


def _match_with_aliases(linear: list[str], target: str) -> list[str]:
    # a BERT name that matches nothing falls back to its other spellings (e.g. DeBERTa's query_proj for "query")
    hits = _match(linear, target)
    if not hits and target in TARGET_ALIASES:
        hits = [n for n in linear if any(_suffix_match(n, a) for a in TARGET_ALIASES[target])]
    return hits


def _what_else(model: nn.Module, target: str) -> str:
    """`` (it names a BertAttention, not a linear layer)`` when a misfit entry names other modules; else ''."""
    if target.startswith("re:"):
        return ""
    kinds = sorted({type(m).__name__ for n, m in model.named_modules() if n and _suffix_match(n, target)})
    return f" (it names {'/'.join(kinds)} modules, not linear layers: name the linear layers inside them)" if kinds else ""


def find_target_modules(model: nn.Module, config: AdapterConfig) -> list[str]:
    """Full names of the linear layers that ``config`` adapts, in model order.

    Every entry of a ``target_modules`` list must select at least one layer
    (after its aliases, the ``modules_to_save`` and ``layers``): an entry that
    selects nothing is an error naming it, with the candidate names, never
    dropped in silence. ``"all-linear"`` must find at least one layer.
    """
    linear = [n for n, m in model.named_modules() if _is_linear(m) and not isinstance(m, AdapterLayer)]
    # never adapt layers that sit inside an adapter already, or inside a trained head
    linear = [n for n in linear if not n.endswith("base_layer")]
    if config.layers is not None:
        # the config cannot know the model: check its block indices here
        n_blocks = max((i + 1 for i in map(block_index, linear) if i is not None), default=0)
        beyond = [i for i in config.layers if i >= n_blocks]
        if beyond:
            raise ValueError(
                f"layers={list(config.layers)}: {type(model).__name__} has {n_blocks} blocks "
                f"(0..{n_blocks - 1}), so {beyond} do not exist; pick block indices in that range"
            )
    targets = config.target_modules
    heads = config.modules_to_save

    def kept(names: list[str]) -> list[str]:
        # heads are trained in full (modules_to_save): never put an adapter inside one; keep to `layers`
        names = [n for n in names if not any(_inside(n, h) for h in heads)]
        if config.layers is not None:
            names = [n for n in names if block_index(n) in set(config.layers)]
        return names

    problems = []
    if targets == "all-linear":
        # as in PEFT: every linear layer but the output embedding, kept to the blocks (no pooler, no head)
        output_embedding = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        names = kept([n for n in linear if block_index(n) is not None and model.get_submodule(n) is not output_embedding])
    else:
        entries = [targets] if isinstance(targets, str) else list(targets)
        chosen: set[str] = set()
        for t in entries:
            hits = _match_with_aliases(linear, t)
            if not hits:
                problems.append(f"{t!r} matches no linear layer{_what_else(model, t)}")
            elif not kept(hits):
                inside = [h for h in heads if any(_inside(n, h) for n in hits)]
                problems.append(
                    f"{t!r} matches only layers inside modules_to_save {inside} (trained in full, never adapted)"
                    if inside else f"{t!r} matches no layer in the blocks layers={list(config.layers)}"
                )
            chosen.update(kept(hits))
        names = [n for n in linear if n in chosen]
    if names and not problems:
        return names
    cands = "\n  ".join(_candidate_names(model))
    where = f" with layers={list(config.layers)}" if config.layers is not None else ""
    raise ValueError(
        f"target_modules={targets!r}{where}"
        + (f" matched no linear layer of {type(model).__name__}" if not names
           else f": in {type(model).__name__}, nothing is selected by {len(problems)} of its entries (they would be "
                "dropped in silence)")
        + "".join(f"\n  - {p}" for p in problems)
        + f"\nCandidate module names:\n  {cands}\n"
        "Name some of these (a suffix such as 'value' is enough), or use 'all-linear'; drop a module from "
        "modules_to_save to adapt it, or widen layers."
    )


#: HF head classes whose head is new, random and must train (a causal LM's lm_head is pretrained: not listed)
TASK_HEAD_SUFFIXES = ("ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering",
                      "ForMultipleChoice")


def _head_parameter_names(model: nn.Module) -> list[str]:
    """Parameters of a task model outside its base model (the new, randomly initialised head); else []."""
    base = getattr(model, "base_model", None)
    if not type(model).__name__.endswith(TASK_HEAD_SUFFIXES) or not isinstance(base, nn.Module) or base is model:
        return []
    in_base = {id(p) for p in base.parameters()}
    return [n for n, p in model.named_parameters() if id(p) not in in_base]


def find_modules_to_save(model: nn.Module, config: AdapterConfig) -> list[str]:
    """Full names of the modules that ``config.modules_to_save`` trains in full, in model order.

    ``DEFAULT_MODULES_TO_SAVE`` lists the heads of several architectures, so its
    names that a model lacks are ignored; but on a task model
    (``…ForSequenceClassification``, ``…ForQuestionAnswering`` …) it must cover
    the whole new head, or that head would stay frozen at its random init
    (e.g. ``qa_outputs``, DistilBERT's ``pre_classifier``): an error names the
    missing parts and the tuple to pass. Names you give yourself must each match a
    module; what you leave out stays frozen, as you asked (``modules_to_save=()``
    freezes the head).
    """
    entries = config.modules_to_save
    found = {h: [n for n, _ in model.named_modules() if n and _suffix_match(n, h)] for h in entries}
    hit = {n for h in entries for n in found[h]}
    names = [n for n, _ in model.named_modules() if n in hit]
    model_name = type(model).__name__
    if tuple(entries) != DEFAULT_MODULES_TO_SAVE:
        missing = [h for h in entries if not found[h]]
        if missing:
            tops = [n for n, m in model.named_modules() if n and n.count(".") <= 1 and any(True for _ in m.parameters())]
            raise ValueError(
                f"modules_to_save={list(entries)!r}: {missing} name no module of {model_name}, so what you meant "
                f"to train would stay frozen. Module names near the top:\n  " + "\n  ".join(tops)
                + "\nName the head by one of these (a suffix such as 'classifier' is enough)."
            )
        return names
    frozen = [p for p in _head_parameter_names(model) if not any(p.startswith(n + ".") for n in names)]
    if frozen:
        parts = list(dict.fromkeys(p.split(".")[0] for p in frozen))
        fix = tuple(h for h in entries if found[h]) + tuple(parts)
        raise ValueError(
            f"the default modules_to_save {list(entries)} does not cover the head of this {model_name}: "
            f"{parts} would stay frozen at their random init (untrained parameters: {frozen[:4]}). "
            f"Pass modules_to_save={fix!r} (or modules_to_save=() to freeze the head on purpose)."
        )
    return names


def _set_submodule(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def inject_adapters(model: nn.Module, config: AdapterConfig) -> nn.Module:
    """Replace the target modules of ``model`` by adapter layers; freeze the rest.

    Trainable afterwards: the adapter tensors, plus every parameter of the
    ``modules_to_save`` (classifier head, pooler). The model is changed in place
    and returned. ``model.adapter_config`` remembers the config (for saving).

    Checked first, all or nothing (a refused call leaves the model as it was):
    every ``target_modules`` entry selects a layer (``find_target_modules``),
    the ``modules_to_save`` name real modules and cover a task head
    (``find_modules_to_save``), and the rank fits every layer (LoRA and
    Delta-LoRA: ``r ≤ min(in, out)``; DCFT: ``r ≤ min(h_in, h_out)``).

    Taught in: ``01_lora_and_the_rank_one_floor``.
    """
    return _inject(model, config)


def _inject(model: nn.Module, config: AdapterConfig, **layer_kwargs) -> nn.Module:
    """``inject_adapters``; ``layer_kwargs`` go to every layer's constructor (``apply_exported_lora``'s ``check_rank``)."""
    if any(isinstance(m, AdapterLayer) for m in model.modules()):
        raise ValueError("this model already has adapters: build a fresh model, or merge_and_unload() first")
    cls = layer_class(config.method)
    names = find_target_modules(model, config)
    find_modules_to_save(model, config)  # every name you gave names a module; the default covers a task head
    # all or nothing: build every adapter layer first (a rank or a DCFT kernel too large for a layer fails
    # here), then freeze and swap; on any error the model keeps its modules, requires_grad flags and dtypes
    layers = {}
    with _undo_on_error(model):
        for name in names:
            try:
                layers[name] = cls(model.get_submodule(name), config, **layer_kwargs)
            except ValueError as e:  # e.g. a rank or a DCFT kernel larger than this layer: say which layer
                raise ValueError(f"{name}: {e}; or leave this module out of target_modules") from None
    for p in model.parameters():
        p.requires_grad_(False)
    for name, layer in layers.items():
        _set_submodule(model, name, layer)
    train_heads(model, config.modules_to_save)
    for layer in layers.values():
        for p in layer.adapter_parameters():
            p.requires_grad_(True)
    model.adapter_config = config
    return model


@contextlib.contextmanager
def _undo_on_error(model: nn.Module) -> Iterator[nn.Module]:
    """If the body raises, undo what injecting did, and raise.

    Adapter layers added since go back to their base layers, every parameter
    gets its requires_grad flag and dtype back (Delta-LoRA upcasts W), and
    ``model.adapter_config`` is what it was. Tensor values are not restored:
    check everything before copying into the model.
    """
    old_layers = {id(layer) for _, layer in adapter_layers(model)}
    old_params = [(p, p.requires_grad, p.dtype) for p in model.parameters()]
    old_config = getattr(model, "adapter_config", None)
    try:
        yield model
    except BaseException:
        for name, layer in adapter_layers(model):
            if id(layer) not in old_layers:
                _set_submodule(model, name, layer.base_layer)
        with torch.no_grad():
            for p, requires_grad, dtype in old_params:
                if p.dtype != dtype:
                    p.data = p.data.to(dtype)  # float32 -> bf16 gives back the exact bf16 values
                p.requires_grad_(requires_grad)
        if hasattr(model, "adapter_config"):
            del model.adapter_config
        if old_config is not None:
            model.adapter_config = old_config
        raise


def train_heads(model: nn.Module, modules_to_save) -> None:
    """Make every parameter of the ``modules_to_save`` (classifier, pooler, score, classification_head) trainable."""
    for name, mod in model.named_modules():
        if any(_suffix_match(name, h) for h in modules_to_save):
            for p in mod.parameters():
                p.requires_grad_(True)


def adapter_layers(model: nn.Module) -> list[tuple[str, AdapterLayer]]:
    """All (name, adapter layer) pairs of a model, in model order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, AdapterLayer)]


def _require_adapters(model: nn.Module) -> list[tuple[str, AdapterLayer]]:
    layers = adapter_layers(model)
    if not layers:
        raise ValueError("this model has no adapters: call inject_adapters(model, config) first")
    return layers


def merge_adapters(model: nn.Module) -> nn.Module:
    """W ← W + ΔW in every adapter layer (idempotent). Outputs stay the same."""
    for _, layer in _require_adapters(model):
        layer.merge()
    return model


def unmerge_adapters(model: nn.Module) -> nn.Module:
    """W ← W − ΔW in every merged adapter layer."""
    for _, layer in _require_adapters(model):
        layer.unmerge()
    return model


def merge_and_unload(model: nn.Module) -> nn.Module:
    """Merge, then put the plain base layers back: a model with no adapter code left."""
    for name, layer in _require_adapters(model):
        layer.merge()
        if isinstance(layer, DeltaLoRALinear):
            # W was kept in float32 for the updates (docs/method_notes.md §4): give it back in the model's dtype
            layer.base_layer.to(layer.base_dtype)
        _set_submodule(model, name, layer.base_layer)
    if hasattr(model, "adapter_config"):
        del model.adapter_config
    return model


@contextlib.contextmanager
def disable_adapters(model: nn.Module) -> Iterator[nn.Module]:
    """``with disable_adapters(model):`` runs the base model (Delta-LoRA: with its moved W)."""
    layers = _require_adapters(model)
    old = [layer.disable_adapters for _, layer in layers]
    merged = [layer.merged for _, layer in layers]
    for _, layer in layers:
        layer.unmerge()
        layer.disable_adapters = True
    try:
        yield model
    finally:
        for (_, layer), o, mg in zip(layers, old, merged):
            layer.disable_adapters = o
            if mg:
                layer.merge()


def set_dcft_impl(model: nn.Module, impl: str) -> nn.Module:
    """Switch every DCFT layer between ``"fast"`` (matrix-free), ``"conv"`` (reference) and ``"dense"``."""
    check_impl(impl)
    for _, layer in _require_adapters(model):
        if hasattr(layer, "impl"):
            layer.impl = impl
    return model


# --------------------------------------------------------------------- counting
def count_adapter_parameters(model: nn.Module) -> int:
    """Adapter parameters as the papers count them: the adapter tensors only
    (not the classifier head or pooler, which both papers train but leave out).

    Taught in: ``01_lora_and_the_rank_one_floor``.
    """
    return sum(p.numel() for _, layer in adapter_layers(model) for p in layer.adapter_parameters())


def count_trainable_parameters(model: nn.Module) -> int:
    """Everything that receives gradients (adapters + heads)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def meta_model(config, auto_class=None) -> nn.Module:
    """Build any model from ``config`` on the meta device: real shapes, no storage, no memory.

    ``meta_model(deberta_v3_base_config())`` has DeBERTa-v3-base's 184M
    parameters as shapes only, enough to count parameters or list modules.
    ``auto_class`` picks the head (``AutoModel``: the bare encoder).

    Used by: ``count_for_config`` and the parameter-count tests.
    """
    if auto_class is None:
        from transformers import AutoModel

        auto_class = AutoModel
    with torch.device("meta"):
        return auto_class.from_config(config)


def count_for_config(model_config, adapter_config: AdapterConfig, model_class=None) -> int:
    """Adapter parameters for a model built from a config with no weights.

    The model is built on the meta device, so DeBERTa-v3-base (184M
    parameters, ``deberta_v3_base_config()`` in ``dcft_edu.experiments.models``)
    costs no memory: e.g.
    ``count_for_config(deberta_v3_base_config(), DCFTConfig(kernel_size=8))`` → 25,344.

    Taught in: ``02_dcft_deconvolution_in_subspace``.
    """
    model = meta_model(model_config, model_class)
    inject_adapters(model, adapter_config)
    return count_adapter_parameters(model)


# ------------------------------------------------------------ exported LoRA
def apply_exported_lora(
    model: nn.Module,
    factors: dict[str, dict[str, torch.Tensor]],
    lora_config: LoRAConfig,
    heads_from: Optional[nn.Module] = None,
) -> nn.Module:
    """Put an exported rank-2r LoRA (``export_delta_lora``) onto a model that holds the ORIGINAL weights W_0.

    ``model`` is the pretrained model with no adapters (fresh from
    ``load_model``, or with ``original_weights`` copied in). LoRA layers are
    injected with ``lora_config`` and ``factors[name]`` copied into them.
    ``heads_from`` (the trained model) also copies the ``modules_to_save``
    (classifier head, pooler), which the factors do not hold. The model is
    changed in place and returned; its outputs are the trained model's.
    """
    # an exact rank-2r export may exceed min(in, out) where r does not: that LoRA is a representation, not a choice
    _inject(model, lora_config, check_rank=False)
    layers = dict(adapter_layers(model))
    if set(layers) != set(factors):
        raise ValueError(
            f"the exported factors name {len(factors)} layers and this model's LoRA has {len(layers)}; "
            f"they differ in {sorted(set(layers) ^ set(factors))[:5]}: use the lora_config that export_delta_lora "
            "returned, on the same kind of model"
        )
    with torch.no_grad():
        for name, layer in layers.items():
            f = factors[name]
            if f["lora_A"].shape != layer.lora_A.shape or f["lora_B"].shape != layer.lora_B.shape:
                raise ValueError(
                    f"{name}: exported lora_A {tuple(f['lora_A'].shape)} / lora_B {tuple(f['lora_B'].shape)} do not "
                    f"fit this layer's {tuple(layer.lora_A.shape)} / {tuple(layer.lora_B.shape)}"
                )
            layer.lora_A.copy_(f["lora_A"])
            layer.lora_B.copy_(f["lora_B"])
        if heads_from is not None:
            for name, module in heads_from.named_modules():
                if any(_suffix_match(name, h) for h in lora_config.modules_to_save):
                    model.get_submodule(name).load_state_dict(module.state_dict())
    return model
