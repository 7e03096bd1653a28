"""The Python half of ``scripts/gpu_window.sh``: one GPU window's grids, bundle, probe and summary.

``python -m dcft_edu.experiments.gpu_window <command> --help``:

- ``bundle DIR``: here, before the device call: the packaged MiniLM in float16, the GLUE files the window
  reads (train and dev of CoLA, MRPC, STS-B, RTE; SST-2's first 1,000 training rows, all the MiniLM
  benchmark reads), both xz-compressed, and the wheels of the packages the GPU machine lacks, into ``DIR``
  (``.device-bundle``), then the size of everything that would travel (at most 64 MiB: the working tree
  takes ~20 of them, so every byte of the bundle counts; the weights' two bytes are stored as two planes,
  which xz packs ~5 % smaller).
- ``unbundle DIR MODEL_DIR DATA_DIR``: there: the model and the data decompressed (once; a rerun keeps them).
- ``grids DIR``: the window's sweep grids as JSON files named after their sweeps: ``dcft_ref``, ``dcft_init``
  (from ``recipes.GRIDS``), ``dcft_lr_budget`` (the four ``scripts/grids/dcft_lr_budget_<task>.json`` files as
  one grid) and ``dcft_paper``; ``--impl`` sets DCFT's ``impl`` in them (the other methods' runs keep their
  keys); ``--quick`` keeps one task, seed 0 and one learning rate of each grid (the CPU rehearsal).
- ``choose-impl RESULTS BENCH``: DCFT's ``impl`` for the study's grids: the one its DCFT runs so far used (one
  study, one impl), else the faster of ``fast`` and ``dense`` in this GPU's MiniLM benchmark file BENCH, else
  ``fast``.
- ``todo RESULTS SCALE:FILE[,FILE…] …``: per group, how many runs of the grid files are not finished in RESULTS.
- ``stale FILE… --after DATE``: the benchmark files (stems) not measured on or after DATE (missing ones too).
- ``probe RESULTS --since T``: the throughput probe from the result files written since T: runs finished
  per minute and DCFT k = 8's per-run time ÷ LoRA r = 1's (same task and seed), and the samples/s ratios of
  the MiniLM benchmark files (``--bench``).

Every command starts Python once; the script calls each at most a few times per window.
"""
from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import statistics
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from .runinfo import REPO_ROOT, atomic_write, atomic_write_json

#: the sweeps of step 2 (the DCFT question at the budgeted scale) and of step 3 (the paper preset)
STUDY_SWEEPS = ("dcft_ref", "dcft_init", "dcft_lr_budget")
PAPER_SWEEP = "dcft_paper"
#: the tasks of the study, in the order of their grid files
STUDY_TASKS = ("cola", "mrpc", "stsb", "rte")
#: the GLUE folders the window reads, and the rows of SST-2's training file it needs (the bench reads 256)
BUNDLE_TASKS = ("CoLA", "MRPC", "STS-B", "RTE", "SST-2")
SST2_TRAIN_ROWS = 1000
#: packages the GPU machine lacks (datasets and two of its requirements) or has in another version (peft,
#: for PEFT's LoKr as the CPU runs used it): the versions of this project's environment
WHEELS = ("datasets==5.2.0", "dill==0.4.1", "multiprocess==0.70.19", "peft==0.21.2")
#: what travels with one device call
TRAVEL_LIMIT_MIB = 64
#: the model's files that travel as they are (the weights travel float16 and xz-compressed)
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


# ------------------------------------------------------------------------------------------------ grids
def _dcft_impl(grid: list[dict], impl: str) -> list[dict]:
    """``grid`` with ``impl`` set in its DCFT entries (``"fast"``, the default, leaves every key as it was)."""
    if impl == "fast":
        return grid
    return [dict(g, impl=[impl]) if g.get("method") == ["dcft"] else g for g in grid]


def _quick(grid: list[dict]) -> list[dict]:
    """The grid's first task only, seed 0 and the first ``lr_factor``: a few runs, for the rehearsal."""
    task = grid[0]["task"][0]
    out = []
    for g in grid:
        if task in g["task"]:
            q = dict(g, task=[task], seed=[0])
            if "lr_factor" in g:
                q["lr_factor"] = g["lr_factor"][:1]
            out.append(q)
    return out


