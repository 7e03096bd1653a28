"""Save and load adapters: safetensors weights + a JSON config, PEFT-style.

A saved adapter is a folder with
- ``adapter_config.json``: the method's config, and a fingerprint of the model
  it was trained on (class, hidden size, layer count, adapted layer shapes);
- ``adapter_model.safetensors``: the adapter tensors, their persistent buffers,
  the ``modules_to_save`` (classifier head, pooler) and, for Delta-LoRA, the
  adapted base weights W too — Delta-LoRA moves W, so an A/B-only file would
  silently lose part of the fine-tuning (NOTES §4).

Loading onto a model of another shape fails with a message that says what
differs. Files are written to a temporary name and renamed, so a killed save
never leaves a half-written adapter behind; the config records the sha256 of
the weights file, so a damaged one is refused instead of giving NaN logits.

``export_peft(model, folder)`` writes the trained adapter as a plain HF PEFT
LoRA folder instead, for ``peft.PeftModel.from_pretrained(pretrained, folder)``:
every method is an exact LoRA (DCFT of rank r·k, Delta-LoRA of rank 2r on the
original weights). Writing it needs only safetensors and JSON, not peft.

Taught in: ``06_delta_lora_update`` (why Delta-LoRA saves W).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import AdapterConfig, config_from_dict
from .delta_lora import export_delta_lora
from .inject import _inside, _suffix_match, _undo_on_error, adapter_layers, inject_adapters

CONFIG_NAME = "adapter_config.json"  # the same two file names as PEFT's
WEIGHTS_NAME = "adapter_model.safetensors"
#: the version of the folder layout; load_adapters refuses any other
FORMAT = "dcft_edu-1"


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename tmp → ``path``: a killed writer leaves nothing half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _fingerprint(model: nn.Module) -> dict:
    cfg = getattr(model, "config", None)
    fp = {"model_class": type(model).__name__}
    for key in ("model_type", "hidden_size", "num_hidden_layers", "intermediate_size", "n_embd", "n_layer"):
        if cfg is not None and getattr(cfg, key, None) is not None:
            fp[key] = getattr(cfg, key)
    fp["adapted"] = {n: [layer.out_features, layer.in_features] for n, layer in adapter_layers(model)}
    return fp


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):  # 1 MiB at a time (hashlib.file_digest needs 3.11)
            h.update(chunk)
    return h.hexdigest()


def _diffs(saved: dict, own: dict) -> list[str]:
    """``key: saved …, this model …`` for every key whose values differ."""
    return [
        f"{k}: saved {saved.get(k)!r}, this model {own.get(k)!r}"
        for k in sorted(set(saved) | set(own))
        if saved.get(k) != own.get(k)
    ]


def adapter_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Everything a saved adapter holds (see the module docstring), by full name, copied to the CPU."""
    return {k: v.detach().contiguous().cpu() for k, v in _adapter_tensors(model).items()}


def _adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's own tensors behind ``adapter_state_dict`` (no copies)."""
    config: AdapterConfig = model.adapter_config
    state: dict[str, torch.Tensor] = {}
    for name, layer in adapter_layers(model):
        for pname, t in layer.state_dict().items():
            if pname.startswith("base_layer."):
                # Delta-LoRA moves W: keep it. Other methods never touch the base.
                if config.method == "delta_lora" and pname == "base_layer.weight":
                    state[f"{name}.{pname}"] = t
                continue
            state[f"{name}.{pname}"] = t
    for mname, mod in model.named_modules():
        if any(_suffix_match(mname, h) for h in config.modules_to_save):
            for pname, t in mod.state_dict().items():
                if not any(_inside(f"{mname}.{pname}", n) for n, _ in adapter_layers(model)):
                    state[f"{mname}.{pname}"] = t
    return state


