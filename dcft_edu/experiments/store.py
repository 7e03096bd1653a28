"""The result store of every run (the GLUE tasks and E2E): one JSON file per finished run, named by its key,
written atomically.

``result_path`` names a run's file, ``read_result`` reads one back whole (or says why not), ``done_path`` finds
a run's finished file under its schema-2 key or its ``legacy_key`` (GLUE's schema 1; E2E's files from before E2E
was a task of ``RunConfig``, named ``<scale>_<method>_s<seed>_<key>.json``), ``find_done`` does the same and
moves a bad file aside, ``save_result`` writes one, ``load_results`` reads a sweep folder as a DataFrame.
``sweep`` and ``e2e`` write through it; analysis, the figures and the notebooks read through it.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Union

from .presets import E2E_TASK, RESULT_SCHEMA, RunConfig
from .runinfo import atomic_write, atomic_write_json


def result_path(results_dir: Union[str, Path], name: str, run: RunConfig, key: Optional[str] = None) -> Path:
    """Where ``run``'s result goes (``key``: another of its keys, e.g. ``run.legacy_key()``)."""
    return Path(results_dir) / name / f"{run.task}-{run.method}-s{run.seed}-{key or run.key()}.json"


def run_files(results_dir: Union[str, Path], name: str, run: RunConfig) -> list[tuple[Path, str]]:
    """``(path, key)`` of every file that may hold ``run``'s result in sweep ``name``: its schema-2 key, then its
    ``legacy_key`` (E2E's legacy files have their own naming)."""
    files = [(result_path(results_dir, name, run), run.key())]
    legacy = run.legacy_key()
    if legacy:
        files.append((Path(results_dir) / name / f"{run.scale}_{run.method}_s{run.seed}_{legacy}.json", legacy)
                     if run.task == E2E_TASK else (result_path(results_dir, name, run, legacy), legacy))
    return files


#: what every result file holds for its readers (``load_results``, the figures); a sweep also checks ``key``.
#: An E2E result holds its ``scores`` instead of the GLUE epochs' ``best``
RESULT_FIELDS = ("config", "best", "best_metric")
E2E_RESULT_FIELDS = ("config", "scores")


def _problem(rec: Any) -> Optional[str]:
    """What is wrong with a parsed result record, or None."""
    if not isinstance(rec, dict):
        return f"holds a JSON {type(rec).__name__}, not a result record"
    e2e = rec.get("task") == E2E_TASK
    missing = [f for f in (E2E_RESULT_FIELDS if e2e else RESULT_FIELDS) if f not in rec]
    if missing:
        return f"lacks the result fields {missing}"
    if rec.get("status") == "diverged":  # finished, but diverged: no best epoch, the record says where
        return None if isinstance(rec.get("diverged_at"), dict) else "is marked diverged but lacks 'diverged_at'"
    if e2e:
        return None if isinstance(rec["scores"], dict) and "bleu" in rec["scores"] else "its 'scores' lack 'bleu'"
    if not isinstance(rec["best"], dict) or "epoch" not in rec["best"]:
        return "its 'best' record lacks 'epoch'"
    return None


