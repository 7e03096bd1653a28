"""Colab: the one place that names the repository, and the setup a notebook's first cell runs there.

On Colab a notebook starts with nothing: no package, no committed results (``figures/data``), no
other notebooks. Its first cell (``COLAB_CELL``, the same in every notebook; a test checks) clones the
repository, which is all it can do before the package exists, then calls ``bootstrap()``::

    import os, subprocess, sys
    if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
        if not os.path.isdir("/content/dcft_edu"):
            subprocess.run(["git", "clone", "-q", "--depth", "1", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), "/content/dcft_edu"], check=True)
        sys.path.insert(0, "/content/dcft_edu")
    from dcft_edu.experiments.colab import bootstrap
    bootstrap()

``bootstrap()`` installs the clone (``pip install -e``: the dependencies, and the package for the
sweep's worker processes), moves into its ``notebooks/`` folder (so the notebooks find the committed
results where they expect them), says where the data and the model come from, and asks for a GPU
runtime when there is none. Anywhere else it does nothing (``force=True`` runs it anyway). The
repository URL is ``REPO_URL``, or ``$DCFT_EDU_REPO_URL`` (a fork, or a local clone in tests).

Importing this module needs only the standard library and the core's torch and safetensors (both
on Colab), since it runs before the install.

For the first code cell of every notebook.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional, Union

REPO_URL = "https://github.com/dcft-edu/dcft_edu"
REPO_URL_ENV = "DCFT_EDU_REPO_URL"
#: where the first cell clones the repository on Colab (absolute: the cell may run again from notebooks/)
CLONE_DIR = "/content/dcft_edu"

#: a notebook's first code cell, verbatim (tests/test_colab.py checks every notebook that has one)
COLAB_CELL = f'''import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    if not os.path.isdir("{CLONE_DIR}"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", os.environ.get("{REPO_URL_ENV}", "{REPO_URL}"), "{CLONE_DIR}"], check=True)
    sys.path.insert(0, "{CLONE_DIR}")
from dcft_edu.experiments.colab import bootstrap
bootstrap()'''


def repo_url() -> str:
    """``$DCFT_EDU_REPO_URL`` or ``REPO_URL``."""
    return os.environ.get(REPO_URL_ENV) or REPO_URL


def on_colab() -> bool:
    """True inside a Colab runtime (its ``google.colab`` module is loaded, or ``$COLAB_RELEASE_TAG`` is set)."""
    return "google.colab" in sys.modules or bool(os.environ.get("COLAB_RELEASE_TAG"))


def bootstrap(clone_dir: Union[str, Path, None] = None, force: bool = False,
              run: Optional[Callable[..., subprocess.CompletedProcess]] = None) -> Optional[Path]:
    """On Colab (or with ``force=True``): clone ``repo_url()`` into ``clone_dir`` (default ``CLONE_DIR``;
    shallow, unless it is there), ``pip install -e`` it, ``chdir`` to its ``notebooks/``, and print where
    data, model and device come from. Returns the clone, or None when not on Colab. ``run`` runs the
    commands (default ``subprocess.run``; tests pass a fake).
    """
    if not (force or on_colab()):
        return None
    run = run or subprocess.run
    clone = Path(clone_dir or CLONE_DIR).resolve()
    if not (clone / "pyproject.toml").is_file():
        if clone.exists() and any(clone.iterdir()):
            raise FileExistsError(f"{clone} exists but holds no dcft_edu checkout (no pyproject.toml): "
                                  f"remove it or pass another clone_dir")
        run(["git", "clone", "-q", "--depth", "1", repo_url(), str(clone)], check=True)
    run([sys.executable, "-m", "pip", "install", "-q", "-e", str(clone)], check=True)
    if str(clone) not in sys.path:
        sys.path.insert(0, str(clone))
    import importlib

    importlib.invalidate_caches()  # the packages pip just installed are importable in this kernel
    os.chdir(clone / "notebooks")
    print(f"dcft_edu: {repo_url()} at {clone}; working in {clone / 'notebooks'}")
    _say_where_things_come_from()
    return clone


def _say_where_things_come_from() -> None:
    import torch

    from .data import DATA_ENV, HF_GLUE
    from .models import MODEL_ENV

    data = os.environ.get(DATA_ENV)
    print(f"data: {data} (${DATA_ENV})" if data else
          f"data: GLUE from the Hugging Face hub ({HF_GLUE}), downloaded on first use (set ${DATA_ENV} to a local copy)")
    model = os.environ.get(MODEL_ENV)
    print(f"model: {model} (${MODEL_ENV})" if model else
          f"model: the packaged all-MiniLM-L6-v2 (set ${MODEL_ENV} to another Hugging Face model)")
    if torch.cuda.is_available():
        print(f"device: {torch.cuda.get_device_name(0)}")
    else:
        print("device: CPU only. For the lab runs pick a GPU runtime: Runtime → Change runtime type → "
              "T4 GPU, then run the notebook again from the top.")
