"""The student's own runs (``dcft_edu.experiments.lab.run_lab``) drawn over a committed figure.

    fig = draw_kernel_ablation()                    # the committed runs, as always
    overlay_user_runs(fig.axes[0], yours, x="kernel_size")
    # categorical axes (bars per task): give each value its x position
    overlay_user_runs(ax, yours, x="task", positions={"stsb": 0, "mrpc": 1})

For notebooks 07, 10–13 in lab mode.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import matplotlib.pyplot as plt
import pandas as pd

#: how the student's runs look: a star no committed figure uses, black with a white rim
YOURS_STYLE = dict(marker="*", s=160, color="black", edgecolors="white", linewidths=0.8, zorder=10)


def overlay_user_runs(ax: plt.Axes, user: pd.DataFrame, x: str, y: str = "best_metric",
                      positions: Union[Mapping[Any, float], Callable[[Any], float], None] = None,
                      scale: float = 100.0, label: Optional[str] = "yours", clip: bool = False,
                      values: bool = False, colors: Optional[Sequence[Any]] = None, **style: Any):
    """Scatter one marker per run of ``user`` on ``ax`` (an existing figure's axes), labelled ``label``.

    ``x``: the column giving each run's x (numeric axes), mapped through ``positions`` (a dict or a
    function) on categorical axes. ``y``: the metric column, times ``scale`` (100: the papers' ×100,
    as the committed figures draw it). ``style`` overrides ``YOURS_STYLE``; ``colors``: one colour per
    run (e.g. its method's), with a black rim. If ``ax`` has a legend it is redrawn with the new entry.

    ``clip=False``: the y-limits widen to show every run (a lab run often sits below the committed ones).
    ``clip=True``: the y-limits stay (the committed points keep their scale); a run off them is drawn on
    the edge it passed, its value written beside it with an arrow ("↓ 67.1"). ``values=True`` writes
    every run's value beside it. Returns the ``PathCollection`` (every run, off-axis ones on the edge).
    """
    if user.empty:
        raise ValueError("overlay_user_runs: no runs to draw (user is empty); train some with lab.run_lab first")
    xs = user[x]
    if positions is not None:
        xs = xs.map(positions)
        if xs.isna().any():
            raise ValueError(f"overlay_user_runs: no position for {x} = {sorted(set(user[x][xs.isna()]))}; "
                             f"add them to positions")
    ys = scale * user[y]
    kw = {**YOURS_STYLE, **style}
    if colors is not None:
        kw.pop("color", None)
        kw.update(c=list(colors), edgecolors="black")
    lo, hi = ax.get_ylim()
    if not clip:
        points = ax.scatter(xs, ys, label=label, **kw)
        pad = 0.05 * (hi - lo)
        ax.set_ylim(min(lo, ys.min() - pad), max(hi, ys.max() + pad))
    else:
        # off-axis runs sit just inside the edge they passed; clip_on=False keeps the star whole
        edge = 0.02 * (hi - lo)
        drawn = ys.clip(lo + edge, hi - edge)
        points = ax.scatter(xs, drawn, label=label, clip_on=False, **kw)
        ax.set_ylim(lo, hi)
    if values or clip:
        _write_values(ax, xs, ys, *ax.get_ylim(), every=values)
    if ax.get_legend() is not None:
        ax.legend()
    return points


#: a pale box behind a written value, so an error bar under it does not cross it out
_HALO = dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8)


def _write_values(ax: plt.Axes, xs: pd.Series, ys: pd.Series, lo: float, hi: float, every: bool) -> None:
    """Each run's value beside its star ("85.1"), with an arrow for one off the y-limits ("↓ 67.1").

    Off-axis runs on the same edge alternate between two heights, so neighbours' labels do not collide.
    """
    off = 0
    for xv, yv in sorted(zip(xs, ys)):
        if lo <= yv <= hi:
            if every:
                ax.annotate(f"{yv:.1f}", (xv, yv), xytext=(7, 3), textcoords="offset points", fontsize=8,
                            color="0.1", zorder=11, bbox=_HALO)
            continue
        below = yv < lo
        dy = (10 + 10 * (off % 2)) * (1 if below else -1)  # above a star on the bottom edge, under one on the top
        off += 1
        ax.annotate(f"{'↓' if below else '↑'} {yv:.1f}", (xv, lo if below else hi), xytext=(-4, dy),
                    textcoords="offset points", ha="left", va="bottom" if below else "top", fontsize=8,
                    color="0.1", zorder=11, annotation_clip=False, bbox=_HALO)
