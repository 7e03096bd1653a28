"""dcft_edu.experiments.data: the offline GLUE/E2E files read exactly as GLUE (and HF nyu-mll/glue) has them."""
from __future__ import annotations

import functools
import os
from collections import Counter
from pathlib import Path

import datasets
import pytest
import torch
from transformers import AutoTokenizer

from dcft_edu.experiments import data as D
from dcft_edu.experiments.models import default_model_path

ROOT = Path(os.environ[D.DATA_ENV])  # the full data, or the shipped sample (root conftest.py)
SAMPLE = Path(__file__).resolve().parent / "data" / "glue_sample"

# the HF nyu-mll/glue columns of each config
HF_COLUMNS = {
    "cola": ["sentence", "label", "idx"],
    "sst2": ["sentence", "label", "idx"],
    "mrpc": ["sentence1", "sentence2", "label", "idx"],
    "stsb": ["sentence1", "sentence2", "label", "idx"],
    "rte": ["sentence1", "sentence2", "label", "idx"],
    "qnli": ["question", "sentence", "label", "idx"],
}
# (rows, label counts) from GLUE: docs/data.md §3
EXPECTED = {
    ("cola", "train"): (8551, {1: 6023, 0: 2528}),
    ("cola", "dev"): (1043, {1: 721, 0: 322}),
    ("sst2", "train"): (67349, {1: 37569, 0: 29780}),
    ("sst2", "dev"): (872, {1: 444, 0: 428}),
    ("mrpc", "train"): (3668, {1: 2474, 0: 1194}),
    ("mrpc", "dev"): (408, {1: 279, 0: 129}),
    ("stsb", "train"): (5749, None),
    ("stsb", "dev"): (1500, None),
    ("rte", "train"): (2490, {0: 1249, 1: 1241}),  # entailment = 0
    ("rte", "dev"): (277, {0: 146, 1: 131}),
    ("qnli", "dev"): (5463, {1: 2761, 0: 2702}),
}


@functools.lru_cache(maxsize=None)
def glue(task: str, split: str) -> datasets.Dataset:
    return D.load_glue(task, split, root=ROOT)


@pytest.fixture
def env_root(monkeypatch) -> Path:
    monkeypatch.setenv(D.DATA_ENV, str(ROOT))
    return ROOT


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)


@pytest.mark.full_data
@pytest.mark.parametrize("task,split", list(EXPECTED))
def test_rows_labels_and_columns_match_glue(task, split):
    ds = glue(task, split)
    rows, counts = EXPECTED[(task, split)]
    assert len(ds) == rows == D.GLUE_TASKS[task].num_rows[split]
    assert ds.column_names == HF_COLUMNS[task]
    assert ds["idx"][:] == list(range(rows))
    if counts is not None:
        assert dict(Counter(ds["label"][:])) == counts
        assert ds.features["label"].names == list(D.GLUE_TASKS[task].label_names)
    for col in D.GLUE_TASKS[task].text_columns:
        assert all(isinstance(s, str) and s and s == s.strip() for s in ds[col][:])


@pytest.mark.full_data
def test_stsb_scores_are_float32_in_range():
    for split, mean in [("train", 2.701), ("dev", 2.364)]:
        ds = glue("stsb", split)
        assert ds.features["label"].dtype == "float32"
        labels = torch.tensor(ds["label"][:])
        assert labels.min() >= 0 and labels.max() <= 5
        assert labels.mean().item() == pytest.approx(mean, abs=5e-4)


def test_file_quirks_handled():
    sst = glue("sst2", "train")
    assert sst[0]["sentence"] == "hide new secretions from the parental units"  # trailing space stripped
    mrpc = glue("mrpc", "train")
    first = mrpc[0]["sentence1"]
    assert not first.startswith("\ufeff") and first.startswith("Amrozi accused his brother")
    assert '" the witness "' in first  # quoting off: the quotes stay in the text
    cola = glue("cola", "dev")
    assert cola[4] == {"sentence": "As you eat the most, you want the least.", "label": 0, "idx": 4}
    rte = glue("rte", "dev")
    assert rte[0]["label"] == 1 and rte[0]["sentence2"] == "Christopher Reeve had an accident."


