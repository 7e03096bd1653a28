"""Colab: the one place that names the repository, the first cell of every notebook, and its set-up there.

**The repository URL lives here and only here** (``REPO_URL``, ``REPO_BRANCH``). Everything else that
names it is generated from these two lines and checked against them by the tests: each lesson's
Open-in-Colab badge (``badge_url``), each notebook's first code cell (``colab_cell``) and pyproject's
``[project.urls]`` (``project_urls_block``). Colab fetches both the notebook (the badge) and the
repository (the first cell) from that public GitHub URL, so the badges work only once a repository
exists there, public. An instructor who publishes a fork points everything at it in one command,
then commits and pushes::

    python -m dcft_edu.experiments.colab retarget https://github.com/ME/my-fork [--branch main]
    python -m dcft_edu.experiments.colab check      # every badge, first cell and URL agrees with REPO_URL

On Colab a notebook starts with nothing: no package, no committed results (``figures/data``), no
other notebooks. Its first code cell, ``colab_cell(name)`` verbatim (here for ``NN_name``), clones the
repository, which is all it can do before the package exists, then calls ``bootstrap``::

    import os, subprocess, sys
    if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
        clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
        if not os.path.isdir(clone):
            subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
        sys.path.insert(0, clone)
    from dcft_edu.experiments.colab import bootstrap
    bootstrap("NN_name")

``bootstrap(name)`` installs the clone with what that notebook needs (``pip install -e clone[extras]``,
``NOTEBOOK_NEEDS``: lesson 16 gets the ``e2e`` extra, sacrebleu and friends, and loads GPT-2 Medium
from the hub), moves into the clone's ``notebooks/`` folder (so the notebooks find the committed
results where they expect them), says where the data and the model come from, and asks for a GPU
runtime when there is none. Anywhere else it does nothing (``force=True`` runs it anyway).
``$DCFT_EDU_REPO_URL`` overrides the URL at run time (a fork, or a local clone in the tests) and
``$DCFT_EDU_CLONE`` the folder.

Importing this module needs only the standard library and torch (on Colab), since it runs before the install.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

#: the public GitHub repository the badges open and the first cells clone (``retarget`` rewrites these two lines)
REPO_URL = "https://github.com/dcft-edu/dcft_edu"
REPO_BRANCH = "main"
REPO_URL_ENV = "DCFT_EDU_REPO_URL"
CLONE_ENV = "DCFT_EDU_CLONE"
#: where the first cell clones the repository on Colab (absolute: the cell may run again from notebooks/)
CLONE_DIR = "/content/dcft_edu"
#: the model lesson 16 names for Colab: Delta-LoRA's E2E model (``$DCFT_EDU_CAUSAL_LM``, ``causal_lm.CAUSAL_LM_ENV``)
COLAB_CAUSAL_LM = "openai-community/gpt2-medium"
CAUSAL_LM_ENV = "DCFT_EDU_CAUSAL_LM"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
_GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9][\w.-]*)/([\w.-]+?)(?:\.git)?/?")


@dataclass(frozen=True)
class NotebookNeeds:
    """What one lesson needs on Colab beyond the package: pip extras, and environment defaults."""

    extras: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # (name, value), set unless the user has set it


#: by lesson number (its solutions share it); a lesson not listed needs the package alone
NOTEBOOK_NEEDS: dict[str, NotebookNeeds] = {
    "16": NotebookNeeds(extras=("e2e",), env=((CAUSAL_LM_ENV, COLAB_CAUSAL_LM),)),
}


def needs_of(notebook: Optional[str]) -> NotebookNeeds:
    """The ``NotebookNeeds`` of a notebook by its name (``"16_e2e_generation"``, ``"16_…_solutions"``)."""
    return NOTEBOOK_NEEDS.get((notebook or "")[:2], NotebookNeeds())


def github_parts(url: str) -> tuple[str, str]:
    """``(owner, name)`` of ``https://github.com/OWNER/NAME`` (a trailing ``/`` or ``.git`` allowed); anything
    else raises, since Colab opens notebooks from GitHub only."""
    m = _GITHUB.fullmatch(url.strip())
    if not m:
        raise ValueError(f"{url!r} is not a GitHub repository URL (https://github.com/OWNER/NAME): Colab's badges "
                         "open notebooks from public GitHub repositories only. Push your copy to GitHub first.")
    return m.group(1), m.group(2)


def badge_url(notebook: str, url: str = REPO_URL, branch: str = REPO_BRANCH) -> str:
    """The Open-in-Colab link of ``notebooks/<notebook>.ipynb`` in the repository ``url`` at ``branch``."""
    owner, name = github_parts(url)
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/notebooks/{notebook}.ipynb"


def colab_cell(notebook: str, url: str = REPO_URL, branch: str = REPO_BRANCH) -> str:
    """The first code cell of ``notebooks/<notebook>`` (tests/test_colab.py checks every notebook has it verbatim)."""
    return f'''import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    clone = os.environ.get("{CLONE_ENV}", "{CLONE_DIR}")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "{branch}", os.environ.get("{REPO_URL_ENV}", "{url}"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("{notebook}")'''


def project_urls_block(url: str = REPO_URL, branch: str = REPO_BRANCH) -> str:
    """pyproject's ``[project.urls]`` table, from ``url``."""
    return (f'[project.urls]\nHomepage = "{url}"\nRepository = "{url}"\n'
            f'Colab = "{badge_url("01_lora_and_the_rank_one_floor", url, branch)}"\n')


