"""The command lines' help pages: every preset explained, "gpu" never called the papers' recipe, and a default
shown only where an option has one, once."""
from __future__ import annotations

import argparse
import re

import pytest

from dcft_edu.experiments import bench, sweep, train
from dcft_edu.experiments.helptext import DefaultsHelpFormatter, preset_descriptions
from dcft_edu.experiments.presets import SCALES


def _help(main_or_parser, argv, capsys) -> str:
    if isinstance(main_or_parser, argparse.ArgumentParser):
        return main_or_parser.format_help()
    with pytest.raises(SystemExit) as e:
        main_or_parser(argv)
    assert e.value.code == 0
    return capsys.readouterr().out


PAGES = {
    "train": lambda capsys: _help(train.build_parser(), None, capsys),
    "sweep": lambda capsys: _help(sweep.main, ["--help"], capsys),
    "bench adapters": lambda capsys: _help(bench.main, ["adapters", "--help"], capsys),
    "bench train": lambda capsys: _help(bench.main, ["train", "--help"], capsys),
    "bench ops": lambda capsys: _help(bench.main, ["ops", "--help"], capsys),
}


@pytest.mark.parametrize("page", list(PAGES))
def test_help_shows_no_none_default_and_no_default_twice(page, capsys):
    page_text = PAGES[page](capsys)
    text = " ".join(page_text.split())  # argparse wraps lines: compare as one line
    assert "(default: None)" not in text and "default: []" not in text
    for entry in re.split(r"\n(?=  -|\S)", page_text):  # one option (or heading) each
        assert " ".join(entry.split()).count("(default") <= 1, f"{page}: a default shown twice: {entry!r}"


@pytest.mark.parametrize("page", ["train", "sweep"])
def test_presets_explained_and_gpu_not_called_the_papers_recipe(page, capsys):
    text = " ".join(PAGES[page](capsys).split())
    for name in SCALES:
        assert re.search(rf"\b{name}: \S", text), f"{page}: preset {name} not explained"
    assert not re.search(r"gpu: the papers'", text) and "gpu (the papers'" not in text
    assert "paper: the papers' recipe" in text


def test_preset_descriptions_cover_every_preset_and_say_what_gpu_is():
    d = preset_descriptions()
    assert list(d) == list(SCALES)
    assert "not the papers' full recipe" in d["gpu"] and d["paper"].startswith("the papers' recipe")
    assert "400 training rows" in d["lab_cpu"] and "2,000 training rows" in d["lab"]


def test_defaults_formatter_shows_a_default_only_where_there_is_one():
    ap = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--a", type=int, default=0, help="zero is a default")
    ap.add_argument("--b", help="no default")
    ap.add_argument("--c", default=3, help="its own (default: three)")
    ap.add_argument("--d", nargs="+", default=["x", "y"], help="a list")
    ap.add_argument("--e", action="store_true", help="a flag")
    text = " ".join(ap.format_help().split())
    assert "zero is a default (default: 0)" in text
    assert "no default --c" in text  # nothing added to --b
    assert "its own (default: three) --d" in text  # not twice
    assert "a list (default: x y)" in text and "a flag" in text and "a flag (default" not in text
