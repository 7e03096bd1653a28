"""GLUE and E2E data: read the offline files, or fall back to the HF hub.

Where the data comes from, in order:

1. a ``root`` argument, or the ``DCFT_EDU_DATA`` environment variable: a
   folder laid out like GLUE's ``download_glue_data.py`` output
   (``<root>/RTE/train.tsv``, ``<root>/CoLA/dev.tsv``, ``<root>/E2E/devset.csv`` …).
   The files are read as ``docs/data.md`` §2 describes;
2. otherwise ``datasets.load_dataset("nyu-mll/glue", ...)`` (online users, Colab).

Either way a GLUE split comes back as a ``datasets.Dataset`` with exactly the
columns of the HF ``nyu-mll/glue`` dataset (the task's text columns, ``label``,
``idx``) and HF's label ids, so the rest of the package never knows which path
was taken. Splits are ``"train"`` and ``"dev"`` (GLUE's test labels are
private; both papers report dev, as we do).

Used in: notebooks 06; used by ``dcft_edu.experiments.trainer`` and ``dcft_edu.experiments.presets``.
"""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import datasets
import torch
from torch.utils.data import DataLoader
from transformers import DataCollatorWithPadding

DATA_ENV = "DCFT_EDU_DATA"
HF_GLUE = "nyu-mll/glue"
HF_E2E = "tuetschek/e2e_nlg"

PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class TaskSpec:
    """Everything the package needs to know about one GLUE task.

    ``max_length`` is the default truncation length in tokens: the official
    DCFT scripts' values capped at 256 (docs/method_notes.md §1; ``tokenize_glue`` and the
    presets take an override): CoLA 64, SST-2 128, MRPC 256, STS-B 128,
    RTE 256, QNLI 256.
    ``num_rows`` are GLUE's official split sizes (QNLI train is not shipped
    offline but its size is kept for step counting).
    """

    name: str  # HF glue config name, e.g. "sst2"
    folder: str  # folder on disk, e.g. "SST-2"
    text_columns: tuple[str, ...]
    num_labels: int  # 1: regression (STS-B)
    label_names: tuple[str, ...]  # empty for regression
    metrics: tuple[str, ...]  # keys that ``metrics.compute_metrics`` returns
    main_metric: str  # the number the papers report
    max_length: int
    num_rows: dict[str, int] = field(default_factory=dict)  # {"train": ..., "dev": ...}

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


GLUE_TASKS: dict[str, TaskSpec] = {
    "cola": TaskSpec("cola", "CoLA", ("sentence",), 2, ("unacceptable", "acceptable"),
                     ("matthews_correlation",), "matthews_correlation", 64, {"train": 8551, "dev": 1043}),
    "sst2": TaskSpec("sst2", "SST-2", ("sentence",), 2, ("negative", "positive"),
                     ("accuracy",), "accuracy", 128, {"train": 67349, "dev": 872}),
    "mrpc": TaskSpec("mrpc", "MRPC", ("sentence1", "sentence2"), 2, ("not_equivalent", "equivalent"),
                     ("accuracy", "f1"), "accuracy", 256, {"train": 3668, "dev": 408}),
    "stsb": TaskSpec("stsb", "STS-B", ("sentence1", "sentence2"), 1, (),
                     ("pearson", "spearmanr"), "pearson", 128, {"train": 5749, "dev": 1500}),
    "rte": TaskSpec("rte", "RTE", ("sentence1", "sentence2"), 2, ("entailment", "not_entailment"),
                    ("accuracy",), "accuracy", 256, {"train": 2490, "dev": 277}),
    "qnli": TaskSpec("qnli", "QNLI", ("question", "sentence"), 2, ("entailment", "not_entailment"),
                     ("accuracy",), "accuracy", 256, {"train": 104743, "dev": 5463}),
}