def repo_url() -> str:
    """``$DCFT_EDU_REPO_URL`` or ``REPO_URL``."""
    return os.environ.get(REPO_URL_ENV) or REPO_URL


def on_colab() -> bool:
    """True inside a Colab runtime (its ``google.colab`` module is loaded, or ``$COLAB_RELEASE_TAG`` is set)."""
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def install_command(clone: Path, notebook: Optional[str] = None) -> list[str]:
    """The pip command ``bootstrap`` runs: the clone, editable, with the notebook's extras."""
    extras = needs_of(notebook).extras
    target = f"{clone}[{','.join(extras)}]" if extras else str(clone)
    return [sys.executable, "-m", "pip", "install", "-q", "-e", target]


def bootstrap(notebook: Optional[str] = None, clone_dir: Union[str, Path, None] = None, force: bool = False,
              run: Optional[Callable[..., subprocess.CompletedProcess]] = None) -> Optional[Path]:
    """On Colab (or with ``force=True``): clone ``repo_url()`` into ``clone_dir`` (default ``$DCFT_EDU_CLONE`` or
    ``CLONE_DIR``; shallow, unless it is there), ``pip install -e`` it with ``notebook``'s extras, set its
    environment defaults (``NOTEBOOK_NEEDS``), ``chdir`` to its ``notebooks/``, and print where data, model and
    device come from. Returns the clone, or None when not on Colab. ``run`` runs the commands (default
    ``subprocess.run``; tests pass a fake).
    """
    if not (force or on_colab()):
        return None
    run = run or subprocess.run
    clone = Path(clone_dir or os.environ.get(CLONE_ENV) or CLONE_DIR).resolve()
    if not (clone / "pyproject.toml").is_file():
        if clone.exists() and any(clone.iterdir()):
            raise FileExistsError(f"{clone} exists but holds no dcft_edu checkout (no pyproject.toml): "
                                  f"remove it or pass another clone_dir")
        try:
            run(["git", "clone", "-q", "--depth", "1", "--branch", REPO_BRANCH, repo_url(), str(clone)], check=True,
                capture_output=True, text=True)
        except subprocess.CalledProcessError as e:  # one line naming the URL, not a subprocess traceback
            said = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            said = " ".join(said.strip().splitlines()[-1:]) or f"exit status {e.returncode}"
            raise ConnectionError(f"could not clone {repo_url()} (branch {REPO_BRANCH}) into {clone}: git said "
                                  f"{said!r}; check that the repository is public and the URL right (${REPO_URL_ENV} or "
                                  "python -m dcft_edu.experiments.colab retarget URL), and that you are online") from None
    needs = needs_of(notebook)
    cmd = install_command(clone, notebook)
    print(f"dcft_edu: installing {repo_url()} ({clone}): {' '.join(cmd[2:])}")
    run(cmd, check=True)
    if str(clone) not in sys.path:
        sys.path.insert(0, str(clone))
    import importlib

    importlib.invalidate_caches()  # the packages pip just installed are importable in this kernel
    for name, value in needs.env:
        os.environ.setdefault(name, value)
    os.chdir(clone / "notebooks")
    print(f"dcft_edu: working in {clone / 'notebooks'}")
    _say_where_things_come_from(needs)
    return clone


