"""The engine's checks of what a user hands in, in one place: run fields, grids, devices, claims on runs.

Every error names the field (or flag, or file), the value, and the fix, and is raised before any work:

- ``check_fields(fields, spell=...)``: a run's fields, as ``RunConfig`` (``make_run``, GLUE or E2E), the
  train CLI's flags, ``--set`` and grid files hand them in. One function, so a learning rate of -1 is refused
  the same way wherever it enters; ``spell`` names the field as the user wrote it (``--lr``, ``--set lr=``).
- ``check_grid(grid, source)``: a grid's shape (a dict or a list of dicts, with ``task`` and ``method``, no
  unknown keys, no empty lists); ``check_unique_runs``: no two grid points that make the same run (a seed
  listed twice, or ``--set seed=5`` over a 3-seed grid);
- ``load_grid_file(path)``: a JSON grid file, refused clearly if it is not UTF-8, not JSON or not a grid;
- ``check_device(device, available=True)``: a device string torch knows, and (at a CLI, ``available=True``)
  one this machine has;
- ``check_save_delta(model_name, save_delta)``: the module whose ΔW is kept exists, once, in the model (read
  from its config on the meta device, no weights); ``check_save_delta_adapted`` checks it after injection;
- ``RunClaim``: one process trains one run at a time, across sweeps sharing a results folder
  (an ``fcntl`` lock per run key, released when its holder exits or dies).

Used by: ``presets.RunConfig``, ``sweep``, ``train``, ``trainer``; tested in
``tests/test_validation_engine.py``.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from ..adapter_io import host_tag  # the temp files' writer tags them with it; claims record it too
from ..config import _is_int  # an int, not a bool: the core's own check of the adapter config

#: grid / make_run keys that are not RunConfig fields but are understood by ``make_run``
GRID_EXTRAS = ("lr_factor", "start_frac")
#: fields a ``--set`` may not change: they have their own flag, or are derived
SET_REFUSED = {"task": "list tasks in the grid", "method": "list methods in the grid", "scale": "use --scale",
               "model_fingerprint": "it is derived from --set model=..."}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite_at_least(low: float, fix: str, strict: bool = False) -> Callable[[Any], Optional[str]]:
    """A rule: a finite number ≥ low (> low with ``strict``); returns what is wrong, or None."""

    def rule(v: Any) -> Optional[str]:
        if not _is_number(v):
            return f"must be a number, got {type(v).__name__}; {fix}"
        if not math.isfinite(v):
            return f"must be a finite number; {fix}"
        if v < low or (strict and v == low):
            return f"must be {'>' if strict else '>='} {low:g}; {fix}"
        return None

    return rule


_EMPTY_SPLIT = "an empty split can neither train nor be evaluated; give a number >= 1, or None for the whole split"


def _int_at_least(low: int, fix: str) -> Callable[[Any], Optional[str]]:
    def rule(v: Any) -> Optional[str]:
        if not _is_int(v):
            return f"must be an integer, got {type(v).__name__}; {fix}"
        if v < low:
            return fix if fix == _EMPTY_SPLIT else f"must be >= {low}; {fix}"
        return None

    return rule


def _optional(rule: Callable[[Any], Optional[str]]) -> Callable[[Any], Optional[str]]:
    return lambda v: None if v is None else rule(v)


def _device_rule(v: Any) -> Optional[str]:
    try:
        check_device(v, available=False)
    except ValueError as e:
        return str(e).split(": ", 1)[1]
    return None


#: field -> rule (returns the problem and its fix, or None). Fields a rule does not name are checked elsewhere
#: (the adapter fields by the core's configs, task/method/scale by RunConfig, seed/epochs/limits by RunConfig).
FIELD_RULES: dict[str, Callable[[Any], Optional[str]]] = {
    "lr": _finite_at_least(0.0, "use a positive learning rate such as 1e-3 (each task's recipe: recipes.TASK_RECIPES)",
                           strict=True),
    "lr_factor": _finite_at_least(0.0, "a multiple of the recipe's learning rate, e.g. 0.5 or 3", strict=True),
    "weight_decay": _finite_at_least(0.0, "AdamW's weight decay: 0 turns it off, the recipes use 0.01"),
    # clip_grad_norm_ with a negative max_norm multiplies every gradient by a negative number: descent turns ascent
    "max_grad_norm": _finite_at_least(0.0, "clip at a norm > 0 (default 1.0), or 0 to turn clipping off"),
    "warmup_steps": _int_at_least(0, "warmup counts optimizer steps; 0 means none"),
    "orth_gamma": _finite_at_least(0.0, "γ of DCFT's orthogonal penalty: 0 turns it off, the recipes use 0.1-0.3"),
    "update_ratio": _finite_at_least(0.0, "Delta-LoRA's λ: its paper uses 0.5 on GLUE, 2 on E2E"),
    "dcft_init_std": _finite_at_least(0.0, "a standard deviation > 0, e.g. 0.02", strict=True),
    "start_steps": _optional(_int_at_least(0, "Delta-LoRA's K is an optimizer step, or None for the recipe's")),
    "seed": lambda v: (f"must be an integer, got {type(v).__name__}" if not _is_int(v) else
                       None if 0 <= v < 2**32 else "a seed must be in [0, 2**32 - 1] (numpy's range); use e.g. 0, 1, 2"),
    "epochs": _int_at_least(1, "train at least one epoch"),
    "batch_size": _int_at_least(1, "use e.g. 16 or 32"),
    "grad_accum": _int_at_least(1, "1 means no accumulation"),
    "max_length": _int_at_least(1, "tokens per example, e.g. 128"),
    "limit_train": _optional(_int_at_least(1, _EMPTY_SPLIT)),
    "limit_dev": _optional(_int_at_least(1, _EMPTY_SPLIT)),
    "eval_mrs": _optional(_int_at_least(1, "score at least one meaning representation; None for all")),
    "num_beams": _int_at_least(1, "1 is greedy decoding"),
    "max_new_tokens": _int_at_least(1, "E2E sentences need ~40 tokens"),
    "device": _device_rule,
    "save_delta": _optional(lambda v: None if isinstance(v, str) and v.strip(".") else
                            "must be a module-name suffix such as 'layer.0.attention.self.query'"),
}


def _spell_field(k: str, v: Any) -> str:
    return f"{k}={v!r}"


def spell_flag(k: str, v: Any) -> str:
    """A field as the train CLI's flag spells it: ``--weight-decay -1.0``."""
    return f"--{k.replace('_', '-')} {v}"