#: Where each task's label and text sit in its tsv: (has_header, label column, text columns).
#: Columns are names for files with a header, positions for CoLA (no header).
_TSV_LAYOUT: dict[str, tuple[bool, Union[str, int], tuple[Union[str, int], ...]]] = {
    "cola": (False, 1, (3,)),  # source, label, original_mark, sentence
    "sst2": (True, "label", ("sentence",)),
    "mrpc": (True, "Quality", ("#1 String", "#2 String")),
    "stsb": (True, "score", ("sentence1", "sentence2")),
    "rte": (True, "label", ("sentence1", "sentence2")),
    "qnli": (True, "label", ("question", "sentence")),
}

_SPLITS = {"train": "train", "dev": "dev", "validation": "dev", "val": "dev"}
_LAYOUT_HINT = (
    f"Set {DATA_ENV} (or pass root=) to a folder laid out like GLUE: "
    "<root>/CoLA/dev.tsv, <root>/SST-2/train.tsv, <root>/MRPC/..., <root>/STS-B/..., "
    "<root>/RTE/train.tsv, <root>/QNLI/dev.tsv, <root>/E2E/devset.csv"
)


def data_root(root: Optional[PathLike] = None) -> Optional[Path]:
    """The offline data folder: ``root`` if given, else ``$DCFT_EDU_DATA``, else ``None``.

    Used by: ``load_glue``, ``load_e2e``; set once at the top of ``07_glue_main_results``.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def canonical_task(task: str) -> str:
    """``"SST-2"``, ``"sst_2"``, ``"CoLA"`` → ``"sst2"``, ``"cola"``; unknown names raise, listing the tasks.

    Used by: ``dcft_edu.experiments.presets`` and every function here.
    """
    key = str(task).lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in GLUE_TASKS:
        raise ValueError(f"unknown GLUE task {task!r}: expected one of {', '.join(GLUE_TASKS)}")
    return key


def get_task(task: str) -> TaskSpec:
    """The ``TaskSpec`` of a task (aliases accepted, see ``canonical_task``).

    Used by: ``dcft_edu.experiments.models`` and ``dcft_edu.experiments.metrics``.
    """
    return GLUE_TASKS[canonical_task(task)]


def _canonical_split(split: str, allowed: Sequence[str] = ("train", "dev")) -> str:
    s = _SPLITS.get(str(split).lower(), str(split).lower())
    if s not in allowed:
        raise ValueError(f"unknown split {split!r}: expected one of {', '.join(allowed)}")
    return s


def _glue_features(spec: TaskSpec) -> datasets.Features:
    feats = {col: datasets.Value("string") for col in spec.text_columns}
    if spec.is_regression:
        feats["label"] = datasets.Value("float32")
    else:
        feats["label"] = datasets.ClassLabel(names=list(spec.label_names))
    feats["idx"] = datasets.Value("int32")
    return datasets.Features(feats)


def _parse_label(spec: TaskSpec, raw: str, where: str) -> Union[int, float]:
    """One label cell → HF's label: an STS-B score in [0, 5], else a class id (RTE/QNLI names → ids)."""
    if spec.is_regression:
        try:
            score = float(raw)
        except ValueError:
            score = math.nan
        if not 0.0 <= score <= 5.0:  # NaN fails this too
            raise ValueError(f"{where}: STS-B score {raw!r} is not a number in [0, 5]; fix or delete the row")
        return score
    if raw in spec.label_names:  # RTE / QNLI: names → HF ids
        return spec.label_names.index(raw)
    ids = [str(i) for i in range(spec.num_labels)]
    if raw not in ids:
        raise ValueError(f"{where}: {spec.folder} label {raw!r} is none of {', '.join(ids + list(spec.label_names))}; "
                         "fix or delete the row")
    return int(raw)


