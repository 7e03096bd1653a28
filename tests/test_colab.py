"""Colab, offline: the one repository URL and its generated copies, the retarget command, the bootstrap, and
headless runs of lessons 01, 07 and 16 as Colab would run them.

The stand-ins: a git repository made from this working tree (committed and uncommitted files alike) cloned
through a file:// URL; a fake ``google.colab`` module, imported at kernel start as Colab does; a fake ``pip``
that records the command it was given (nothing is installed, nothing is downloaded); and a tiny random
GPT-2 saved in a Hugging Face cache under the hub id lesson 16 names on Colab, read with HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import types
from pathlib import Path

import pytest
import torch

import dcft_edu
from dcft_edu.experiments import colab, handout

ROOT = Path(dcft_edu.__file__).resolve().parents[1]
REAL_RUN = subprocess.run  # the fake below replaces subprocess.run in one test
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
SOLUTIONS = sorted((ROOT / "notebooks" / "solutions").glob("[0-9][0-9]_*.py"))
GIT = ["git", "-c", "user.name=test", "-c", "user.email=test@local", "-c", "commit.gpgsign=false"]


@pytest.fixture(scope="module")
def tree_repo(tmp_path_factory) -> Path:
    """A git repository holding this working tree as one commit on ``colab.REPO_BRANCH``: what a fork would publish."""
    repo = tmp_path_factory.mktemp("published") / "dcft_edu"
    for rel in handout.repository_files(ROOT):  # what git tracks, and new files it does not ignore
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, repo / rel)
    for cmd in (["init", "-q", "-b", colab.REPO_BRANCH], ["add", "-A"], ["commit", "-q", "-m", "working tree"]):
        REAL_RUN(GIT + ["-C", str(repo), *cmd], check=True, capture_output=True)
    return repo


@pytest.fixture(autouse=True)
def _restore_environ():
    """The whole environment restored after each test, last (autouse: torn down after monkeypatch): bootstrap()
    sets variables such as $DCFT_EDU_CAUSAL_LM, which would otherwise leak into every later test and into every
    notebook kernel started after it (lesson 16 would then ask the offline hub for GPT-2 Medium)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def local_repo(monkeypatch, tmp_path, tree_repo):
    """$DCFT_EDU_REPO_URL -> file:// URL of ``tree_repo``; a CPU-only machine; cwd and sys.path restored."""
    monkeypatch.setenv(colab.REPO_URL_ENV, f"file://{tree_repo}")
    monkeypatch.delenv(colab.CLONE_ENV, raising=False)
    monkeypatch.delenv("DCFT_EDU_DATA", raising=False)
    monkeypatch.delenv("DCFT_EDU_MODEL", raising=False)
    monkeypatch.delenv(colab.CAUSAL_LM_ENV, raising=False)
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


# ---- the bootstrap --------------------------------------------------------------------------------------

def test_bootstrap_clones_installs_and_asks_for_a_gpu(local_repo, tree_repo, capsys):
    clone, run = local_repo / "dcft_edu", Runner()
    assert colab.bootstrap("01_lora_and_the_rank_one_floor", clone, force=True, run=run) == clone.resolve()
    assert (clone / "pyproject.toml").is_file() and (clone / "figures" / "data" / "main").is_dir()
    assert (clone / ".git" / "shallow").is_file()  # --depth 1
    assert run.commands == [["git", "clone", "-q", "--depth", "1", "--branch", colab.REPO_BRANCH,
                             f"file://{tree_repo}", str(clone.resolve())],
                            [sys.executable, "-m", "pip", "install", "-q", "-e", str(clone.resolve())]]
    assert Path.cwd() == clone.resolve() / "notebooks"
    out = capsys.readouterr().out
    assert "nyu-mll/glue" in out and "all-MiniLM-L6-v2" in out
    assert "Runtime → Change runtime type → T4 GPU" in out
    # a second call (the cell run again) installs again but does not clone again
    run.commands.clear()
    colab.bootstrap("01_lora_and_the_rank_one_floor", clone, force=True, run=run)
    assert [c[0] for c in run.commands] == [sys.executable]