def spell_set(k: str, v: Any) -> str:
    """A field as ``--set`` spells it: ``--set lr=-1``."""
    return f"--set {k}={json.dumps(v) if not isinstance(v, str) else v}"


def field_problems(fields: Mapping[str, Any], spell: Callable[[str, Any], str] = _spell_field) -> list[str]:
    """Every problem of ``fields`` (one message each: the field as spelled, the value, the fix)."""
    out = []
    for k, v in fields.items():
        rule = FIELD_RULES.get(k)
        problem = rule(v) if rule is not None else None
        if problem:
            out.append(f"{spell(k, v)}: {problem}")
    return out


def check_fields(fields: Mapping[str, Any], spell: Callable[[str, Any], str] = _spell_field,
                 source: str = "") -> None:
    """Refuse run fields that would train something wrong: ``ValueError`` listing every bad one.

    The one check of a run's numeric fields and device, called by ``RunConfig`` (so ``make_run``, grids,
    ``--set`` and E2E runs all pass it), and the CLIs before they build a run (so the error names the flag).
    """
    problems = field_problems(fields, spell)
    if problems:
        raise ValueError((f"{source}: " if source else "") + "; ".join(problems))


# ----------------------------------------------------------------------------------------------- devices
_DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")


def check_device(device: Any, available: bool = True) -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``xpu`` (with ``available``: one this machine has)."""
    if not isinstance(device, str) or not (device == "auto" or re.fullmatch(rf"({'|'.join(_DEVICE_TYPES)})(:\d+)?",
                                                                         device)):
        raise ValueError(f"device={device!r}: unknown device; use auto (CUDA if there is one), cpu, cuda or cuda:N")
    if not available or device in ("auto", "cpu"):
        return
    import torch

    kind, _, index = device.partition(":")
    if kind == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise ValueError(f"device={device!r}: this machine has no CUDA GPU (torch {torch.__version__}, "
                             f"cuda={torch.version.cuda}); use --device cpu or auto, or run on a GPU machine")
        if index and int(index) >= n:
            raise ValueError(f"device={device!r}: this machine has {n} CUDA GPU(s), cuda:0..cuda:{n - 1}")
    elif kind == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device={device!r}: MPS (Apple GPU) is not available here; use cpu or auto")
    elif kind == "xpu" and not (hasattr(torch, "xpu") and torch.xpu.is_available()):
        raise ValueError(f"device={device!r}: no Intel XPU here; use cpu or auto")


# ------------------------------------------------------------------------------------------------ grids
def load_grid_file(path: str | os.PathLike) -> Any:
    """A JSON grid file's content, or a ``ValueError`` naming the file and what is wrong with it."""
    path = Path(path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{not_utf8(path, raw, e)}; a grid file is JSON text in UTF-8") from None
    try:
        grid = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}:{e.lineno}:{e.colno}: not valid JSON ({e.msg}); a grid file holds "
                         '{"task": [...], "method": [...], "seed": [...]} or a list of such') from None
    check_grid(grid, str(path))
    return grid