def _say_where_things_come_from(needs: NotebookNeeds = NotebookNeeds()) -> None:
    import torch

    from .data import DATA_ENV, HF_GLUE
    from .models import MODEL_ENV

    data = os.environ.get(DATA_ENV)
    print(f"data: {data} (${DATA_ENV})" if data else
          f"data: GLUE from the Hugging Face hub ({HF_GLUE}), downloaded on first use (set ${DATA_ENV} to a local copy)")
    model = os.environ.get(MODEL_ENV)
    print(f"model: {model} (${MODEL_ENV})" if model else
          f"model: the packaged all-MiniLM-L6-v2 (set ${MODEL_ENV} to another Hugging Face model)")
    if any(name == CAUSAL_LM_ENV for name, _ in needs.env):
        print(f"causal LM: {os.environ[CAUSAL_LM_ENV]} (${CAUSAL_LM_ENV}), from the Hugging Face hub on first use")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    else:
        print("device: CPU only. For the lab runs pick a GPU runtime: Runtime → Change runtime type → "
              "T4 GPU, then run the notebook again from the top.")


# ---- the generated copies: where they are, checking them, retargeting them -------------------------------

def repo_root() -> Path:
    """The checkout this module sits in (``dcft_edu/experiments/colab.py`` → the repository)."""
    return Path(__file__).resolve().parents[2]


def _notebooks(root: Path) -> list[Path]:
    """Every notebook source of the repository: lessons and solutions, ``.py`` and ``.ipynb``."""
    nb = root / "notebooks"
    return sorted(nb.glob("[0-9][0-9]_*.py")) + sorted(nb.glob("[0-9][0-9]_*.ipynb")) + \
        sorted((nb / "solutions").glob("[0-9][0-9]_*.py")) + sorted((nb / "solutions").glob("[0-9][0-9]_*.ipynb"))


def _cells(path: Path) -> list[tuple[str, str]]:
    """(cell type, source) of a notebook, from its ``.ipynb`` JSON or its ``py:percent`` text (no jupytext needed)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ipynb":
        return [(c["cell_type"], "".join(c["source"]) if isinstance(c["source"], list) else c["source"])
                for c in json.loads(text)["cells"]]
    cells = []
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        head, _, body = chunk.partition("\n")
        if "[markdown]" in head:
            cells.append(("markdown", "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#")
                                                for line in body.strip().splitlines())))
        else:
            cells.append(("code", body.strip()))
    return cells


def read_target(root: Union[str, Path, None] = None) -> tuple[str, str]:
    """``(REPO_URL, REPO_BRANCH)`` as written in ``root``'s ``colab.py`` (root: this checkout)."""
    text = (Path(root or repo_root()) / "dcft_edu" / "experiments" / "colab.py").read_text(encoding="utf-8")
    url, branch = (re.search(rf'^{key} = "([^"]*)"$', text, re.M) for key in ("REPO_URL", "REPO_BRANCH"))
    if not (url and branch):
        raise ValueError(f"{root}: colab.py has no REPO_URL = \"...\" / REPO_BRANCH = \"...\" line")
    return url.group(1), branch.group(1)