def study_grids(impl: str = "fast", quick: bool = False, grids_dir: Path = REPO_ROOT / "scripts" / "grids"
                ) -> dict[str, list[dict]]:
    """The window's grids by sweep name: step 2's ``STUDY_SWEEPS`` and step 3's ``PAPER_SWEEP``."""
    from .recipes import GRIDS

    def as_list(grid):
        return [grid] if isinstance(grid, dict) else list(grid)

    lr_budget = []
    for task in STUDY_TASKS:
        path = grids_dir / f"dcft_lr_budget_{task}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the DCFT question's grid for {task} is missing")
        lr_budget += as_list(json.loads(path.read_text()))
    grids = {"dcft_ref": as_list(GRIDS["dcft_ref"]), "dcft_init": as_list(GRIDS["dcft_init"]),
             "dcft_lr_budget": lr_budget, PAPER_SWEEP: as_list(GRIDS[PAPER_SWEEP])}
    return {name: _dcft_impl(_quick(g) if quick else g, impl) for name, g in grids.items()}


def choose_impl(results: Path, bench: Path, sweeps=STUDY_SWEEPS + (PAPER_SWEEP,)) -> tuple[str, str]:
    """``(impl, why)``: DCFT's impl for the window's grids (see the module docstring)."""
    for sweep in sweeps:
        for f in sorted((results / sweep).glob("*-dcft-*.json")) if (results / sweep).is_dir() else ():
            try:
                impl = json.loads(f.read_text())["config"]["impl"]
            except (ValueError, KeyError, TypeError):
                continue
            return impl, f"the study's DCFT runs so far use impl={impl} ({sweep}/{f.name})"
    try:
        sps = json.loads(bench.read_text())["samples_per_s"]
        fast, dense = sps["dcft_fast"], sps["dcft_dense"]
    except (OSError, ValueError, KeyError, TypeError):
        return "fast", f"no benchmark of both forms in {bench.name}: the default, matrix-free"
    return ("dense" if dense >= fast else "fast"), f"{bench.name}: dense {dense:.0f}, fast {fast:.0f} samples/s"


def write_grids(folder: Path, impl: str, quick: bool) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, grid in study_grids(impl, quick).items():
        paths.append(atomic_write_json(folder / f"{name}.json", grid))
    return paths


def count_todo(grid_files: list[Path], results: Path, scale: str) -> int:
    """Runs of these grids (each file's stem is its sweep) with no finished result file under ``results``."""
    from .sweep import done_path, grid_runs

    return sum(done_path(results, f.stem, run) is None
               for f in grid_files for run in grid_runs(json.loads(f.read_text()), scale=scale))


# ----------------------------------------------------------------------------------------------- bundle
def _dir_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def travel_bytes(repo: Path) -> int:
    """What a device call sends besides carried paths: tracked files and untracked files git does not ignore."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                         capture_output=True, check=True).stdout
    return sum((repo / p).stat().st_size for p in out.decode().split("\0") if p and (repo / p).is_file())


def _planes(raw: bytes) -> bytes:
    """A safetensors file with its tensor bytes split into two planes (every first byte, then every second):
    a float16's sign-and-exponent bytes are alike, so the planes compress better than the interleaved bytes."""
    import numpy as np

    n = 8 + int.from_bytes(raw[:8], "little")  # the 8-byte length, then the JSON header
    body = np.frombuffer(raw, dtype=np.uint8, offset=n)
    if body.size % 2:
        raise ValueError("a float16 safetensors body has an even number of bytes")
    # (m, 2) bytes -> (2, m): plane 0 then plane 1
    return raw[:n] + body.reshape(-1, 2).T.tobytes()


def _unplanes(data: bytes) -> bytes:
    """``_planes`` undone: the safetensors file, byte for byte."""
    import numpy as np

    n = 8 + int.from_bytes(data[:8], "little")
    planes = np.frombuffer(data, dtype=np.uint8, offset=n)
    # (2, m) -> (m, 2): the bytes interleaved again
    return data[:n] + planes.reshape(2, -1).T.tobytes()


def _xz(src: Path, dst: Path, transform=None) -> None:
    data = src.read_bytes()
    dst.write_bytes(lzma.compress(transform(data) if transform else data, preset=6))


def bundle(folder: Path, data_root: Path, download: bool = True) -> dict[str, Any]:
    """Fill ``folder`` with the model, the data and the wheels (see the module docstring); return sizes."""
    import torch
    from safetensors.torch import load_file, save_file

    from .models import default_model_path

    if not all((data_root / t / "dev.tsv").is_file() for t in BUNDLE_TASKS):
        raise FileNotFoundError(f"{data_root}: expected the GLUE folders {', '.join(BUNDLE_TASKS)} with train.tsv "
                                "and dev.tsv; set DCFT_EDU_DATA to your offline GLUE folder")
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "model").mkdir(parents=True)
    src = Path(default_model_path())
    for name in MODEL_FILES:
        _xz(src / name, tmp / "model" / f"{name}.xz")
    weights = load_file(str(src / "model.safetensors"))
    half = tmp / "model.safetensors"
    save_file({k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
              str(half), metadata={"format": "pt"})
    _xz(half, tmp / "model" / "model.safetensors.planes.xz", _planes)
    half.unlink()
    for task in BUNDLE_TASKS:
        (tmp / "data" / task).mkdir(parents=True)
        _xz(data_root / task / "dev.tsv", tmp / "data" / task / "dev.tsv.xz")
        lines = (data_root / task / "train.tsv").read_bytes().splitlines(keepends=True)
        keep = lines[: SST2_TRAIN_ROWS + 1] if task == "SST-2" else lines  # header + rows
        (tmp / "data" / task / "train.tsv.xz").write_bytes(lzma.compress(b"".join(keep), preset=6))
    (tmp / "wheels").mkdir()
    if download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux2014_x86_64",
                        "-d", str(tmp / "wheels"), *WHEELS], check=True)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return {part: _dir_bytes(folder / part) for part in ("model", "data", "wheels")}