def test_lesson_16_gets_its_extras_and_names_the_hub_model(local_repo, monkeypatch, capsys):
    clone, run = local_repo / "dcft_edu", Runner()
    colab.bootstrap("16_e2e_generation", clone, force=True, run=run)
    assert run.commands[-1] == [sys.executable, "-m", "pip", "install", "-q", "-e", f"{clone.resolve()}[e2e]"]
    assert os.environ[colab.CAUSAL_LM_ENV] == colab.COLAB_CAUSAL_LM == "openai-community/gpt2-medium"
    assert f"causal LM: {colab.COLAB_CAUSAL_LM}" in capsys.readouterr().out
    # a model the user named stays; the solutions notebook shares the lesson's needs
    monkeypatch.setenv(colab.CAUSAL_LM_ENV, "my/model")
    colab.bootstrap("16_e2e_generation_solutions", clone, force=True, run=run)
    assert os.environ[colab.CAUSAL_LM_ENV] == "my/model" and run.commands[-1][-1].endswith("[e2e]")


def test_every_extra_named_exists_and_the_names_agree():
    from dcft_edu.experiments.causal_lm import CAUSAL_LM_ENV

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for number, needs in colab.NOTEBOOK_NEEDS.items():
        assert any(p.stem.startswith(number) for p in NOTEBOOKS), f"NOTEBOOK_NEEDS names lesson {number}: none"
        assert set(needs.extras) <= set(extras), f"lesson {number}: extras {needs.extras} not all in pyproject"
    assert colab.CAUSAL_LM_ENV == CAUSAL_LM_ENV
    assert {"sacrebleu", "rouge-score", "nltk", "pycocoevalcap"} <= {d.split(">")[0].split("=")[0] for d in extras["e2e"]}