def check(root: Union[str, Path, None] = None) -> list[str]:
    """What disagrees with ``root``'s ``REPO_URL``/``REPO_BRANCH``: each notebook's first code cell and (lessons)
    badge, every Colab link in the docs, pyproject's ``[project.urls]``. Empty when all is generated from them."""
    root = Path(root or repo_root())
    url, branch = read_target(root)
    owner, name = github_parts(url)
    problems = []
    for path in _notebooks(root):
        stem, rel = path.stem, path.relative_to(root)
        code = [src for kind, src in _cells(path) if kind == "code"]
        if not code or code[0] != colab_cell(stem, url, branch):
            problems.append(f"{rel}: its first code cell is not colab_cell({stem!r})")
        if path.parent.name == "notebooks":
            first = next((src for kind, src in _cells(path) if kind == "markdown"), "")
            if f"({badge_url(stem, url, branch)})" not in first or COLAB_BADGE not in first:
                problems.append(f"{rel}: its title cell lacks the badge [![Open In Colab]({COLAB_BADGE})]"
                                f"({badge_url(stem, url, branch)})")
    prefix = f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/"
    for path in [root / "README.md", root / "notebooks" / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        if path.is_file():
            for link in re.findall(r"https://colab\.research\.google\.com/github/[^\s)\"'>]+", path.read_text()):
                if not link.startswith(prefix):
                    problems.append(f"{path.relative_to(root)}: {link} is not under {prefix}")
    if project_urls_block(url, branch) not in (root / "pyproject.toml").read_text():
        problems.append(f"pyproject.toml: [project.urls] should read\n{project_urls_block(url, branch)}")
    return problems


def retarget(new_url: str, branch: Optional[str] = None, root: Union[str, Path, None] = None) -> list[Path]:
    """Point every badge, first cell, Colab link and project URL of the checkout ``root`` at ``new_url``
    (``https://github.com/OWNER/NAME``) and ``branch`` (default: keep the current one). Rewrites ``colab.py``'s
    two lines and their copies in the notebooks (``.py`` and ``.ipynb`` alike), README.md, notebooks/README.md,
    docs/ and pyproject.toml, in place; idempotent. Returns the files it changed. Refuses, changing nothing,
    when the checkout's copies already disagree with ``colab.py`` (``check``), since it would not know which
    to keep.
    """
    root = Path(root or repo_root())
    owner, name = github_parts(new_url)
    new_url = f"https://github.com/{owner}/{name}"
    old_url, old_branch = read_target(root)
    branch = branch or old_branch
    if not re.fullmatch(r"[\w./-]+", branch):
        raise ValueError(f"branch {branch!r}: expected a git branch name such as main")
    stale = check(root)
    if stale:
        raise ValueError("these copies already disagree with colab.py's REPO_URL; fix them first (or restore "
                         "them from git), then retarget:\n" + "\n".join(stale))
    old_owner, old_name = github_parts(old_url)
    subs = [  # (pattern, replacement), applied in order to every file
        (re.escape(f"https://colab.research.google.com/github/{old_owner}/{old_name}/blob/{old_branch}/"),
         f"https://colab.research.google.com/github/{owner}/{name}/blob/{branch}/"),
        (re.escape(old_url) + r"(?![\w-])", new_url),
        (r'(\\?"--branch\\?", \\?")' + re.escape(old_branch) + r'(\\?")', rf"\g<1>{branch}\g<2>"),
        (r'^(REPO_BRANCH = ")' + re.escape(old_branch) + '"$', rf'\g<1>{branch}"'),
    ]
    files = [root / "dcft_edu" / "experiments" / "colab.py", root / "pyproject.toml", root / "README.md",
             root / "notebooks" / "README.md", *_notebooks(root), *sorted((root / "docs").rglob("*.md"))]
    changed = []
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        new = text
        for pattern, repl in subs:
            new = re.sub(pattern, lambda m, r=repl: m.expand(r), new, flags=re.M)
        if path.name == "pyproject.toml":
            new = _with_project_urls(new, new_url, branch)
        if new != text:
            tmp = path.with_name(path.name + ".retarget-tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, path)  # each file whole or not at all
            changed.append(path)
    problems = check(root)
    if problems:
        raise RuntimeError("retarget left copies that disagree (a bug; restore the files from git):\n"
                           + "\n".join(problems))
    return changed


def _with_project_urls(pyproject: str, url: str, branch: str) -> str:
    """``pyproject`` with its ``[project.urls]`` table replaced (or added after ``[project]``'s keys)."""
    block = project_urls_block(url, branch)
    table = re.compile(r"^\[project\.urls\]\n(?:[^\[\n].*\n|\n(?!\[))*", re.M)
    if table.search(pyproject):
        return table.sub(lambda m: block, pyproject, count=1)
    nxt = re.search(r"^\[(?!project\])", pyproject, re.M)  # the first table after [project]
    at = nxt.start() if nxt else len(pyproject)
    return pyproject[:at] + block + "\n" + pyproject[at:]


def main(argv: Optional[Sequence[str]] = None) -> None:
    """``retarget URL [--branch B]``: point every Colab badge, first cell and project URL at your fork;
    ``check``: list what disagrees with ``REPO_URL``."""
    ap = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.colab", description=main.__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    rt = sub.add_parser("retarget", help="point every badge, first cell and project URL at another GitHub repository")
    rt.add_argument("url", help="the public GitHub repository, e.g. https://github.com/ME/dcft_edu")
    rt.add_argument("--branch", help=f"the branch the badges open and the cells clone (now: {read_target()[1]})")
    for p in (rt, sub.add_parser("check", help="list the copies that disagree with REPO_URL (exit 1 if any)")):
        p.add_argument("--root", type=Path, help="the checkout to work on (default: the one this module is in)")
    args = ap.parse_args(argv)
    try:
        if args.command == "retarget":
            changed = retarget(args.url, args.branch, args.root)
            root = Path(args.root or repo_root())
            print(f"{len(changed)} files now point at {read_target(root)[0]} (branch {read_target(root)[1]})"
                  + "".join(f"\n  {p.relative_to(root)}" for p in changed))
            print("Commit and push them; the badges work once that repository is public on GitHub.")
        else:
            problems = check(args.root)
            print("\n".join(problems) if problems else f"every copy agrees with {read_target(args.root)[0]}")
            if problems:
                sys.exit(1)
    except ValueError as err:
        ap.exit(2, f"error: {err}\n")


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