def unbundle(folder: Path, model_dir: Path, data_dir: Path) -> None:
    """The bundle's model and data, decompressed into ``model_dir`` and ``data_dir`` (each kept if already there)."""
    for part, dst in (("model", model_dir), ("data", data_dir)):
        if dst.is_dir():
            continue
        tmp = dst.with_name(dst.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for f in sorted((folder / part).rglob("*.xz")):
            out = tmp / f.relative_to(folder / part).with_suffix("")
            out.parent.mkdir(parents=True, exist_ok=True)
            data = lzma.decompress(f.read_bytes())
            if out.suffix == ".planes":
                out, data = out.with_suffix(""), _unplanes(data)
            out.write_bytes(data)
        tmp.rename(dst)


# ------------------------------------------------------------------------------------------------ probe
def is_fresh(path: Path, after: str) -> bool:
    """True if ``path`` is a JSON record whose ``timestamp`` is on or after ``after`` (an ISO date, UTC)."""
    try:
        stamp = datetime.fromisoformat(json.loads(path.read_text())["timestamp"])
    except (OSError, ValueError, KeyError, TypeError):
        return False
    cutoff = datetime.fromisoformat(after)
    return stamp >= (cutoff if cutoff.tzinfo else cutoff.replace(tzinfo=timezone.utc))


def probe(results: Path, since: float, sweeps=STUDY_SWEEPS, elapsed_s: Optional[float] = None,
          workers: Optional[int] = None, bench: Optional[Path] = None, bench_since: Optional[float] = None
          ) -> dict[str, Any]:
    """Throughput of this window's sweep: runs finished, per minute, and per-run time by method.

    Counts the result files of ``sweeps`` under ``results`` written at or after ``since`` (a ``time.time()``)
    that were trained (not copied from another sweep). ``DCFT ÷ LoRA r=1`` is the median over (task, seed)
    pairs of DCFT k = 8's mean wall time ÷ LoRA r = 1's; ``steady_runs_per_min`` is ``workers`` × 60 ÷ the
    mean wall time of the runs finished (what a queue of such runs would sustain). ``bench``: a folder of
    ``bench train`` files, of which those written since ``bench_since`` (default ``since``) are summarised
    as samples/s ÷ LoRA r = 8's.
    """
    from .analysis import method_label

    runs = []
    for sweep in sweeps:
        for f in sorted((results / sweep).glob("*.json")) if (results / sweep).is_dir() else ():
            if f.stat().st_mtime < since:
                continue
            try:
                r = json.loads(f.read_text())
            except ValueError:
                continue
            if "config" not in r or r.get("reused_from"):
                continue
            runs.append({"label": method_label({**r["config"], "method": r["method"]}), "task": r["task"],
                         "seed": r["config"]["seed"], "lr": r["config"]["lr"], "wall_time_s": r["wall_time_s"],
                         "status": r.get("status", "ok")})
    out: dict[str, Any] = {"runs_finished": len(runs), "sweeps": list(sweeps)}
    by_label: dict[str, list[float]] = {}
    for r in runs:
        by_label.setdefault(r["label"], []).append(r["wall_time_s"])
    out["wall_time_s_by_method"] = {k: {"n": len(v), "mean": statistics.mean(v), "min": min(v), "max": max(v)}
                                    for k, v in sorted(by_label.items())}
    pairs = []
    for key in {(r["task"], r["seed"], r["lr"]) for r in runs}:
        d = [r["wall_time_s"] for r in runs if (r["task"], r["seed"], r["lr"]) == key and r["label"] == "DCFT k=8"]
        lo = [r["wall_time_s"] for r in runs if (r["task"], r["seed"], r["lr"]) == key and r["label"] == "LoRA r=1"]
        if d and lo:
            pairs.append(statistics.mean(d) / statistics.mean(lo))
    out["dcft_over_lora_r1_per_run"] = {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs),
                                        "pairs": len(pairs)} if pairs else None
    if elapsed_s:
        out["elapsed_s"] = elapsed_s
        out["runs_per_min"] = 60 * len(runs) / elapsed_s
    if workers and runs:
        out["workers"] = workers
        out["steady_runs_per_min"] = workers * 60 / statistics.mean(r["wall_time_s"] for r in runs)
    if bench is not None:
        ratios = {}
        for f in sorted(bench.glob("bench_train_*.json")):
            try:
                rec = json.loads(f.read_text())
            except ValueError:
                continue
            sps = rec.get("samples_per_s", {})
            if "lora" in sps and f.stat().st_mtime >= (since if bench_since is None else bench_since):
                ratios[f.stem] = {m: v / sps["lora"] for m, v in sps.items()}
        out["bench_samples_per_s_vs_lora8"] = ratios
    return out