def not_utf8(path: Path, raw: bytes, e: UnicodeDecodeError) -> str:
    """``path:line: byte 0x.. at offset N is not UTF-8 ...`` for a decode error of ``raw`` (the file's bytes)."""
    line = raw.count(b"\n", 0, e.start) + 1
    return (f"{path}:{line}: byte {raw[e.start]:#04x} (file offset {e.start}) is not UTF-8; save the file as "
            "UTF-8 (e.g. iconv -f latin1 -t utf-8 OLD > NEW)")


def check_grid(grid: Any, source: str = "grid", fields: Iterable[str] = (), given: Iterable[str] = ()) -> None:
    """A grid is a dict (or a non-empty list of dicts) with ``task`` and ``method``; every key a RunConfig field
    (``fields``; not checked if empty) or one of ``GRID_EXTRAS``; no empty value list. ``given``: keys that
    overrides supply to every point."""
    given = set(given)
    example = '{"task": ["rte"], "method": ["lora"], "seed": [0, 1, 2]}'
    parts = [grid] if isinstance(grid, dict) else grid
    if not isinstance(parts, list) or not all(isinstance(g, dict) for g in parts):
        raise ValueError(f"{source}: a grid is a dict of lists such as {example}, or a list of such dicts; "
                         f"got a JSON {type(grid).__name__}" + ("" if isinstance(grid, list) else f" ({grid!r:.60})"))
    if not parts:
        raise ValueError(f"{source}: the grid is empty (no runs); give e.g. {example}")
    known = set(fields) | set(GRID_EXTRAS)
    for i, g in enumerate(parts):
        where = source if isinstance(grid, dict) else f"{source} (part {i + 1})"
        missing = [k for k in ("task", "method") if k not in g and k not in given]
        if missing:
            raise ValueError(f"{where}: every grid point needs {' and '.join(missing)}; got the keys {sorted(g)}")
        if fields:
            unknown = [k for k in g if k not in known]
            if unknown:
                raise ValueError(f"{where}: {', '.join(map(repr, unknown))} is not a run field; the fields: "
                                 f"{', '.join(sorted(known))}")
        empty = [k for k, v in g.items() if isinstance(v, (list, tuple)) and not v]
        if empty:
            raise ValueError(f"{where}: {', '.join(empty)} list no values, so the grid has no runs; give at least one")


