"""dcft_edu.experiments.models (offline MiniLM, tiny random models, meta-device configs) and dcft_edu.experiments.metrics."""
from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from dcft_edu.experiments import metrics as M
from dcft_edu.experiments.data import get_task
from dcft_edu.experiments import models
from dcft_edu.experiments.models import (
    ARCHS,
    deberta_v3_base_config,
    load_model,
    meta_model,
    roberta_large_config,
    tiny_model,
)

SENTS = ("A man is playing a guitar.", "Someone plays an instrument.")


# ---- load_model: the packaged MiniLM, offline --------------------------------

def test_model_name_resolution(monkeypatch):
    default = models.default_model_path()
    assert (Path(default) / "config.json").is_file()
    monkeypatch.delenv(models.MODEL_ENV, raising=False)
    assert models.resolve_model_name() == default
    monkeypatch.setenv(models.MODEL_ENV, "/from/env")
    assert models.resolve_model_name() == "/from/env"
    assert models.resolve_model_name("/from/arg") == "/from/arg"


@pytest.mark.parametrize("task,num_labels,problem", [("rte", 2, "single_label_classification"), ("STS-B", 1, "regression")])
def test_load_packaged_minilm(monkeypatch, caplog, task, num_labels, problem):
    monkeypatch.delenv(models.MODEL_ENV, raising=False)
    torch.manual_seed(0)
    with caplog.at_level(logging.WARNING, logger="dcft_edu.experiments.models"):
        model, tok = load_model(task)
    notes = [r.getMessage() for r in caplog.records if r.name == "dcft_edu.experiments.models"]
    assert len(notes) == 1 and "classifier.weight" in notes[0]  # the fresh head, summarised on one line
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert model.config.num_labels == num_labels and model.config.problem_type == problem
    assert model.config.num_hidden_layers == 6 and model.config.hidden_size == 384
    if num_labels == 2:
        assert model.config.id2label == {0: "entailment", 1: "not_entailment"}
    batch = tok([SENTS[0]], [SENTS[1]], return_tensors="pt")
    batch = {k: torch.cat([v, v]) for k, v in batch.items()}  # two real sentence pairs
    labels = torch.tensor([0.5, 4.0]) if num_labels == 1 else torch.tensor([0, 1])
    model.eval()
    with torch.no_grad():
        out = model(**batch, labels=labels)
    assert out.logits.shape == (2, num_labels) and torch.isfinite(out.logits).all() and torch.isfinite(out.loss)


def test_load_model_float16_folder_comes_back_float32(tmp_path):
    tiny = tiny_model("bert", vocab_size=30522).half()
    tiny.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(models.default_model_path(), local_files_only=True).save_pretrained(tmp_path)
    model, _ = load_model("cola", name=str(tmp_path))
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert model.config.id2label[1] == "acceptable"


def test_load_model_missing_folder_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match=models.MODEL_ENV):
        load_model("rte", name=str(tmp_path / "no_such_model"))


# ---- tiny random models and real-size configs --------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_tiny_model_forward(arch):
    torch.manual_seed(0)
    model = tiny_model(arch)
    assert model.config.hidden_size == 32 and model.config.num_hidden_layers == 2
    ids = torch.randint(3, 90, (3, 7))
    mask = torch.ones_like(ids)
    ids[0, 5:], mask[0, 5:] = 0, 0  # a padded row (pad id 0 for every arch)
    if model.config.eos_token_id is not None:  # T5 and BART classify from the last eos token of each row
        ids[1:, 6] = ids[0, 4] = model.config.eos_token_id
    out = model(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1]))
    assert out.logits.shape == (3, 2) and torch.isfinite(out.loss)
    out.loss.backward()
    reg = tiny_model(arch, task="stsb", hidden_size=48, intermediate_size=96)
    assert reg.config.num_labels == 1 and reg.config.problem_type == "regression"
    assert reg(input_ids=ids, attention_mask=mask).logits.shape == (3, 1)
    assert reg.config.hidden_size == 48


def test_meta_models_have_real_shapes_and_no_storage():
    model = meta_model(deberta_v3_base_config())
    params = dict(model.named_parameters())
    assert all(p.is_meta for p in params.values())
    assert params["embeddings.word_embeddings.weight"].shape == (128100, 768)
    assert params["encoder.layer.11.intermediate.dense.weight"].shape == (3072, 768)
    assert params["encoder.layer.0.attention.self.query_proj.weight"].shape == (768, 768)
    assert len(model.encoder.layer) == 12
    assert sum(p.numel() for p in params.values()) == 183_831_552  # "184M" in the DeBERTa-v3 card
    large = meta_model(roberta_large_config())
    assert sum(p.numel() for p in large.parameters()) == 355_359_744
    assert large.config.num_attention_heads == 16 and large.config.intermediate_size == 4096


# ---- metrics ----------------------------------------------------------------

def test_perfect_predictions_score_one():
    labels = np.array([0, 1, 1, 0, 1])
    logits = np.eye(2)[labels] * 3.0  # (N, 2) logits
    for task in ("cola", "sst2", "mrpc", "rte", "qnli"):
        m = M.compute_metrics(task, logits, labels)
        assert set(m) == set(get_task(task).metrics)
        assert all(v == 1.0 for v in m.values())
        assert M.main_metric(task, m) == 1.0
    scores = np.array([0.0, 1.2, 3.4, 5.0])
    m = M.compute_metrics("stsb", scores[:, None], scores)  # (N, 1) regression output
    assert m == {"pearson": pytest.approx(1.0), "spearmanr": pytest.approx(1.0)}


def test_metrics_small_cases_against_formulas():
    labels, preds = [1, 1, 0, 0], [1, 0, 0, 0]  # TP 1, FN 1, TN 2, FP 0
    mcc = (1 * 2 - 0 * 1) / math.sqrt((1 + 0) * (1 + 1) * (2 + 0) * (2 + 1))
    assert M.compute_metrics("CoLA", preds, labels)["matthews_correlation"] == pytest.approx(mcc)
    m = M.compute_metrics("mrpc", torch.tensor(preds), torch.tensor(labels))
    assert m["accuracy"] == 0.75 and m["f1"] == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))
    assert M.main_metric("mrpc", m) == 0.75
    x, y = np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0])
    r = np.sum((x - x.mean()) * (y - y.mean())) / math.sqrt(np.sum((x - x.mean()) ** 2) * np.sum((y - y.mean()) ** 2))
    m = M.compute_metrics("stsb", torch.tensor(x, dtype=torch.bfloat16), y)
    assert m["pearson"] == pytest.approx(r) and m["spearmanr"] == pytest.approx(1.0)
    assert M.main_metric("sts-b", m) == m["pearson"]


def test_degenerate_predictions_give_zero_with_warning():
    with pytest.warns(RuntimeWarning, match="undefined"):
        assert M.compute_metrics("cola", [1, 1, 1, 1], [1, 0, 1, 0]) == {"matthews_correlation": 0.0}
    with pytest.warns(RuntimeWarning, match="undefined"):
        m = M.compute_metrics("stsb", [2.0, 2.0, 2.0], [1.0, 2.0, 3.0])
    assert m == {"pearson": 0.0, "spearmanr": 0.0}
    assert M.compute_metrics("mrpc", [0, 0], [1, 0])["f1"] == 0.0
    with pytest.raises(ValueError, match="regression"):
        M.compute_metrics("stsb", np.zeros((3, 2)), [1.0, 2.0, 3.0])
    with pytest.raises(KeyError, match="matthews_correlation"):
        M.main_metric("cola", {"accuracy": 0.5})