def _read_glue_tsv(spec: TaskSpec, path: Path, limit: Optional[int]) -> datasets.Dataset:
    """Parse one GLUE tsv as docs/data.md §2 says: quoting off, BOM stripped, text stripped.

    A malformed row (too few fields, a label outside the task's) raises a ValueError naming ``file:line``.
    """
    has_header, label_col, text_cols = _TSV_LAYOUT[spec.name]
    columns: dict[str, list] = {c: [] for c in (*spec.text_columns, "label", "idx")}
    try:
        return _parse_glue_tsv(spec, path, limit, has_header, label_col, text_cols, columns)
    except UnicodeDecodeError as e:  # named with the file and line, not a codec traceback
        from .validate import not_utf8

        raw = path.read_bytes()
        try:
            raw.decode("utf-8-sig")
        except UnicodeDecodeError as whole:
            e = whole
        raise ValueError(not_utf8(path, raw, e)) from None


def _parse_glue_tsv(spec: TaskSpec, path: Path, limit: Optional[int], has_header: bool, label_col, text_cols,
                    columns: dict[str, list]) -> datasets.Dataset:
    with open(path, encoding="utf-8-sig", newline="") as f:  # utf-8-sig: MRPC has a BOM
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if has_header:
            header = next(reader)
            pos = {name: i for i, name in enumerate(header)}
            absent = [c for c in (label_col, *text_cols) if c not in pos]
            if absent:
                raise ValueError(f"{path}:1: the header has no column {', '.join(map(repr, absent))} "
                                 f"(it has {', '.join(header)}); {spec.folder} needs a GLUE header")
            label_i = pos[label_col]
            text_is = [pos[c] for c in text_cols]
        else:
            label_i, text_is = label_col, list(text_cols)
        need = max(label_i, *text_is) + 1
        for n, row in enumerate(reader):
            if limit is not None and n >= limit:
                break
            where = f"{path}:{reader.line_num}"
            if len(row) < need:
                raise ValueError(f"{where}: {len(row)} tab-separated fields, expected at least {need} (label in field "
                                 f"{label_i + 1}, text in {', '.join(str(i + 1) for i in text_is)}); fix or delete the row")
            label = _parse_label(spec, row[label_i].strip(), where)
            for col, i in zip(spec.text_columns, text_is):
                columns[col].append(row[i].strip())  # SST-2: trailing space before the tab
            columns["label"].append(label)
            columns["idx"].append(n)
    if not columns["label"] and limit != 0:  # a header alone: an empty split can neither train nor be evaluated
        raise ValueError(f"{path}: no data rows (only {'a header' if has_header else 'nothing'}); "
                         f"an empty {path.stem} split can neither train nor be evaluated: restore the file "
                         "(python -m dcft_edu.experiments.fetch_data)")
    return datasets.Dataset.from_dict(columns, features=_glue_features(spec))


def load_glue(task: str, split: str, root: Optional[PathLike] = None, limit: Optional[int] = None) -> datasets.Dataset:
    """One GLUE split as a ``datasets.Dataset`` with the HF ``nyu-mll/glue`` columns.

    ``split`` is ``"train"`` or ``"dev"`` (``"validation"`` accepted). With a
    ``root`` (or ``$DCFT_EDU_DATA``) the local tsv is read; otherwise the HF hub
    is tried. ``limit`` keeps the first N rows (file order: deterministic).
    Labels: CoLA/SST-2/MRPC as in the file, RTE/QNLI entailment=0 and
    not_entailment=1, STS-B a float32 score in [0, 5].

    Used by: ``make_dataloaders``.
    """
    spec = get_task(task)
    split = _canonical_split(split)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    root_path = data_root(root)
    if root_path is not None:
        path = root_path / spec.folder / f"{split}.tsv"
        if not path.is_file():
            if spec.name == "qnli" and split == "train":
                raise FileNotFoundError(
                    f"{path} not found: the offline data ships only QNLI dev (5463 rows); QNLI train "
                    "(~28 MB) is not included. Evaluate on QNLI dev, make a self-split of it, "
                    f"or unset {DATA_ENV} and go online to use {HF_GLUE}."
                )
            raise FileNotFoundError(f"{path} not found. {_LAYOUT_HINT}.")
        return _read_glue_tsv(spec, path, limit)
    try:
        hf_split = "validation" if split == "dev" else "train"
        if limit is not None:
            hf_split = f"{hf_split}[:{limit}]"
        return datasets.load_dataset(HF_GLUE, spec.name, split=hf_split)
    except Exception as err:  # offline, hub down, no cache …
        raise RuntimeError(
            f"could not load GLUE {spec.name}/{split}: no local data and the HF hub failed "
            f"({type(err).__name__}: {err}). {_LAYOUT_HINT}; or go online to use {HF_GLUE}."
        ) from err