def save_adapters(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``directory``."""
    if not hasattr(model, "adapter_config"):
        raise ValueError("this model has no adapters to save: call inject_adapters(model, config) first")
    if any(layer.merged for _, layer in adapter_layers(model)):
        raise ValueError("unmerge_adapters(model) before saving: merged weights would be saved twice")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"config": model.adapter_config.to_dict(), "fingerprint": _fingerprint(model), "format": FORMAT}
    state = adapter_state_dict(model)
    weights = atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"}))
    meta["sha256"] = _sha256(weights)  # lets load_adapters tell a damaged file from a trained one
    atomic_write(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(meta, indent=2, sort_keys=True)))
    return out


def _read_meta(directory: Path) -> dict:
    path = directory / CONFIG_NAME
    if not path.exists():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}: is this a folder written by save_adapters?")
    return json.loads(path.read_text())


def load_adapter_config(directory: str | os.PathLike) -> AdapterConfig:
    """The AdapterConfig stored in a saved adapter folder."""
    return config_from_dict(_read_meta(Path(directory))["config"])


def _read_weights(directory: Path, meta: dict) -> dict[str, torch.Tensor]:
    """The saved tensors; a damaged file is refused (checksum, safetensors' header check, non-finite values)."""
    path = directory / WEIGHTS_NAME
    if "sha256" in meta and _sha256(path) != meta["sha256"]:  # files saved before checksums have none
        raise ValueError(
            f"{path} is damaged: its sha256 differs from the one save_adapters wrote into {CONFIG_NAME}. "
            "Save the adapter again (or copy an intact file)."
        )
    try:
        state = load_file(str(path))
    except SafetensorError as e:
        raise ValueError(f"{path} is damaged ({e}): save the adapter again (or copy an intact file)") from None
    for name, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(
                f"tensor {name!r} in {path} holds non-finite values (NaN or inf): the file is damaged or "
                "the training diverged; save a healthy adapter again"
            )
    return state


def load_adapters(model: nn.Module, directory: str | os.PathLike) -> nn.Module:
    """Inject adapters as saved (if the model has none yet) and load their weights.

    All or nothing: every check runs before a tensor is copied, and a failed
    load leaves the model as it was (no adapters injected, flags and dtypes
    unchanged). Refused, with a message that says what differs: a file of
    another format version; a damaged file; a model of another class or shape;
    a model whose adapters have another config (method, r, lora_alpha, …); a
    merged model.
    """
    directory = Path(directory)
    meta = _read_meta(directory)
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{directory / CONFIG_NAME} has format {meta.get('format')!r} but this dcft_edu reads {FORMAT!r}: "
            "save the adapter again with this version"
        )
    config = config_from_dict(meta["config"])
    state = _read_weights(directory, meta)
    layers = adapter_layers(model)
    if any(layer.merged for _, layer in layers):
        raise ValueError(
            "this model's adapters are merged: unmerge_adapters(model) before loading "
            "(W would keep the old ΔW under the loaded A and B)"
        )
    own_config = getattr(model, "adapter_config", None)
    if layers and own_config != config:
        raise ValueError(
            f"the adapter in {directory} was saved with another config than this model's adapters: load it onto "
            "a model without adapters (load_adapters injects them as saved).\n  "
            + "\n  ".join(_diffs(config.to_dict(), own_config.to_dict() if own_config is not None else {}))
        )
    saved_fp = meta["fingerprint"]
    with _undo_on_error(model):
        if not layers:
            try:
                inject_adapters(model, config)
            except ValueError as e:
                raise ValueError(
                    f"the adapter in {directory} was saved from a {saved_fp.get('model_class')} and does not fit "
                    f"this {type(model).__name__}: {e}"
                ) from None
        fp = _fingerprint(model)
        # the adapted layers are compared apart: listing them all would drown the message
        diffs = _diffs({**saved_fp, "adapted": None}, {**fp, "adapted": None})
        if saved_fp.get("adapted") != fp.get("adapted"):
            diffs.append("the adapted layers (names or shapes) differ")
        if diffs:
            raise ValueError(
                f"the adapter in {directory} was trained on another model; load it onto the model it was saved "
                "from.\n  " + "\n  ".join(diffs)
            )
        own = _adapter_tensors(model)
        bad = sorted(set(own) ^ set(state)) + [k for k in state if k in own and own[k].shape != state[k].shape]
        if bad:
            raise ValueError(f"the adapter in {directory} does not fit this model; mismatched tensors: {bad[:5]}")
        # through load_state_dict, so that every layer's _load_from_state_dict runs (Delta-LoRA's step counter)
        model.load_state_dict(state, strict=False)
    return model


# ------------------------------------------------------------------ PEFT interop
#: PEFT's task_type for each HF head class suffix (None: a plain PeftModel)
PEFT_TASK_TYPES = {
    "ForSequenceClassification": "SEQ_CLS",
    "ForTokenClassification": "TOKEN_CLS",
    "ForQuestionAnswering": "QUESTION_ANS",
    "ForCausalLM": "CAUSAL_LM",
    "ForConditionalGeneration": "SEQ_2_SEQ_LM",
}


def export_peft(model: nn.Module, folder: str | os.PathLike) -> Path:
    """Write ``model``'s adapter as an HF PEFT LoRA folder; return the folder.

    ``peft.PeftModel.from_pretrained(pretrained, folder)`` then gives the same
    outputs as ``model``, where ``pretrained`` is the model before fine-tuning
    (for Delta-LoRA: with the ORIGINAL weights W_0, not the moved W_T). Every
    method becomes an exact LoRA, ΔW = (α′/r′) · lora_B lora_A:

    - LoRA: itself (r′ = r, α′ = α).
    - Delta-LoRA: the rank-2r LoRA on W_0 of ``export_delta_lora`` (r′ = 2r, α′ = 2α).
    - DCFT: the rank-(r·k) LoRA of its U·C·Vᵀ form, any stride, crop included
      (``DCFTLinear.exported_lora_factors``; r′ = r·k, α′ = α·k).

    The scale stays out of the factors: α′/r′ = α/r always. GPT-2's Conv1D layers
    get ``fan_in_fan_out=True``; the factors are in nn.Linear layout either way,
    as PEFT stores them. The ``modules_to_save`` (classifier head, pooler) are
    saved under their plain names, as PEFT's ``save_pretrained`` does. No peft
    import: the folder is two files, written atomically.
    """
    layers = adapter_layers(model)
    config = getattr(model, "adapter_config", None)
    if config is None or not layers:
        raise ValueError(
            f"this {type(model).__name__} has no adapters to export: call inject_adapters(model, config) and train "
            "first (a merge_and_unload()ed model is a plain model: save it with save_pretrained)"
        )
    merged = [name for name, layer in layers if layer.merged]
    if merged:
        raise ValueError(
            f"{len(merged)} adapter layers are merged (e.g. {merged[0]}): unmerge_adapters(model) before export_peft, "
            "or PEFT would add ΔW a second time on top of the merged weights"
        )
    if config.method == "delta_lora":
        factors, lora_config = export_delta_lora(model)
        r, lora_alpha = lora_config.r, lora_config.lora_alpha
    elif config.method == "dcft":
        factors = {n: dict(zip(("lora_A", "lora_B"), layer.exported_lora_factors())) for n, layer in layers}
        # r′ = r·k and α′ = α·k keep the scaling α′/r′ = α/r
        r, lora_alpha = config.r * config.kernel_size, config.lora_alpha * config.kernel_size
    else:
        factors = {n: {"lora_A": layer.lora_A, "lora_B": layer.lora_B} for n, layer in layers}
        r, lora_alpha = config.r, config.lora_alpha
    # PEFT's key of a LoRA factor: base_model.model.<module>.lora_A.weight (the ".default" is added on load)
    state = {f"base_model.model.{n}.{k}.weight": t for n, f in factors.items() for k, t in f.items()}
    # modules_to_save: base_model.model.<module>.<param> (PEFT re-adds ".modules_to_save.default" on load)
    heads = {k: v for k, v in adapter_state_dict(model).items() if not any(_inside(k, n) for n, _ in layers)}
    state.update({f"base_model.model.{k}": v for k, v in heads.items()})
    state = {k: v.detach().contiguous().cpu() for k, v in state.items()}
    head_names = [n for n, _ in model.named_modules() if any(_suffix_match(n, h) for h in config.modules_to_save)]
    task_type = next((t for suffix, t in PEFT_TASK_TYPES.items() if type(model).__name__.endswith(suffix)), None)
    peft_config = {
        "peft_type": "LORA",
        "task_type": task_type,
        "r": r,
        "lora_alpha": lora_alpha,
        "target_modules": [n for n, _ in layers],  # full names: PEFT matches a name or a ".name" suffix
        "fan_in_fan_out": any(layer.fan_in_fan_out for _, layer in layers),  # GPT-2's Conv1D
        "modules_to_save": head_names or None,
        "lora_dropout": float(getattr(config, "lora_dropout", 0.0)),
        "bias": "none",
        "base_model_name_or_path": getattr(getattr(model, "config", None), "_name_or_path", None) or None,
        "inference_mode": True,
    }
    out = Path(folder)
    atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"}))
    atomic_write(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(peft_config, indent=2)))
    return out
