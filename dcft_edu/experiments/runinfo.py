"""Provenance for every result file: device, versions, git commit, scale, time.

Every JSON/CSV the package writes (under ``results/`` or ``figures/data/``) carries these fields,
so a reader can tell a 2-core CPU run from a GPU run at a glance.

Used by: ``dcft_edu.experiments.trainer``, ``dcft_edu.experiments.bench``, ``dcft_edu.experiments.sweep``.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..adapter_io import atomic_write  # noqa: F401  (the one atomic writer lives in the core)

QUICK_ENV = "DCFT_EDU_QUICK"
RESULTS_ENV = "DCFT_EDU_RESULTS"
COMMITTED_ENV = "DCFT_EDU_COMMITTED"
REPO_ROOT = Path(__file__).resolve().parents[2]


def is_quick() -> bool:
    """True when ``DCFT_EDU_QUICK=1``: every notebook runs at its tiny CI scale."""
    return os.environ.get(QUICK_ENV, "0") not in ("", "0", "false", "False")


def committed_results_dir() -> Path:
    """The committed experiment results, ``<repo>/figures/data``: what the figures, the README's tables and
    notebooks 07–14 are read from. Only a command that names it writes there (``--results figures/data``, as
    ``scripts/gpu_experiments.sh`` does to regenerate them). ``$DCFT_EDU_COMMITTED`` names another folder
    instead (a copy with fewer seeds, to check that the notebooks assert nothing a smaller run breaks).
    """
    return Path(os.environ.get(COMMITTED_ENV) or REPO_ROOT / "figures" / "data")


def user_results_dir() -> Path:
    """Where your own sweeps go unless told otherwise: ``$DCFT_EDU_RESULTS``, else ``<repo>/results``
    (git-ignored), so they never mix with the committed results.
    """
    return Path(os.environ.get(RESULTS_ENV) or REPO_ROOT / "results")


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' → CUDA if available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def notebook_setup() -> tuple[torch.device, bool]:
    """``(DEVICE, QUICK)`` for a notebook's first cell, printed: the device it will use and whether
    ``DCFT_EDU_QUICK=1`` put it at its tiny CI scale.

    Used in: notebooks 01–14 (their first code cell).
    """
    device, quick = resolve_device(), is_quick()
    print(f"device: {device_name(device)}  |  quick mode (DCFT_EDU_QUICK): {quick}")
    return device, quick


def device_name(device: torch.device) -> str:
    """The device in words, as result files record it ("NVIDIA H200", "cpu (x86_64, 2 cores, 1 threads)");
    ``analysis.short_device`` shortens it to "H200", "cpu"."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads)"


def git_commit() -> str:
    """The repository's HEAD commit (with '+dirty' when the tree has changes), or 'unknown'.

    ``$DCFT_EDU_GIT_COMMIT`` wins: a copy of the tree without ``.git`` (a GPU machine) passes it in.
    """
    if os.environ.get("DCFT_EDU_GIT_COMMIT"):
        return os.environ["DCFT_EDU_GIT_COMMIT"]
    root = Path(__file__).resolve().parents[2]  # dcft_edu/experiments/runinfo.py -> the repository
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if sha.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return sha.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def library_versions() -> dict[str, str]:
    import transformers

    out = {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__}
    for name in ("datasets", "numpy", "peft"):
        try:
            out[name] = __import__(name).__version__
        except Exception:
            pass
    return out


def peak_memory_mb(device: torch.device) -> tuple[float, str]:
    """(peak MiB, what was measured): CUDA max allocated, or the process's peak RSS on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    # ru_maxrss is in KiB on Linux; it is the whole process's lifetime peak
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process_peak_rss"


def provenance(device: torch.device, scale: str, seed: int | None = None) -> dict:
    """The fields every committed result file records."""
    return {
        "device": device_name(device),
        "device_type": device.type,
        "scale": scale,
        "seed": seed,
        "versions": library_versions(),
        "git_commit": git_commit(),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
    }


#: environment variables that change CPU timings without changing results (threads, the allocator)
TIMING_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "THP_MEM_ALLOC_ENABLE", "LD_PRELOAD")


def timing_env() -> dict[str, str]:
    """Those of ``TIMING_ENV`` that are set, for a benchmark's record.

    E.g. ``THP_MEM_ALLOC_ENABLE=1`` (torch's CPU allocator asks for transparent huge pages) made the
    ≥ 50 MB activations of the DeBERTa-base shapes 2–3× cheaper to allocate on our 2-core VM (REPORT §09).
    """
    return {k: os.environ[k] for k in TIMING_ENV if k in os.environ}


def timing_env_text() -> str:
    """``timing_env()`` for a benchmark's header line: " | KEY=value" per variable set ("" if none)."""
    return "".join(f" | {k}={v}" for k, v in timing_env().items())


def writable_dir(folder: str | os.PathLike, what: str) -> Path:
    """Create ``folder`` and test-write a file in it: a run that cannot save fails now, not after training.

    ``what`` names the option in the error (``"--out"``, ``"--results"``). Used by the train and sweep CLIs.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise ValueError(f"{what}: cannot write to the folder {folder} ({e.strerror}); "
                         "choose a folder you can create and write to") from None
    return folder


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see ``atomic_write``)."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
