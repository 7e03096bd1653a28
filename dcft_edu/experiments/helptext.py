"""Help text the command lines share: what each preset (``--preset``/``--scale``) trains, and a help formatter
that shows an option's default only where it has one.

    ap = argparse.ArgumentParser(..., formatter_class=DefaultsHelpFormatter, epilog=preset_epilog())
    ap.add_argument("--preset", choices=SCALES, default="quick", help=preset_help())

Used by: ``dcft_edu.experiments.train``, ``dcft_edu.experiments.sweep``.
"""
from __future__ import annotations

import argparse
import re
import textwrap

from .presets import PRESETS, SCALES


def _rows(p) -> str:
    rows = f"the first {p.limit_train:,} training rows" if p.limit_train else "all training rows"
    dev = f"{p.limit_dev:,} dev rows" if p.limit_dev else "full dev sets"
    return f"{rows} × {p.epochs} epoch{'s' if p.epochs != 1 else ''}, {dev}, batch {p.batch_size}"


def preset_descriptions() -> dict[str, str]:
    """One line per preset: what a run trains at it, and what it is for. The ``gpu`` preset is *not* the papers'
    recipe (it cuts each run to ~20k training examples); ``paper`` is."""
    d = {
        "quick": f"CI and smoke tests, seconds on a CPU ({_rows(PRESETS['quick'])})",
        "cpu": f"minutes per run on a CPU ({_rows(PRESETS['cpu'])})",
        "lab": f"a course's lab on a GPU, notebooks 07–15 ({_rows(PRESETS['lab'])})",
        "lab_cpu": f"the same lab on a CPU, a few minutes per notebook ({_rows(PRESETS['lab_cpu'])})",
        "gpu": "our committed results: the task recipes' learning rates, warmups, γ and weight decay, but each run "
               "cut to ~20k training examples (3–8 epochs), not the papers' full recipe",
        "paper": "the papers' recipe: the official DCFT scripts in full (all training data, their epochs, max lengths, "
                 "classifier dropout and α/r), ~5–17× the gpu preset's examples per run",
    }
    missing = set(SCALES) - set(d)
    if missing:  # a preset added to recipes.PRESETS needs its line here (tests/test_cli_help.py checks)
        raise KeyError(f"preset_descriptions: no description of preset(s) {sorted(missing)}; add them in helptext.py")
    return {s: d[s] for s in SCALES}


def preset_help() -> str:
    """The help of a ``--preset``/``--scale`` option (the presets themselves: ``preset_epilog``)."""
    return "how much each run trains; every preset is listed below. gpu is the budget of our committed results, " \
           "paper the papers' recipe"


def preset_epilog() -> str:
    """A help page's closing list of the presets, one per line (``DefaultsHelpFormatter`` keeps the lines)."""
    width = max(map(len, SCALES)) + 2
    return "presets (--preset / --scale):\n" + "\n".join(
        f"  {name + ':':<{width}}{text}" for name, text in preset_descriptions().items())


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Like ``argparse.ArgumentDefaultsHelpFormatter``, but "(default: X)" only where an option has a default
    (not None, not a flag's False, not an empty list) and its help does not give one already ("(default …" or
    "default: …"). The description and
    epilog keep their line breaks; each line is wrapped on its own, a list item's continuation under its text."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            body = line.lstrip()
            lead = line[:len(line) - len(body)]
            item = re.match(r"[\w-]+:\s+", body) if lead else None  # "  name:   text": wrap under the text
            hang = lead + " " * (item.end() if item else 0)
            out.append(textwrap.fill(body, width, initial_indent=indent + lead, subsequent_indent=indent + hang)
                       if body else "")
        return "\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if re.search(r"\(default\b|default:", text, re.IGNORECASE) or default is None or default is False or default is argparse.SUPPRESS \
                or (isinstance(default, (list, tuple)) and not default):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else str(default)
            text += " (default: " + shown.replace("%", "%%") + ")"  # as typed on the command line
        return text


class RawDefaultsHelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """``DefaultsHelpFormatter``'s defaults with the description and epilog printed exactly as written (a
    module docstring)."""
