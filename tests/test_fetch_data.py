"""``python -m dcft_edu.experiments.fetch_data``, offline: ``datasets.load_dataset`` is replaced by a stand-in
that serves small in-memory datasets shaped like the hub's (``nyu-mll/glue``, ``tuetschek/e2e_nlg``): the GLUE
sample shipped in tests/data, with a few awkward rows added, and hand-made QNLI and E2E rows. What the command
writes must read back through the package's own loaders as the very rows the hub gave, and look like GLUE's files.
"""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from dcft_edu.experiments import fetch_data
from dcft_edu.experiments.data import GLUE_TASKS, _glue_features, get_task, load_e2e, load_glue

SAMPLE = Path(__file__).resolve().parent / "data" / "glue_sample"
AWKWARD = 'a "quoted" word, a trailing space and an apostrophe \'s '  # GLUE's text is read with quoting off


def _hub_glue(task: str, split: str) -> datasets.Dataset:
    """What ``load_dataset("nyu-mll/glue", task, split=split)`` returns, in small: 20–25 rows with HF's columns."""
    spec = get_task(task)
    if task == "qnli":
        rows = {"question": [f"What is question {i}?" for i in range(12)],
                "sentence": [f"Sentence {i} answers it{' not' * (i % 2)}." for i in range(12)],
                "label": [i % 2 for i in range(12)], "idx": list(range(12))}
        ds = datasets.Dataset.from_dict(rows, features=_glue_features(spec))
    else:
        ds = load_glue(task, "dev" if split == "validation" else "train", root=SAMPLE, limit=20)
    extra = {c: [AWKWARD + c] for c in spec.text_columns}
    extra.update(label=[3.25 if spec.is_regression else 1], idx=[len(ds)])
    return datasets.concatenate_datasets([ds, datasets.Dataset.from_dict(extra, features=ds.features)])


def _hub_e2e(split: str) -> datasets.Dataset:
    n = {"train": 9, "validation": 5, "test": 4}[split]
    return datasets.Dataset.from_dict({
        "meaning_representation": [f"name[Place {i}], eatType[pub], food[French]" for i in range(n)],
        "human_reference": [f'Place {i}, a "French" pub,\nserves food.' for i in range(n)]})


@pytest.fixture
def hub(monkeypatch):
    """Replaces datasets.load_dataset; records every call."""
    calls = []

    def load_dataset(name, config=None, split=None):
        calls.append((name, config, split))
        if name == "nyu-mll/glue":
            return _hub_glue(config, split)
        assert name == "tuetschek/e2e_nlg" and config is None
        return _hub_e2e(split)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_glue_reads_back_as_the_hub_gave_it(hub, tmp_path):
    out = fetch_data.fetch(tmp_path / "data", ["cola", "SST-2", "mrpc", "stsb", "rte", "qnli"], log=lambda m: None)
    assert sorted(hub) == sorted(("nyu-mll/glue", t, s) for t in ("cola", "sst2", "mrpc", "stsb", "rte", "qnli")
                                 for s in ("train", "validation"))
    for task in ("cola", "sst2", "mrpc", "stsb", "rte", "qnli"):
        spec = get_task(task)
        for split, hf_split in (("train", "train"), ("dev", "validation")):
            theirs, ours = _hub_glue(task, hf_split), load_glue(task, split, root=out)
            assert ours.column_names == theirs.column_names and ours.features == theirs.features, task
            for col in spec.text_columns:  # the loader strips each text, as for GLUE's own files
                assert ours[col] == [t.strip() for t in theirs[col]], (task, split, col)
            assert ours["label"] == theirs["label"] and ours["idx"] == theirs["idx"], (task, split)
    # GLUE's file format: the sample's header line (CoLA: none, four fields), labels spelled as GLUE spells them
    for task in ("sst2", "mrpc", "stsb", "rte"):
        folder = get_task(task).folder
        ours = (out / folder / "dev.tsv").read_text(encoding="utf-8").splitlines()[0]
        assert ours == (SAMPLE / folder / "dev.tsv").read_text(encoding="utf-8-sig").splitlines()[0], task
    cola = (out / "CoLA" / "train.tsv").read_text().splitlines()
    assert all(len(line.split("\t")) == 4 for line in cola)
    assert [line.split("\t")[2] for line in cola[:3]] == ["*" if lab == 0 else "" for lab in
                                                         load_glue("cola", "train", root=out)["label"][:3]]
    assert (out / "RTE" / "dev.tsv").read_text().splitlines()[1].split("\t")[-1] in ("entailment", "not_entailment")
    manifest = json.loads((out / "FETCHED.json").read_text())
    assert manifest["QNLI/dev.tsv"]["rows"] == 13 and manifest["QNLI/dev.tsv"]["source"].endswith("nyu-mll/glue/qnli")
    assert len(manifest) == 12 and all(len(r["sha256"]) == 64 for r in manifest.values())


