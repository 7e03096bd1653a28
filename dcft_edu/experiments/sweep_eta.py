"""What a sweep tells its user about time: an ETA beside its ``[k/N]`` progress, a closing summary, and the
``--dry-run`` estimate from the committed results' recorded wall times.

    [3/12] done stsb-lora-s0-….json (41 s, pearson=0.8712)  · ETA 6 min
    sweep: 11 trained, 1 failed, 4 skipped (already done), 0 left; wall 8 min 10 s

The ETA assumes the runs still queued take as long, on average, as the ones finished so far (wall time, so
parallel workers are counted as they ran). Used by: ``dcft_edu.experiments.sweep``.
"""
from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Optional, Union

from .presets import RunConfig


def duration(seconds: float) -> str:
    """``"35 s"``, ``"4 min 10 s"``, ``"2 h 05 min"``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def eta_text(done: int, total: int, started: float, now: Optional[float] = None) -> str:
    """`` · ETA 6 min 10 s`` after ``done`` of ``total`` runs since ``started`` (a ``time.time()``); empty before
    the first run finishes (nothing to extrapolate from) and after the last."""
    if done <= 0 or done >= total:
        return ""
    elapsed = (time.time() if now is None else now) - started
    # remaining ≈ (elapsed / done) × (total − done): the mean wall time per finished run, times the runs left
    return f"  · ETA {duration(elapsed / done * (total - done))}"


def summary_text(trained: int, failed: int, skipped: int, left: int, wall_s: float) -> str:
    """The sweep's closing line: runs trained now, failed, skipped (their result files were there), left
    unstarted (a deadline), and the wall time."""
    return (f"sweep: {trained} trained, {failed} failed, {skipped} skipped (already done), {left} left"
            f"{' for a rerun' if left else ''}; wall {duration(wall_s)}")


def recorded_wall_times(folders: Iterable[Union[str, Path]]) -> dict[tuple, list[float]]:
    """``{(method, task, scale, device_type): [wall_time_s, …]}`` of every result file under ``folders``."""
    times: dict[tuple, list[float]] = defaultdict(list)
    for folder in folders:
        for f in sorted(Path(folder).rglob("*.json")) if Path(folder).is_dir() else ():
            try:
                r = json.loads(f.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                continue
            if not isinstance(r, dict) or "config" not in r or not isinstance(r.get("wall_time_s"), (int, float)):
                continue
            c = r["config"]
            # legacy E2E configs have no "task": the record says it
            times[(c.get("method"), c.get("task") or r.get("task"), c.get("scale"), r.get("device_type", "?"))].append(
                r["wall_time_s"])
    return dict(times)


def dry_run_estimate(todo: list[RunConfig], folders: Iterable[Union[str, Path]], device_type: str,
                     workers: int = 1) -> str:
    """The ``--dry-run`` time estimate of the runs ``todo``, per device type that has records (this machine's,
    ``device_type`` "cuda" or "cpu", first): the sum over the runs of the median recorded wall time of the same
    method, task and preset in the result files under ``folders``, and how many runs that covers. Runs with no
    record on either device are counted as unknown."""
    if not todo:
        return "estimate: nothing to train"
    times = recorded_wall_times(folders)
    lines, covered = [], set()
    for dev in (device_type, "cpu" if device_type == "cuda" else "cuda"):
        known = [(i, statistics.median(times[k])) for i, r in enumerate(todo)
                 if (k := (r.method, r.task, r.scale, dev)) in times]
        covered.update(i for i, _ in known)
        if known:
            lines.append(f"  {dev}{' (like this machine)' if dev == device_type else ''}: "
                         f"{duration(sum(t for _, t in known))} for {len(known)} of the {len(todo)} runs")
    head = "estimate, the sum of recorded wall times (median per method, task and preset; committed results and --results)"
    if not lines:
        return f"{head}: unknown, no recorded run of these methods, tasks and preset"
    text = f"{head}:\n" + "\n".join(lines)
    if len(covered) < len(todo):
        text += f"\n  unknown: {len(todo) - len(covered)} runs (no recorded run of their method, task and preset)"
    return text + ("\n  a rough guide: recorded runs often shared their device (the committed GPU runs went ~14 at a "
                   "time) and yours differs" + (f"; {workers} workers take up to {workers}× less" if workers > 1 else ""))
