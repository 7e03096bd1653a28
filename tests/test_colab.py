"""The Colab bootstrap, offline: a shallow clone of this repository through a file:// URL, pip stubbed."""
from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

import dcft_edu
from dcft_edu.experiments import colab

ROOT = Path(dcft_edu.__file__).resolve().parents[1]
REAL_RUN = subprocess.run  # the fake below replaces subprocess.run in one test
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))


@pytest.fixture
def local_repo(monkeypatch, tmp_path):
    """$DCFT_EDU_REPO_URL -> this repository (its committed HEAD); a CPU-only machine; cwd and sys.path restored."""
    if subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True).returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout: nothing to clone")
    monkeypatch.setenv(colab.REPO_URL_ENV, f"file://{ROOT}")
    monkeypatch.delenv("DCFT_EDU_DATA", raising=False)
    monkeypatch.delenv("DCFT_EDU_MODEL", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


class Runner:
    """Runs git for real and records pip instead of running it."""

    def __init__(self):
        self.commands = []

    def __call__(self, cmd, check=False, **kwargs):
        self.commands.append(list(cmd))
        if cmd[0] == "git":
            return REAL_RUN(cmd, check=check, capture_output=True)
        return subprocess.CompletedProcess(cmd, 0)


def test_bootstrap_clones_installs_and_asks_for_a_gpu(local_repo, capsys):
    clone, run = local_repo / "dcft_edu", Runner()
    assert colab.bootstrap(clone, force=True, run=run) == clone.resolve()
    assert (clone / "pyproject.toml").is_file() and (clone / "figures" / "data" / "main").is_dir()
    assert (clone / ".git" / "shallow").is_file()  # --depth 1
    assert run.commands == [["git", "clone", "-q", "--depth", "1", f"file://{ROOT}", str(clone.resolve())],
                            [sys.executable, "-m", "pip", "install", "-q", "-e", str(clone.resolve())]]
    assert Path.cwd() == clone.resolve() / "notebooks"
    out = capsys.readouterr().out
    assert "nyu-mll/glue" in out and "all-MiniLM-L6-v2" in out
    assert "Runtime → Change runtime type → T4 GPU" in out
    # a second call (the cell run again) installs again but does not clone again
    run.commands.clear()
    colab.bootstrap(clone, force=True, run=run)
    assert [c[0] for c in run.commands] == [sys.executable]


def test_bootstrap_does_nothing_off_colab(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not colab.on_colab()
    assert colab.bootstrap(run=lambda *a, **k: pytest.fail(f"ran {a} off Colab")) is None
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert colab.on_colab()


def test_the_first_cell_runs_on_a_fake_colab(local_repo, monkeypatch, capsys):
    """COLAB_CELL itself, with google.colab faked and /content moved to tmp: it clones, then bootstrap() installs."""
    clone = local_repo / "content" / "dcft_edu"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(colab, "CLONE_DIR", str(clone))
    run = Runner()
    monkeypatch.setattr(subprocess, "run", run)  # the cell's clone and bootstrap's commands
    exec(colab.COLAB_CELL.replace("/content/dcft_edu", str(clone)), {})
    assert [c[:2] for c in run.commands] == [["git", "clone"], [sys.executable, "-m"]]
    assert (clone / "notebooks").is_dir() and Path.cwd() == clone.resolve() / "notebooks"
    assert str(clone) in sys.path
    assert "T4 GPU" in capsys.readouterr().out


def test_one_place_names_the_repository():
    assert colab.COLAB_CELL.count(colab.REPO_URL) == 1 and f'"{colab.REPO_URL_ENV}"' in colab.COLAB_CELL
    assert len(colab.COLAB_CELL.splitlines()) <= 8  # tiny: the library does the work
    doc = "\n".join(line[4:] for line in colab.__doc__.splitlines())
    assert colab.COLAB_CELL in doc  # the docstring shows the cell verbatim


@pytest.mark.parametrize("nb", [p for p in NOTEBOOKS if "experiments.colab import bootstrap" in p.read_text()],
                         ids=lambda p: p.stem)
def test_notebooks_share_the_same_first_cell(nb):
    cells = [c.strip() for c in nb.read_text().split("# %%")]
    assert colab.COLAB_CELL in cells, f"{nb.name}: its Colab cell differs from colab.COLAB_CELL; paste that verbatim"