def test_e2e_reads_back_and_line_breaks_survive(hub, tmp_path):
    fetch_data.fetch(tmp_path, ["e2e"], log=lambda m: None)
    assert sorted(hub) == sorted(("tuetschek/e2e_nlg", None, s) for s in ("train", "validation", "test"))
    for split, hf_split, name in fetch_data.E2E_FILES:
        ours, theirs = load_e2e(split, root=tmp_path), _hub_e2e(hf_split)
        assert ours["mr"] == theirs["meaning_representation"] and ours["ref"] == theirs["human_reference"]
        assert (tmp_path / "E2E" / name).read_text().startswith('"mr","ref"\n')


def test_tabs_in_a_text_become_spaces_and_are_counted(hub, monkeypatch, tmp_path):
    plain = _hub_glue

    def with_tab(task, split):
        ds = plain(task, split)
        return ds.map(lambda r, i: {"sentence1": r["sentence1"] + ("\tand\nmore" if i == 0 else "")}, with_indices=True)

    monkeypatch.setitem(globals(), "_hub_glue", with_tab)
    said = []
    fetch_data.fetch(tmp_path, ["rte"], log=said.append)
    first = load_glue("rte", "train", root=tmp_path)["sentence1"][0]
    assert first.endswith(" and more") and "\t" not in first
    assert any("1 texts had tabs or line breaks" in s for s in said)
    assert len(load_glue("rte", "train", root=tmp_path)) == len(with_tab("rte", "train"))


def test_kept_unless_forced_and_never_half_written(hub, monkeypatch, tmp_path):
    fetch_data.fetch(tmp_path, ["mrpc"], log=lambda m: None)
    hub.clear()
    said = []
    fetch_data.fetch(tmp_path, ["mrpc"], log=said.append)
    assert hub == [] and all("already there" in s for s in said) and len(said) == 2
    fetch_data.fetch(tmp_path, ["mrpc"], force=True, log=lambda m: None)
    assert len(hub) == 2

    def broken(name, config=None, split=None):  # the download dies after a few rows were written
        def rows():
            yield from _hub_glue("sst2", "train").select(range(3))
            raise ConnectionResetError("connection lost")
        return _Iterable(rows)

    monkeypatch.setattr(datasets, "load_dataset", broken)
    with pytest.raises(ConnectionResetError):
        fetch_data.fetch(tmp_path, ["sst2"], log=lambda m: None)
    assert not (tmp_path / "SST-2").exists() or not any((tmp_path / "SST-2").iterdir())  # no file, no .partial


class _Iterable:
    def __init__(self, rows):
        self.rows = rows

    def __iter__(self):
        return self.rows()

    def __len__(self):
        return 21


def test_offline_is_a_clear_error_before_any_file(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SystemExit) as exit_:
        fetch_data.main([str(tmp_path / "d"), "--tasks", "rte"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "could not download nyu-mll/glue/rte (train)" in err and "needs a network" in err
    assert "Traceback" not in err and not (tmp_path / "d" / "RTE").exists()
    with pytest.raises(SystemExit) as exit_:
        fetch_data.main([str(tmp_path / "d"), "--tasks", "rte", "mnli"])
    assert exit_.value.code == 2 and "unknown task(s) mnli" in capsys.readouterr().err


def test_every_glue_task_of_the_package_can_be_fetched():
    assert set(fetch_data.GLUE_HEADERS) == set(GLUE_TASKS) and set(fetch_data.ALL_TASKS) == set(GLUE_TASKS) | {"e2e"}