def load_e2e(split: str, root: Optional[PathLike] = None, limit: Optional[int] = None) -> datasets.Dataset:
    """E2E NLG as a Dataset with columns ``mr`` (meaning representation) and ``ref`` (one reference).

    Splits ``"train"``/``"dev"``/``"test"`` (42061 / 4672 / 4693 rows) from
    ``<root>/E2E/{trainset,devset,testset_w_refs}.csv`` (real csv, quoted);
    without a root, the HF hub's ``tuetschek/e2e_nlg`` is tried.

    Gives the length of the paper's E2E run, to place its K (``REPORT.md``, section 14).
    """
    split = _canonical_split(split, ("train", "dev", "test"))
    root_path = data_root(root)
    if root_path is not None:
        name = {"train": "trainset.csv", "dev": "devset.csv", "test": "testset_w_refs.csv"}[split]
        path = root_path / "E2E" / name
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found. {_LAYOUT_HINT}.")
        mrs, refs = [], []
        try:
            with open(path, encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f)
                for n, row in enumerate(reader):
                    if n == 0 and not {"mr", "ref"} <= set(row):
                        raise ValueError(f"{path}:1: the header has no 'mr' and 'ref' columns (it has "
                                         f"{', '.join(reader.fieldnames or [])}); E2E needs the challenge's csv")
                    if limit is not None and n >= limit:
                        break
                    mrs.append(row["mr"])
                    refs.append(row["ref"])
        except UnicodeDecodeError:
            from .validate import not_utf8

            raw = path.read_bytes()
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(not_utf8(path, raw, e)) from None
            raise
        if not mrs and limit != 0:
            raise ValueError(f"{path}: no data rows; an empty E2E {split} split can neither train nor be evaluated: "
                             "restore the file (python -m dcft_edu.experiments.fetch_data)")
        return datasets.Dataset.from_dict({"mr": mrs, "ref": refs})
    try:
        hf_split = {"train": "train", "dev": "validation", "test": "test"}[split]
        if limit is not None:
            hf_split = f"{hf_split}[:{limit}]"
        ds = datasets.load_dataset(HF_E2E, split=hf_split)
        return ds.rename_columns({"meaning_representation": "mr", "human_reference": "ref"})
    except Exception as err:
        raise RuntimeError(
            f"could not load E2E {split}: no local data and the HF hub failed ({type(err).__name__}: {err}). "
            f"{_LAYOUT_HINT}; or go online to use {HF_E2E}."
        ) from err


def tokenize_glue(dataset: datasets.Dataset, tokenizer, task: str, max_length: Optional[int] = None) -> datasets.Dataset:
    """Tokenize a GLUE split (truncation, no padding); keeps only the model inputs and ``label``.

    Padding is left to the collator (``make_collator``), so each batch is only
    as long as its longest example. ``max_length`` defaults to the task's
    ``TaskSpec.max_length``.

    Used by: ``make_dataloaders``.
    """
    spec = get_task(task)
    max_length = max_length or spec.max_length

    def encode(batch):
        texts = [batch[c] for c in spec.text_columns]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    drop = [c for c in dataset.column_names if c != "label"]
    return dataset.map(encode, batched=True, remove_columns=drop, desc=f"tokenize {spec.name}")