# -------------------------------------------------------------------------------------------------- CLI
def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.gpu_window", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bundle", help="model, data and wheels for the device call")
    p.add_argument("folder", type=Path)
    p.add_argument("--data", type=Path, default=os.environ.get("DCFT_EDU_DATA"),
                   help="the offline GLUE folder (default: $DCFT_EDU_DATA)")
    p.add_argument("--no-download", action="store_true", help="leave the wheels folder empty")
    p = sub.add_parser("unbundle", help="decompress the bundle's model and data")
    p.add_argument("folder", type=Path)
    p.add_argument("model_dir", type=Path)
    p.add_argument("data_dir", type=Path)
    p = sub.add_parser("grids", help="write the window's grids as JSON files")
    p.add_argument("folder", type=Path)
    p.add_argument("--impl", default="fast", help="DCFT's impl in the grids (fast, conv or dense; default: fast)")
    p.add_argument("--quick", action="store_true", help="one task, seed 0, one lr of each grid")
    p = sub.add_parser("choose-impl", help="DCFT's impl for the study's grids, and why")
    p.add_argument("results", type=Path)
    p.add_argument("bench", type=Path)
    p = sub.add_parser("todo", help="unfinished runs of grid files, one count per group")
    p.add_argument("results", type=Path)
    p.add_argument("groups", nargs="+", metavar="SCALE:FILE[,FILE…]")
    p = sub.add_parser("stale", help="print the benchmark files (of those given) not measured on or after a date")
    p.add_argument("files", type=Path, nargs="+")
    p.add_argument("--after", required=True)
    p = sub.add_parser("probe", help="throughput of this window's sweep")
    p.add_argument("results", type=Path)
    p.add_argument("--since", type=float, required=True)
    p.add_argument("--elapsed", type=float)
    p.add_argument("--workers", type=int)
    p.add_argument("--bench", type=Path)
    p.add_argument("--bench-since", type=float, help="bench files written since then (default: --since)")
    p.add_argument("--sweeps", nargs="+", default=list(STUDY_SWEEPS),
                   help=f"the study's sweeps to count (default: {' '.join(STUDY_SWEEPS)})")
    args = ap.parse_args(argv)

    if args.command == "bundle":
        if args.data is None:
            ap.error("bundle: give --data or set DCFT_EDU_DATA to your offline GLUE folder")
        sizes = bundle(args.folder, args.data, download=not args.no_download)
        repo = travel_bytes(REPO_ROOT)
        total = repo + sum(sizes.values())
        for part, n in sizes.items():
            print(f"{args.folder}/{part}: {n / 2**20:.1f} MiB")
        print(f"working tree that travels: {repo / 2**20:.1f} MiB; with the bundle: {total / 2**20:.1f} MiB "
              f"(limit {TRAVEL_LIMIT_MIB} MiB)")
        if total > TRAVEL_LIMIT_MIB * 2**20:
            print(f"TOO LARGE: {total / 2**20:.1f} MiB > {TRAVEL_LIMIT_MIB} MiB", file=sys.stderr)
            return 1
        atomic_write(args.folder / "git_commit", lambda tmp: Path(tmp).write_text(_git_commit() + "\n"))
    elif args.command == "unbundle":
        unbundle(args.folder, args.model_dir, args.data_dir)
    elif args.command == "grids":
        for path in write_grids(args.folder, args.impl, args.quick):
            print(path)
    elif args.command == "choose-impl":
        print(*choose_impl(args.results, args.bench))
    elif args.command == "todo":
        counts = []
        for group in args.groups:
            scale, _, files = group.partition(":")
            counts.append(count_todo([Path(f) for f in files.split(",")], args.results, scale))
        print(*counts)
    elif args.command == "stale":
        for f in args.files:
            if not is_fresh(f, args.after):
                print(f.stem)
    elif args.command == "probe":
        rec = probe(args.results, args.since, args.sweeps, args.elapsed, args.workers, args.bench, args.bench_since)
        print(json.dumps(rec, indent=1, sort_keys=True))
    return 0


def _git_commit() -> str:
    from .runinfo import git_commit

    return git_commit()


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