def test_env_var_aliases_and_limit(env_root):
    assert D.data_root() == env_root
    assert D.data_root("/elsewhere") == Path("/elsewhere")
    for alias, task in [("RTE", "rte"), ("sst-2", "sst2"), ("STS-B", "stsb"), ("CoLA", "cola"), ("sts_b", "stsb")]:
        assert D.canonical_task(alias) == task
    ds = D.load_glue("STS-B", "validation", limit=7)
    assert len(ds) == 7 and ds.column_names == HF_COLUMNS["stsb"]
    assert ds["label"][:] == glue("stsb", "dev")["label"][:7]
    assert D.load_glue("rte", "train", limit=5)["sentence1"] == D.load_glue("rte", "train", limit=5)["sentence1"]
    assert len(D.load_glue("rte", "dev", limit=10_000)) == len(glue("rte", "dev"))  # a limit past the end: every row


def test_unknown_task_and_split_errors():
    with pytest.raises(ValueError, match="cola, sst2, mrpc, stsb, rte, qnli"):
        D.load_glue("mnli", "dev", root="/nowhere")
    with pytest.raises(ValueError, match="train, dev"):
        D.load_glue("rte", "test", root="/nowhere")


def test_missing_root_names_path_and_env(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        D.load_glue("rte", "dev", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "RTE" / "dev.tsv") in msg and D.DATA_ENV in msg and "<root>/RTE/train.tsv" in msg
    with pytest.raises(FileNotFoundError, match=D.DATA_ENV):
        D.load_e2e("dev", root=tmp_path)


def test_no_root_offline_gives_hint(monkeypatch):
    monkeypatch.delenv(D.DATA_ENV, raising=False)

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(RuntimeError, match=D.DATA_ENV) as err:
        D.load_glue("rte", "train")
    assert "online" in str(err.value)


def test_qnli_train_offline_error(tmp_path):
    (tmp_path / "QNLI").mkdir()
    with pytest.raises(FileNotFoundError, match="only QNLI dev"):
        D.load_glue("qnli", "train", root=tmp_path)


@pytest.mark.full_data
@pytest.mark.parametrize("split,rows", [("train", 42061), ("dev", 4672), ("test", 4693)])
def test_e2e_rows(split, rows):
    ds = D.load_e2e(split, root=ROOT)
    assert len(ds) == rows and ds.column_names == ["mr", "ref"]
    assert ds[0]["mr"].startswith("name[")  # the quoted field, commas and all, is one column
    assert all(r for r in ds["ref"][:])


@pytest.mark.full_data
def test_e2e_limit_and_quoting():
    ds = D.load_e2e("dev", root=ROOT, limit=3)
    assert len(ds) == 3
    assert ds[0]["mr"] == "name[Alimentum], area[city centre], familyFriendly[no]"


def test_tokenize_and_collate_pads_batches(tokenizer):
    ds = D.tokenize_glue(glue("rte", "dev").select(range(6)), tokenizer, "rte", max_length=48)
    assert set(ds.column_names) == {"input_ids", "token_type_ids", "attention_mask", "label"}
    lengths = [len(x) for x in ds["input_ids"][:]]
    assert max(lengths) <= 48 and len(set(lengths)) > 1  # truncated, not padded
    batch = D.make_collator(tokenizer)([ds[i] for i in range(6)])
    assert batch["input_ids"].shape == (6, max(lengths)) == batch["attention_mask"].shape
    assert batch["labels"].tolist() == glue("rte", "dev")["label"][:6]
    assert batch["attention_mask"].sum(1).tolist() == lengths


def test_make_dataloaders_seeded(env_root, tokenizer):
    def first_batch(seed):
        train, dev = D.make_dataloaders("stsb", tokenizer, batch_size=8, limit_train=32, limit_dev=12, seed=seed)
        return next(iter(train)), dev

    a, dev = first_batch(0)
    b, _ = first_batch(0)
    c, _ = first_batch(1)
    assert set(a) == {"input_ids", "token_type_ids", "attention_mask", "labels"}
    assert a["labels"].dtype == torch.float32 and a["input_ids"].shape[0] == 8
    assert torch.equal(a["input_ids"], b["input_ids"])
    assert not torch.equal(a["labels"], c["labels"])
    assert [len(x["labels"]) for x in dev] == [8, 4]
    assert torch.equal(next(iter(dev))["labels"], torch.tensor(glue("stsb", "dev")["label"][:8]))


def test_sample_covers_the_quick_scale():
    """The shipped sample has every row the quick preset (tests, notebooks under nbval) reads."""
    from dcft_edu.experiments.presets import PRESETS

    quick = PRESETS["quick"]
    for task in ("cola", "sst2", "mrpc", "stsb", "rte"):
        train, dev = D.load_glue(task, "train", root=SAMPLE), D.load_glue(task, "dev", root=SAMPLE)
        assert len(train) == 300 >= quick.limit_train and len(dev) == 200 >= quick.limit_dev


@pytest.mark.full_data
def test_sample_is_the_first_rows_of_the_full_files():
    files = sorted(SAMPLE.glob("*/*.tsv"))
    assert len(files) == 10
    for f in files:
        sample = f.read_bytes()
        assert (ROOT / f.parent.name / f.name).read_bytes()[:len(sample)] == sample, f


@pytest.mark.parametrize("task,rows,line,message", [
    # (file lines after the header, the bad line's number, what the error says)
    ("stsb", ["0\tg\tf\ty\t0\tn\tn\tA man.\tA man.\t5.0", "1\tg\tf\ty\t1\tn\tn\tA dog.\tA cat.\tnan"], 3,
     "STS-B score 'nan' is not a number in [0, 5]"),
    ("stsb", ["0\tg\tf\ty\t0\tn\tn\tA man.\tA man.\t37"], 2, "STS-B score '37' is not a number in [0, 5]"),
    ("stsb", ["0\tg\tf\ty\t0\tn\tn\tA man."], 2, "8 tab-separated fields, expected at least 10"),
    ("rte", ["0\tA man.\tA dog.\tmaybe"], 2, "RTE label 'maybe' is none of 0, 1, entailment, not_entailment"),
    ("cola", ["gj04\t1\t\tFine.", "gj04\tyes\t\tNot fine."], 2, "CoLA label 'yes' is none of 0, 1, unacceptable"),
])
def test_malformed_rows_name_file_line_and_what_was_expected(tmp_path, task, rows, line, message):
    spec = D.GLUE_TASKS[task]
    header = {"stsb": "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore",
              "rte": "index\tsentence1\tsentence2\tlabel", "cola": None}[task]
    path = tmp_path / spec.folder / "train.tsv"
    path.parent.mkdir()
    path.write_text("\n".join(([header] if header else []) + rows) + "\n")
    with pytest.raises(ValueError) as err:
        D.load_glue(task, "train", root=tmp_path)
    assert str(err.value).startswith(f"{path}:{line}: ") and message in str(err.value)
    assert "fix or delete the row" in str(err.value)


def test_missing_header_column_is_named(tmp_path):
    path = tmp_path / "RTE" / "dev.tsv"
    path.parent.mkdir()
    path.write_text("index\tsentence1\tsentence2\tgold\n0\tA.\tB.\tentailment\n")
    with pytest.raises(ValueError, match=r"dev.tsv:1: the header has no column 'label' \(it has index, sentence1"):
        D.load_glue("rte", "dev", root=tmp_path)