def read_result(p: Union[str, Path]) -> dict:
    """One result file's record; ``ValueError`` naming the file if it does not parse or lacks ``RESULT_FIELDS``."""
    try:
        rec = json.loads(Path(p).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{p}: unreadable result file ({type(e).__name__}: {e})") from e
    problem = _problem(rec)
    if problem:
        raise ValueError(f"{p}: not a whole result file: it {problem}")
    return rec


def _check_done(results_dir: Path, name: str, run: RunConfig) -> tuple[Optional[Path], list[tuple[Path, str]]]:
    """(the valid result file of ``run`` in sweep ``name``, or None; the bad files found on the way, with why).

    A file counts only if it reads as a whole result of this very key (the schema-2 key, or the
    schema-1 ``legacy_key``).
    """
    bad = []
    for p, key in run_files(results_dir, name, run):
        if not p.exists():
            continue
        try:
            rec = read_result(p)
        except ValueError as e:
            bad.append((p, str(e)))
            continue
        if rec.get("key") != key:
            bad.append((p, f"{p}: holds key {rec.get('key')!r}, not the {key!r} its name says"))
            continue
        if _holds(run, rec, key):  # (else another model's run under the old key: not this one, and not bad)
            return p, bad
    return None, bad


def _holds(run: RunConfig, rec: dict, key: str) -> bool:
    """Whether a whole result record stored under ``key`` (one of ``run``'s keys) is ``run``'s result.

    A legacy E2E file keyed its model as null whatever model it was trained on ($DCFT_EDU_CAUSAL_LM or the packaged
    SmolLM2, or a notebook's stand-in): it counts for the packaged model only if it names SmolLM2's file."""
    if rec.get("key") != key:
        return False
    if key == run.key() or run.task != E2E_TASK:
        return True
    from .causal_lm import SMOLLM2_GGUF

    return str(rec.get("model_name", "")).endswith(Path(SMOLLM2_GGUF).name)


def done_path(results_dir: Union[str, Path], name: str, run: RunConfig) -> Optional[Path]:
    """``run``'s finished result file in sweep ``name`` (under either of its keys), or None. Read-only.

    Used by: ``dcft_edu.experiments.analysis.coverage``, ``dcft_edu.figures.ablations.grid_coverage``.
    """
    return _check_done(Path(results_dir), name, run)[0]


def find_done(results_dir: Union[str, Path], name: str, run: RunConfig,
              log: Callable[[str], Any] = print) -> Optional[Path]:
    """``run``'s finished result file in sweep ``name``, or None; a bad file on the way (truncated by a kill,
    edited, another run's) is reported through ``log`` and moved aside to ``<name>.json.bad``, so the run is
    trained again. Used by ``sweep`` and ``e2e.train_and_save``."""
    done, bad = _check_done(Path(results_dir), name, run)
    for f, why in bad:
        f.replace(f.with_name(f.name + ".bad"))
        log(f"{why}; moved to {f.name}.bad, the run is trained again")
    return done


def save_result(results_dir: Union[str, Path], name: str, run: RunConfig, result: dict) -> Path:
    """Write ``run``'s result into sweep ``name`` (``result_path``) atomically; returns the path."""
    p = result_path(results_dir, name, run)
    _save_result(p, name, run, result)
    return p


def _save_result(p: Path, name: str, run: RunConfig, result: dict) -> None:
    """Write one run's result atomically; a kept ΔW goes beside it as ``<stem>.delta.safetensors``."""
    delta = result.get("_delta")
    result = {k: v for k, v in result.items() if not k.startswith("_")}
    result["sweep"], result["schema"], result["key"] = name, RESULT_SCHEMA, run.key()
    if delta:
        import torch
        from safetensors.torch import save_file

        atomic_write(delta_path(p), lambda tmp: save_file(
            {k: v.to(torch.float16).contiguous() for k, v in delta.items()}, tmp, metadata={"key": run.key()}))
    atomic_write_json(p, result)  # last: the JSON's presence means the run is complete


def delta_path(p: Path) -> Path:
    """Where a run's kept ΔW (``RunConfig.save_delta``) lives: beside its result file."""
    return p.with_name(p.stem + ".delta.safetensors")


def _find_elsewhere(results_dir: Path, name: str, run: RunConfig) -> Optional[Path]:
    """A finished result of the very same config in another sweep folder (so it need not be trained twice).

    Bad files there are skipped (their own sweep reports and retrains them).
    """
    for p, key in run_files(results_dir, name, run):
        for f in sorted(Path(results_dir).glob(f"*/{p.name}")):  # the same run has the same file name everywhere
            if f.parent.name == name or (run.save_delta and not delta_path(f).exists()):
                continue
            try:
                if _holds(run, read_result(f), key):
                    return f
            except ValueError:
                continue
    return None


def _e2e_row(r: dict, f: Path) -> dict:
    """``load_results``' row of an E2E result: config, bookkeeping, ``best_<score>`` from its scores (the generations
    and the loss curve stay in the file; ``e2e.load_e2e_results`` is E2E's own reader)."""
    drop = ("config", "scores", "initial", "generations", "train_loss_curve")
    row = {"schema": 1, **r["config"], "task": E2E_TASK, **{k: v for k, v in r.items() if k not in drop}}
    row.setdefault("status", "ok")
    scores = {k: v for k, v in (r["scores"] or {}).items() if isinstance(v, (int, float))}
    row.update({f"best_{k}": v for k, v in scores.items()})
    row.setdefault("main_metric", "bleu")
    row.setdefault("best_metric", scores.get("bleu"))
    row["best_epoch"] = None
    row["file"] = str(f)
    return row


def load_results(path: Union[str, Path], on_error: str = "raise") -> "pandas.DataFrame":  # noqa: F821
    """All result files under ``path`` (a sweep folder, or a folder of sweeps) as one DataFrame.

    One row per run (GLUE and E2E): the config fields, the best/final metric, parameter counts,
    timing, memory and provenance columns (``schema`` 1 for files that predate it);
    per-epoch records stay in ``epochs``. JSON files without ``config`` and ``key``
    (benchmarks) are not results and are passed over. A result file that does not
    parse or lacks ``RESULT_FIELDS`` raises a ``ValueError`` naming it
    (``on_error="raise"``) or is skipped with a warning naming it (``"skip"``).
    ``status`` is ``"ok"`` or ``"diverged"`` (no metric; files older than the column are ``"ok"``):
    ``analysis.finished_runs`` drops the diverged ones before any table or figure.
    """
    import pandas as pd

    if on_error not in ("raise", "skip"):
        raise ValueError(f"load_results(on_error={on_error!r}): expected 'raise' or 'skip'")
    if not Path(path).is_dir():
        raise FileNotFoundError(f"load_results: no folder {path} ({'a file' if Path(path).exists() else 'missing'}); "
                                "give the results folder a sweep wrote (--results, default results/) or one sweep in it")
    rows = []
    for f in sorted(Path(path).rglob("*.json")):
        if f.name.startswith("."):
            continue
        try:
            r = json.loads(f.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            r = None
        if isinstance(r, dict) and "config" not in r and "key" not in r:
            continue  # another JSON file (a benchmark), not a run's result
        try:
            r = read_result(f)
        except ValueError as e:
            if on_error == "raise":
                raise ValueError(f"{e}. Rerun its sweep (which moves it aside and retrains the run), delete it, "
                                 "or pass on_error='skip'") from None
            warnings.warn(f"load_results: skipping {e}", stacklevel=2)
            continue
        if r.get("task") == E2E_TASK:  # an E2E run: its scores stand for GLUE's best epoch (BLEU the main metric)
            rows.append(_e2e_row(r, f))
            continue
        row = {"schema": 1, **r["config"], **{k: v for k, v in r.items() if k not in ("config", "best", "final")}}
        row.setdefault("status", "ok")
        best = r["best"] or {"epoch": None}  # None: the run diverged
        row.update({f"best_{k}": v for k, v in best.items() if k != "epoch"})
        row["best_epoch"] = best["epoch"]
        row["file"] = str(f)
        rows.append(row)
    return pd.DataFrame(rows)