def check_set_overrides(items: Sequence[str], fields: Iterable[str],
                        parse: Callable[[str], Any] = json.loads) -> dict[str, Any]:
    """``--set FIELD=VALUE`` items as a dict, each key a run field and each value checked (``check_fields``)."""
    fields = set(fields)
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set needs FIELD=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        if k in SET_REFUSED:
            raise ValueError(f"--set {k}: not settable for every run ({SET_REFUSED[k]})")
        if k not in fields and k not in GRID_EXTRAS:
            import difflib

            close = difflib.get_close_matches(k, sorted(fields | set(GRID_EXTRAS)), n=2, cutoff=0.6)
            raise ValueError(f"--set {k}: not a RunConfig field" + (f" (did you mean {', '.join(close)}?)" if close else "")
                             + f"; the fields: {', '.join(sorted(fields | set(GRID_EXTRAS)))}")
        if k in out:
            raise ValueError(f"--set {k} is given twice ({out[k]!r} and {v!r}); keep one")
        out[k] = parse(v)
    check_fields(out, spell_set)
    return out


def check_unique_runs(points: Sequence[Mapping[str, Any]], keys: Sequence[str], source: str = "grid",
                      overrides: Optional[Mapping[str, Any]] = None) -> None:
    """Refuse a grid two of whose points make the same run (``keys[i]``: point i's run key).

    Names the cause: an override (``--set seed=5``) that erases the field the points differ in, a value
    listed twice, or values that mean the same run (e.g. ``stride`` = ``kernel_size``, 16 and 16.0).
    """
    overrides = dict(overrides or {})
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        if key not in first:
            first[key] = i
            continue
        a, b = points[first[key]], points[i]
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        erased = [k for k in differ if k in overrides]
        n = sum(1 for k in keys if k == key)
        if erased:
            vals = "; ".join(f"{k}: {a.get(k)!r}, {b.get(k)!r}, ... all become {overrides[k]!r}" for k in erased)
            raise ValueError(f"{source}: {spell_set(erased[0], overrides[erased[0]])} makes {n} grid points the same "
                             f"run ({vals}); drop the --set, or use a grid with one {erased[0]}")
        if not differ:
            raise ValueError(f"{source}: the point {dict(a)} is listed {n} times (a value repeated in a list?); "
                             "list each value once: a repeated run would only be trained once")
        raise ValueError(f"{source}: the points {dict(a)} and {dict(b)} are the same run (their "
                         f"{', '.join(differ)} mean the same setting); keep one of them")


# ------------------------------------------------------------------------------------------- save_delta
@functools.lru_cache(maxsize=16)
def _linear_names(model_dir: str) -> Optional[tuple[str, ...]]:
    """Names of the linear layers of the sequence-classification model in ``model_dir`` (meta device, no
    weights), or None if its config cannot be read here (a hub id not in the cache: checked after loading)."""
    try:
        from torch import nn
        from transformers import AutoConfig, AutoModelForSequenceClassification

        from ..inject import meta_model

        cfg = AutoConfig.from_pretrained(model_dir, local_files_only=True)
        model = meta_model(cfg, AutoModelForSequenceClassification)
    except Exception:  # an offline hub id, a model transformers cannot build from its config: checked at load
        return None
    return tuple(n for n, m in model.named_modules() if isinstance(m, nn.Linear) or type(m).__name__ == "Conv1D")


def save_delta_problem(names: Iterable[str], save_delta: str) -> Optional[str]:
    """What is wrong with ``save_delta`` for a model with these module names (None: it names exactly one)."""
    names = list(names)
    hits = [n for n in names if n == save_delta or n.endswith("." + save_delta)]
    if len(hits) == 1:
        return None
    if not hits:
        import difflib

        depth = len(save_delta.split("."))
        tails = list(dict.fromkeys(".".join(n.split(".")[-depth:]) for n in names))
        close = difflib.get_close_matches(save_delta, tails, n=2, cutoff=0.6)
        return (f"save_delta={save_delta!r}: no linear layer of the model ends with it"
                + (f"; did you mean {' or '.join(map(repr, close))}?" if close else
                   f"; e.g. {names[min(2, len(names) - 1)].split('.', 1)[-1]!r}" if names else ""))
    return (f"save_delta={save_delta!r} matches {len(hits)} layers ({hits[0]}, {hits[1]}, ...): only the first "
            f"would be kept; name one, e.g. {'.'.join(hits[0].split('.')[-5:])!r}")


