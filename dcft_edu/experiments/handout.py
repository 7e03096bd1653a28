"""The students' hand-out: a copy of the repository without the exercises' solutions and the instructor's kit.

    python -m dcft_edu.experiments.handout ../course-handout
    python -m dcft_edu.experiments.handout ../course-handout --repo-url https://github.com/ME/course-handout

It copies the checkout (the files git tracks, and new files git does not ignore; without git, every file but
build output, caches, results and data) to a new folder, leaving out:

- ``notebooks/solutions/`` (the solutions of every lesson's exercises),
- ``docs/instructor_guide.md`` and ``docs/quizzes/`` (the lab plans, and the quizzes with their answers),
- the tests that check those (``tests/test_solutions.py``, ``tests/test_quizzes.py``),

and in every lesson the line that names its solutions notebook now says "from your instructor" (in the ``.py``
and the ``.ipynb`` alike, so the pairs still agree). The lessons, their starter cells, the package, the
committed results and the rest of the tests stay, so the hand-out runs and tests as the repository does. With
``--repo-url`` its Colab badges and first cells point at the repository you will publish it as
(``colab.retarget``); without, they still open the full repository, solutions included.

The copy is made in a temporary folder beside the target and renamed when complete; an existing target is
refused.

Used by: ``tests/test_teaching.py``.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Union

from . import colab

#: left out of the hand-out: paths relative to the repository (a folder leaves out everything under it)
LEFT_OUT = ("notebooks/solutions", "docs/instructor_guide.md", "docs/quizzes", "tests/test_solutions.py",
            "tests/test_quizzes.py")
#: without git: folders never copied
_SKIP_DIRS = {".git", ".venv", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", "results", "data", "build",
              "dist", ".device-bundle"}
_SOLUTIONS_LINE = re.compile(r"Solutions: `notebooks/solutions/[0-9][0-9]_\w+_solutions\.ipynb`\.")
NO_SOLUTIONS = "Solutions: from your instructor."


def repository_files(root: Union[str, Path]) -> list[str]:
    """The files of the checkout ``root``, relative: git's tracked and untracked-but-not-ignored files, or (no
    git) every file outside build output, caches, results and data."""
    root = Path(root)
    try:
        out = subprocess.run(["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
                             capture_output=True, check=True)
        return sorted(f for f in out.stdout.decode().split("\0") if f and (root / f).is_file())
    except (OSError, subprocess.CalledProcessError):
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
            files += [Path(dirpath, f).relative_to(root).as_posix() for f in filenames if not f.endswith(".pyc")]
        return sorted(files)


def _left_out(rel: str) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in LEFT_OUT)


def make_handout(target: Union[str, Path], root: Union[str, Path, None] = None,
                 repo_url: Optional[str] = None, branch: Optional[str] = None) -> Path:
    """Write the hand-out of the checkout ``root`` (default: this one) to the new folder ``target``; return it.

    ``repo_url`` (and ``branch``): retarget its Colab badges and first cells to the repository it will be
    published as. Raises ``FileExistsError`` if ``target`` exists, before copying anything.
    """
    root = Path(root or colab.repo_root()).resolve()
    target = Path(target).expanduser().resolve()
    if target.exists():
        raise FileExistsError(f"{target} exists; the hand-out goes to a new folder (remove it or pick another)")
    if root == target or root in target.parents:
        raise ValueError(f"{target} is inside the repository {root}: write the hand-out elsewhere")
    if repo_url:
        colab.github_parts(repo_url)  # a bad URL stops here, before any copying
    if not (root / "notebooks").is_dir():
        raise FileNotFoundError(f"{root} has no notebooks/: pass the repository checkout as root")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        for rel in repository_files(root):
            if _left_out(rel):
                continue
            dest = tmp / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, dest)
        lessons = sorted((tmp / "notebooks").glob("[0-9][0-9]_*.py")) + sorted((tmp / "notebooks").glob("[0-9][0-9]_*.ipynb"))
        for path in lessons:
            text = path.read_text(encoding="utf-8")
            new = _SOLUTIONS_LINE.sub(NO_SOLUTIONS, text)
            if new != text:
                path.write_text(new, encoding="utf-8")
        if repo_url:
            colab.retarget(repo_url, branch=branch, root=tmp)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Write the students' hand-out: this repository without the exercises' solutions, the instructor's guide and
    the quizzes."""
    ap = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.handout", description=main.__doc__)
    ap.add_argument("target", type=Path, help="a new folder, outside this repository")
    ap.add_argument("--repo-url", help="the GitHub repository you will publish the hand-out as: its Colab badges "
                                       "and first cells will open it (default: they keep opening this repository)")
    ap.add_argument("--branch", help="that repository's branch (default: the current one)")
    args = ap.parse_args(argv)
    try:
        out = make_handout(args.target, repo_url=args.repo_url, branch=args.branch)
    except (FileExistsError, FileNotFoundError, ValueError) as err:
        ap.exit(2, f"error: {err}\n")
    lessons = len(list((out / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    print(f"{out}: {lessons} lessons, no solutions, no instructor's guide or quizzes.")
    if args.repo_url:
        print(f"Its badges open {args.repo_url}: publish it there (git init, add, commit, push), public.")
    else:
        print("Its Colab badges still open the full repository (solutions included); pass --repo-url to change that.")


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