def test_bootstrap_does_nothing_off_colab(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not colab.on_colab()
    assert colab.bootstrap(run=lambda *a, **k: pytest.fail(f"ran {a} off Colab")) is None
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab_20250101")
    assert colab.on_colab()


def test_the_first_cell_runs_on_a_fake_colab(local_repo, monkeypatch, capsys):
    """colab_cell itself, with google.colab faked and the clone folder moved to tmp: it clones, then
    bootstrap() installs."""
    clone = local_repo / "content" / "dcft_edu"
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv(colab.CLONE_ENV, str(clone))
    run = Runner()
    monkeypatch.setattr(subprocess, "run", run)  # the cell's clone and bootstrap's commands
    exec(colab.colab_cell("07_glue_main_results"), {})
    assert [c[:2] for c in run.commands] == [["git", "clone"], [sys.executable, "-m"]]
    assert (clone / "notebooks").is_dir() and Path.cwd() == clone.resolve() / "notebooks"
    assert str(clone) in sys.path
    assert "T4 GPU" in capsys.readouterr().out


# ---- one place names the repository; retarget ---------------------------------------------------------------

def test_every_copy_is_generated_from_the_one_url():
    assert colab.check(ROOT) == []
    assert colab.read_target(ROOT) == (colab.REPO_URL, colab.REPO_BRANCH)
    cell = colab.colab_cell("NN_name")
    assert cell.count(colab.REPO_URL) == 1 and f'"{colab.REPO_URL_ENV}"' in cell
    assert len(cell.splitlines()) <= 8  # tiny: the library does the work
    doc = "\n".join(line[4:] for line in colab.__doc__.splitlines())
    assert cell in doc  # the docstring shows the cell verbatim
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == colab.REPO_URL and urls["Colab"].startswith("https://colab.research.google.com/github/")


@pytest.mark.parametrize("nb", NOTEBOOKS + SOLUTIONS, ids=lambda p: p.stem)
def test_each_notebook_opens_with_its_own_cell(nb):
    code = [src for kind, src in colab._cells(nb) if kind == "code"]
    assert code[0] == colab.colab_cell(nb.stem), f"{nb.name}: paste colab.colab_cell({nb.stem!r}) as its first code cell"


def test_check_sees_a_stale_copy(tmp_path):
    root = _copy_for_retarget(tmp_path)
    nb = root / "notebooks" / "03_checkerboard_artifacts.ipynb"
    nb.write_text(nb.read_text().replace('"--branch\\", \\"main', '"--branch\\", \\"master'))
    assert [p.split(":")[0] for p in colab.check(root)] == ["notebooks/03_checkerboard_artifacts.ipynb"]
    with pytest.raises(ValueError, match="already disagree"):
        colab.retarget("https://github.com/me/fork", root=root)


def _copy_for_retarget(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    for rel in ("pyproject.toml", "README.md", "dcft_edu/experiments/colab.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, root / rel)
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(ROOT / "docs", root / "docs")
    return root


def test_retarget_rewrites_every_copy_and_is_idempotent(tmp_path):
    root = _copy_for_retarget(tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    changed = colab.retarget("https://github.com/Prof-X/dcft-course.git", branch="spring", root=root)
    assert colab.read_target(root) == ("https://github.com/Prof-X/dcft-course", "spring")
    assert colab.check(root) == []
    # every notebook (lesson and solution, .py and .ipynb), colab.py and pyproject changed; nothing names the old URL
    assert {root / "pyproject.toml", root / "dcft_edu/experiments/colab.py"} <= set(changed)
    assert set(colab._notebooks(root)) <= set(changed)
    for path in changed:
        text = path.read_text()
        assert "dcft-edu/dcft_edu" not in text and "Prof-X/dcft-course" in text, path
    nb = json.loads((root / "notebooks" / "16_e2e_generation.ipynb").read_text())
    assert "https://colab.research.google.com/github/Prof-X/dcft-course/blob/spring/notebooks/16_e2e_generation.ipynb" \
        in "".join(nb["cells"][0]["source"])
    assert '"--branch", "spring"' in "".join(c for k, c in colab._cells(root / "notebooks" / "16_e2e_generation.ipynb")
                                             if k == "code")
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Homepage"] == "https://github.com/Prof-X/dcft-course"
    # again: nothing to do; back: byte for byte what it was
    assert colab.retarget("https://github.com/Prof-X/dcft-course", root=root) == []
    colab.retarget(colab.REPO_URL, branch=colab.REPO_BRANCH, root=root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_retarget_refuses_what_colab_cannot_open(tmp_path):
    root = _copy_for_retarget(tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    for bad in ("https://gitlab.com/me/fork", "file:///srv/fork", "github.com/me/fork"):
        with pytest.raises(ValueError, match="GitHub"):
            colab.retarget(bad, root=root)
    with pytest.raises(ValueError, match="branch"):
        colab.retarget("https://github.com/me/fork", branch="a b", root=root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_retarget_cli(tmp_path, capsys):
    root = _copy_for_retarget(tmp_path)
    out = subprocess.run([sys.executable, "-m", "dcft_edu.experiments.colab", "retarget",
                          "https://github.com/me/fork", "--root", str(root)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "now point at https://github.com/me/fork (branch main)" in out.stdout and "Commit and push" in out.stdout
    with pytest.raises(SystemExit) as bad:
        colab.main(["retarget", "https://gitlab.com/a/b", "--root", str(root)])
    assert bad.value.code == 2 and "error:" in capsys.readouterr().err


# ---- headless: lessons 01, 07 and 16 through the Colab bootstrap -------------------------------------------

FAKE_PIP = '''import json, os, sys
with open(os.environ["FAKE_PIP_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
'''


def _fake_hub_gpt2(hf_home: Path) -> None:
    """A tiny random GPT-2 (and a byte-level BPE tokenizer) in an HF cache, under the id lesson 16 loads on Colab."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["name[The Eagle], eatType[coffee shop], food[French] || The Eagle is a coffee shop."],
                            vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>",
                            unk_token="<|endoftext|>")
    repo = hf_home / "hub" / ("models--" + colab.COLAB_CAUSAL_LM.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    tok.save_pretrained(snapshot)
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=48, n_layer=2, n_head=2,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    GPT2LMHeadModel(cfg).save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)


@pytest.fixture(scope="module")
def fake_colab(tmp_path_factory, tree_repo):
    """The environment of a fresh Colab CPU runtime, offline: a kernel env and its /content folder."""
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME  # noqa: F401  (nbval: the test extra)

    base = tmp_path_factory.mktemp("colab")
    fake = base / "site"
    (fake / "google" / "colab").mkdir(parents=True)
    (fake / "google" / "__init__.py").write_text("")
    (fake / "google" / "colab" / "__init__.py").write_text('"""A stand-in for Colab\'s module."""\n')
    (fake / "pip").mkdir()
    (fake / "pip" / "__init__.py").write_text("")
    (fake / "pip" / "__main__.py").write_text(FAKE_PIP)
    startup = base / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-colab.py").write_text("import google.colab  # Colab's kernels load it at start\n")
    _fake_hub_gpt2(base / "hf")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "DCFT_EDU_DATA", "DCFT_EDU_MODEL", colab.CAUSAL_LM_ENV, "DCFT_EDU_RESULTS")}
    env.update(PYTHONPATH=str(fake), IPYTHONDIR=str(base / "ipython"), HF_HOME=str(base / "hf"), HF_HUB_OFFLINE="1",
               DCFT_EDU_QUICK="1", DCFT_EDU_TRAIN="0", MPLBACKEND="agg",
               **{colab.REPO_URL_ENV: f"file://{tree_repo}"})
    return base, env


def run_headless(notebook: str, fake_colab, n_code_cells: int, probe: str) -> tuple[list[str], str, list]:
    """Run the first ``n_code_cells`` code cells of the committed ``notebooks/<notebook>.ipynb`` in a fresh kernel
    with the fake Colab environment, then ``probe``; returns (each cell's text output, the probe's, pip calls)."""
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, start_new_kernel

    base, env = fake_colab
    content = base / f"content_{notebook[:2]}"
    content.mkdir()
    env = dict(env, **{colab.CLONE_ENV: str(content / "dcft_edu"), "FAKE_PIP_LOG": str(content / "pip.log")})
    cells = [c for c in json.loads((ROOT / "notebooks" / f"{notebook}.ipynb").read_text())["cells"]
             if c["cell_type"] == "code"]
    km, kc = start_new_kernel(kernel_name=CURRENT_ENV_KERNEL_NAME, cwd=str(content), env=env,
                              stderr=subprocess.DEVNULL)
    outputs = []
    try:
        for i, src in enumerate(["".join(c["source"]) for c in cells[:n_code_cells]] + [probe]):
            out: list[str] = []

            def hook(msg, out=out):
                kind, c = msg["msg_type"], msg["content"]
                if kind == "stream":
                    out.append(c["text"])
                elif kind == "error":
                    out.append("\n".join(c["traceback"]))
            reply = kc.execute_interactive(src, timeout=300, output_hook=hook)
            assert reply["content"]["status"] == "ok", f"{notebook}: code cell {i} failed:\n{''.join(out)}"
            outputs.append("".join(out))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    log = content / "pip.log"
    pip = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    return outputs[:-1], outputs[-1], pip


PROBE = "import dcft_edu, os, sys; print(dcft_edu.__file__, os.getcwd(), 'google.colab' in sys.modules, sep='\\n')"


@pytest.mark.parametrize("notebook, n_cells, extras", [
    ("01_lora_and_the_rank_one_floor", 5, ""),      # bootstrap, set-up, LoRA injected into the packaged MiniLM
    ("07_glue_main_results", 5, ""),                # bootstrap, set-up, the committed sweep read into tables
    ("16_e2e_generation", 6, "[e2e]"),              # up to generating with the hub model it names
])
def test_lesson_runs_headless_through_the_colab_bootstrap(notebook, n_cells, extras, fake_colab):
    base, _ = fake_colab
    cells, probe, pip = run_headless(notebook, fake_colab, n_cells, PROBE + (
        "; print(model.name_or_path, model.config.n_embd)" if notebook.startswith("16") else ""))
    clone = (base / f"content_{notebook[:2]}" / "dcft_edu").resolve()
    # the cell cloned the published tree, bootstrap "installed" it with the lesson's extras and moved into notebooks/
    assert (clone / ".git" / "shallow").is_file()
    assert pip == [["install", "-q", "-e", f"{clone}{extras}"]]
    assert f"pip install -q -e {clone}{extras}" in cells[0]
    module, cwd, colab_loaded, *rest = probe.split("\n")
    assert Path(module).resolve().is_relative_to(clone) and Path(cwd).resolve() == clone / "notebooks"
    assert colab_loaded == "True" and "GLUE from the Hugging Face hub" in cells[0] and "T4 GPU" in cells[0]
    if notebook.startswith("16"):
        assert f"causal LM: {colab.COLAB_CAUSAL_LM}" in cells[1]  # the hub model, not the tiny stand-in
        assert rest[0] == f"{colab.COLAB_CAUSAL_LM} 48"  # ... and it is our local stand-in for it