def check_save_delta(model: str, save_delta: Optional[str]) -> None:
    """Refuse a ``save_delta`` that names no layer (or several) of ``model`` (a local folder; a hub id not in the
    cache is checked after loading by ``check_save_delta_adapted``), before anything trains."""
    if not save_delta:
        return
    names = _linear_names(model) if Path(model).is_dir() else None
    problem = None if names is None else save_delta_problem(names, save_delta)
    if problem:
        raise ValueError(problem)


def check_save_delta_adapted(model, run) -> None:
    """After injection, before training: ``run.save_delta`` names one layer, and (for an adapter method) one the
    adapters adapt, so that its ΔW is not a silent zero."""
    if not run.save_delta:
        return
    from torch import nn

    from ..adapter_layer import AdapterLayer

    layers = {n: m for n, m in model.named_modules()
              if isinstance(m, (nn.Linear, AdapterLayer)) or hasattr(m, "lokr_w1") or type(m).__name__ == "Conv1D"}
    # PEFT's wrappers hold the original layer as base_layer: one name per adapted layer
    names = [n for n in layers if not n.endswith(".base_layer")]
    problem = save_delta_problem(names, run.save_delta)
    if problem:
        raise ValueError(problem)
    name = next(n for n in names if n == run.save_delta or n.endswith("." + run.save_delta))
    m = layers[name]
    if run.method not in ("full", "head") and not (isinstance(m, AdapterLayer) or hasattr(m, "lokr_w1")):
        raise ValueError(f"save_delta={run.save_delta!r}: {name} is not adapted by this {run.method} run "
                         f"(target_modules={run.target_modules!r}, layers={run.layers!r}), so its ΔW would be 0; "
                         "name an adapted layer or add it to target_modules")


# ------------------------------------------------------------------------------------------------ claims
def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


#: a temporary file written by ``atomic_write``: ``.<name>.pid<PID>@<host>.<random>.tmp``
_TMP_OWNER = re.compile(r"\.pid(\d+)@([A-Za-z0-9_-]+)\.[^.]*\.tmp$")


def stale_temp(path: Path) -> bool:
    """True only for a temporary file provably abandoned: written on this host by a process that is dead.

    A temp without an owner in its name (an older writer), or from another host (a cluster job on a shared
    disk), is never called stale: it may be another sweep's file being written right now.
    """
    m = _TMP_OWNER.search(path.name)
    return bool(m) and m.group(2) == host_tag() and not pid_alive(int(m.group(1)))


class RunClaim:
    """An exclusive claim on one run key in a results folder: ``<results>/.claims/<key>.claim``, held by an
    ``fcntl`` lock, so two sweeps on one folder never train the same run at once. The kernel drops the lock
    when its holder exits or dies, so a claim left by a killed sweep is free again at once (the file records
    ``pid@host`` for people). Without ``fcntl`` (Windows) every claim succeeds.

        claim = RunClaim(results_dir, run.key())
        if claim.acquire():
            try: ... train, write the result ...
            finally: claim.release()
    """

    def __init__(self, results_dir: str | os.PathLike, key: str):
        self.path = Path(results_dir) / ".claims" / f"{key}.claim"
        self.fd: Optional[int] = None

    def acquire(self) -> bool:
        """True if this process now holds the claim; False if another live process does."""
        try:
            import fcntl
        except ImportError:  # no advisory locks here: one sweep per folder is the user's job
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the holder before us may have unlinked the file after we opened it: lock the live file only
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid{os.getpid()}@{host_tag()}\n".encode())
        self.fd = fd
        return True

    def holder(self) -> str:
        """Who holds the claim, as its file records it (``pid123@host``), or ``?``."""
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)  # closing drops the lock
        self.fd = None

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()
