"""Fetch GLUE and E2E NLG from the Hugging Face hub into the folder layout the package reads offline.

    python -m dcft_edu.experiments.fetch_data data            # CoLA, SST-2, MRPC, STS-B, RTE, QNLI and E2E
    python -m dcft_edu.experiments.fetch_data data --tasks rte mrpc
    export DCFT_EDU_DATA=$PWD/data                             # then every notebook and command reads it

For a user online, once: it downloads each task through ``datasets.load_dataset`` (``nyu-mll/glue``,
``tuetschek/e2e_nlg``) and writes GLUE's own on-disk layout, the one ``dcft_edu.experiments.data`` parses:

- ``<root>/<Task>/train.tsv`` and ``dev.tsv``: tab-separated, no quoting, with GLUE's header (CoLA: none, its
  four columns ``source, label, mark, sentence``), GLUE's label spelling (RTE and QNLI by name, STS-B a score);
- ``<root>/E2E/trainset.csv``, ``devset.csv``, ``testset_w_refs.csv``: csv with the columns ``mr, ref``;
- ``<root>/FETCHED.json``: for every file, where it came from, its rows, sha256, the ``datasets`` version
  and the date.

The hub holds the same rows as GLUE's files but not every column: CoLA's source code (written as ``hf``),
MRPC's sentence ids (written as the row index) and STS-B's genre and file names (left empty) are lost. No
loader here reads them. Tabs and line breaks inside a sentence (none in the real data) become spaces, counted
in the report. Each file is written whole or not at all (a temporary file, then renamed), read back with the
package's own loader and its rows counted; a file already there is kept unless ``--force``. Licences and
sources of the data: ``docs/data.md``.

Used by: ``tests/test_fetch_data.py``.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import datasets
import numpy as np

from .data import DATA_ENV, GLUE_TASKS, HF_E2E, HF_GLUE, get_task, load_e2e, load_glue

#: every task the command fetches by default, in GLUE's order, and E2E
ALL_TASKS = ("cola", "sst2", "mrpc", "stsb", "rte", "qnli", "e2e")
#: E2E's splits: (our split, the hub's split, the file name of the official release)
E2E_FILES = (("train", "train", "trainset.csv"), ("dev", "validation", "devset.csv"),
             ("test", "test", "testset_w_refs.csv"))
#: GLUE's header line of each task's tsv (``None``: CoLA has none), and how a hub row becomes a line's fields
GLUE_HEADERS: dict[str, Optional[list[str]]] = {
    "cola": None,
    "sst2": ["sentence", "label"],
    "mrpc": ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"],
    "stsb": ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
             "score"],
    "rte": ["index", "sentence1", "sentence2", "label"],
    "qnli": ["index", "question", "sentence", "label"],
}


def _glue_fields(task: str, row: dict, clean: Callable[[str], str]) -> list[str]:
    """One hub row of ``nyu-mll/glue`` as the fields of a line of GLUE's tsv."""
    spec = get_task(task)
    label = row["label"]
    if spec.is_regression:
        label_text = str(np.float32(label))  # the shortest text that reads back as the same float32
    else:
        if not 0 <= label < spec.num_labels:
            raise ValueError(f"{task} row {row['idx']}: label {label} is no class of {spec.folder} "
                             f"(the hub's test split has label -1; only train and validation are fetched)")
        label_text = spec.label_names[label] if task in ("rte", "qnli") else str(label)
    text = [clean(row[c]) for c in spec.text_columns]
    idx = str(row["idx"])
    return {
        "cola": lambda: ["hf", label_text, "" if label == 1 else "*", *text],
        "sst2": lambda: [*text, label_text],
        "mrpc": lambda: [label_text, idx, idx, *text],
        "stsb": lambda: [idx, "", "", "", "", "", "", *text, label_text],
        "rte": lambda: [idx, *text, label_text],
        "qnli": lambda: [idx, *text, label_text],
    }[task]()


class _Cleaner:
    """Replaces tabs and line breaks inside a text by spaces (they would break a tsv row), counting them."""

    def __init__(self):
        self.changed = 0

    def __call__(self, text: str) -> str:
        new = text.replace("\t", " ").replace("\r", " ").replace("\n", " ")
        self.changed += new != text
        return new