def make_collator(tokenizer) -> DataCollatorWithPadding:
    """A ``DataCollatorWithPadding``: pads each batch to its longest example, renames ``label`` → ``labels``.

    Used by: ``make_dataloaders``.
    """
    if tokenizer.pad_token is None:
        raise ValueError(
            "the tokenizer has no pad token (GPT-2/Llama style); set e.g. "
            "tokenizer.pad_token = tokenizer.eos_token and model.config.pad_token_id to match"
        )
    return DataCollatorWithPadding(tokenizer, return_tensors="pt")


#: The share of the training rows held out for model selection (``RunConfig.select_on="train_holdout"``),
#: drawn once with a fixed seed: the same rows for every method, learning rate and run seed
HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 0


def holdout_size(n: int, fraction: float = HOLDOUT_FRACTION) -> int:
    """How many of ``n`` training rows ``split_holdout`` holds out: ⌈fraction · n⌉ (as ``Dataset.train_test_split``)."""
    return math.ceil(fraction * n)


def split_holdout(dataset: datasets.Dataset, fraction: float = HOLDOUT_FRACTION) -> tuple[datasets.Dataset, datasets.Dataset]:
    """``(train rows, held-out rows)``: a fixed random ``fraction`` of ``dataset`` (seed ``HOLDOUT_SEED``) set aside.

    Used by: ``make_dataloaders``.
    """
    if not 0.0 < fraction < 1.0 or holdout_size(len(dataset), fraction) >= len(dataset):
        raise ValueError(f"holdout fraction {fraction} of {len(dataset)} training rows: need 0 < fraction < 1 and at "
                         "least one row left to train on; use more training rows (limit_train) or a larger fraction")
    parts = dataset.train_test_split(test_size=fraction, seed=HOLDOUT_SEED, shuffle=True)
    return parts["train"], parts["test"]


def make_dataloaders(
    task: str,
    tokenizer,
    batch_size: int,
    limit_train: Optional[int] = None,
    limit_dev: Optional[int] = None,
    root: Optional[PathLike] = None,
    seed: int = 0,
    max_length: Optional[int] = None,
    num_workers: int = 0,
    holdout_fraction: float = 0.0,
) -> tuple[DataLoader, ...]:
    """``(train_loader, dev_loader)`` for a GLUE task, ready for a training loop.

    The train loader shuffles with its own ``torch.Generator`` seeded by
    ``seed`` (same seed → same batch order, whatever else used the global RNG);
    the dev loader keeps file order. Batches are dicts of tensors:
    ``input_ids``, ``attention_mask`` (``token_type_ids`` for BERT-style
    tokenizers) and ``labels``. ``holdout_fraction > 0`` sets that share of the
    (first ``limit_train``) training rows apart (``split_holdout``) and returns
    ``(train_loader, dev_loader, holdout_loader)``.

    Used by: ``dcft_edu.experiments.trainer``; used in ``06_delta_lora_update``.
    """
    collate = make_collator(tokenizer)
    train = tokenize_glue(load_glue(task, "train", root=root, limit=limit_train), tokenizer, task, max_length)
    dev = tokenize_glue(load_glue(task, "dev", root=root, limit=limit_dev), tokenizer, task, max_length)
    holdout = None
    if holdout_fraction:
        train, holdout = split_holdout(train, holdout_fraction)
    gen = torch.Generator().manual_seed(seed)
    train_loader = DataLoader(train, batch_size=batch_size, shuffle=True, generator=gen,
                              collate_fn=collate, num_workers=num_workers)

    def fixed_order(ds):
        return DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate, num_workers=num_workers)

    if holdout is None:
        return train_loader, fixed_order(dev)
    return train_loader, fixed_order(dev), fixed_order(holdout)