def _write_atomic(path: Path, write: Callable[[object], None], newline: Optional[str] = "") -> None:
    """Write ``path`` through ``write(file)`` into a temporary file beside it, then rename: whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "w", encoding="utf-8", newline=newline) as f:
            write(f)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _download(name: str, config: Optional[str], split: str) -> datasets.Dataset:
    """``datasets.load_dataset(name, config, split=split)``, with a message that says what failed and the fix."""
    try:
        return datasets.load_dataset(name, config, split=split) if config else datasets.load_dataset(name, split=split)
    except Exception as err:  # offline, hub down, renamed …
        what = f"{name}/{config}" if config else name
        raise ConnectionError(f"could not download {what} ({split}) from the Hugging Face hub: "
                              f"{type(err).__name__}: {err}. This command needs a network; on a machine without "
                              f"one, fetch on another machine and copy the folder.") from err


def fetch_glue_task(task: str, root: Union[str, Path], force: bool = False,
                    log: Callable[[str], object] = print) -> list[dict]:
    """Download one GLUE task's train and validation splits and write ``<root>/<Folder>/{train,dev}.tsv``.

    Returns one record per file written (see ``FETCHED.json``); a file already there is skipped unless ``force``.
    """
    spec = get_task(task)
    root = Path(root)
    records = []
    for split, hf_split in (("train", "train"), ("dev", "validation")):
        path = root / spec.folder / f"{split}.tsv"
        if path.is_file() and not force:
            log(f"{path}: already there (--force to fetch again)")
            continue
        ds = _download(HF_GLUE, spec.name, hf_split)
        clean, header = _Cleaner(), GLUE_HEADERS[spec.name]

        def write(f, ds=ds, clean=clean, header=header):
            if header:
                f.write("\t".join(header) + "\n")
            for row in ds:
                f.write("\t".join(_glue_fields(spec.name, row, clean)) + "\n")

        _write_atomic(path, write)
        back = load_glue(spec.name, split, root=root)  # read it back as every user of the data will
        if len(back) != len(ds):
            path.unlink()
            raise RuntimeError(f"{path}: wrote {len(ds)} rows but read back {len(back)}; the file was removed")
        records.append(_record(path, root, f"{HF_GLUE}/{spec.name}", hf_split, len(ds), clean.changed))
        expected = spec.num_rows.get(split)
        note = "" if expected in (None, len(ds)) else f" (GLUE's release has {expected}: the hub's copy differs)"
        log(f"{path}: {len(ds):,} rows{note}" + (f"; {clean.changed} texts had tabs or line breaks, now spaces"
                                                    if clean.changed else ""))
    return records


def fetch_e2e(root: Union[str, Path], force: bool = False, log: Callable[[str], object] = print) -> list[dict]:
    """Download E2E NLG (``tuetschek/e2e_nlg``) and write ``<root>/E2E/{trainset,devset,testset_w_refs}.csv``."""
    root = Path(root)
    records = []
    for split, hf_split, name in E2E_FILES:
        path = root / "E2E" / name
        if path.is_file() and not force:
            log(f"{path}: already there (--force to fetch again)")
            continue
        ds = _download(HF_E2E, None, hf_split)

        def write(f, ds=ds):
            out = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
            out.writerow(["mr", "ref"])
            for row in ds:
                out.writerow([row["meaning_representation"], row["human_reference"]])

        _write_atomic(path, write)
        back = load_e2e(split, root=root)
        if len(back) != len(ds):
            path.unlink()
            raise RuntimeError(f"{path}: wrote {len(ds)} rows but read back {len(back)}; the file was removed")
        records.append(_record(path, root, HF_E2E, hf_split, len(ds), 0))
        log(f"{path}: {len(ds):,} rows")
    return records


def _record(path: Path, root: Path, source: str, split: str, rows: int, cleaned: int) -> dict:
    return {"file": path.relative_to(root).as_posix(), "source": f"Hugging Face hub: {source}", "split": split,
            "rows": rows, "texts_with_tabs_or_line_breaks": cleaned,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "datasets": datasets.__version__,
            "fetched": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def fetch(root: Union[str, Path], tasks: Sequence[str] = ALL_TASKS, force: bool = False,
          log: Callable[[str], object] = print) -> Path:
    """Fetch ``tasks`` (GLUE names as ``data.canonical_task`` accepts them, and ``"e2e"``) into ``root``;
    update ``root/FETCHED.json``. Returns ``root``. Unknown task names raise before anything is downloaded."""
    root = Path(root).expanduser()
    names = ["e2e" if str(t).lower() == "e2e" else get_task(t).name for t in tasks]  # unknown names raise here
    manifest_path = root / "FETCHED.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    for name in dict.fromkeys(names):
        records = fetch_e2e(root, force, log) if name == "e2e" else fetch_glue_task(name, root, force, log)
        for rec in records:
            manifest[rec["file"]] = rec
        if records:
            _write_atomic(manifest_path, lambda f: f.write(json.dumps(manifest, indent=1, sort_keys=True) + "\n"))
    return root


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Download GLUE (CoLA, SST-2, MRPC, STS-B, RTE, QNLI) and E2E NLG from the Hugging Face hub into the
    on-disk layout that DCFT_EDU_DATA points at."""
    ap = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.fetch_data", description=main.__doc__)
    ap.add_argument("root", nargs="?", default="data", type=Path,
                    help="the folder to write (default: data, in the current folder)")
    ap.add_argument("--tasks", nargs="+", default=list(ALL_TASKS), metavar="TASK",
                    help=f"which to fetch, of: {' '.join(ALL_TASKS)} (default: all; QNLI's train split is 28 MB)")
    ap.add_argument("--force", action="store_true", help="fetch again files that are already there")
    args = ap.parse_args(argv)
    unknown = [t for t in args.tasks if t.lower() != "e2e" and t.lower().replace("-", "").replace("_", "")
               not in GLUE_TASKS]
    if unknown:
        ap.error(f"unknown task(s) {', '.join(unknown)}: expected some of {', '.join(ALL_TASKS)}")
    try:
        root = fetch(args.root, args.tasks, args.force)
    except (ConnectionError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"done. Point the package at it:  export {DATA_ENV}={root.resolve()}")


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
