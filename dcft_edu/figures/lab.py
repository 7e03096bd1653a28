"""The student's own runs (``dcft_edu.experiments.lab.run_lab``) drawn over a committed figure.

    fig = draw_kernel_ablation()                    # the committed runs, as always
    overlay_user_runs(fig.axes[0], yours, x="kernel_size")
    # categorical axes (bars per task): give each value its x position
    overlay_user_runs(ax, yours, x="task", positions={"stsb": 0, "mrpc": 1})

For notebooks 07, 10–13 in lab mode.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Union

import matplotlib.pyplot as plt
import pandas as pd

#: how the student's runs look: a star no committed figure uses, black with a white rim
YOURS_STYLE = dict(marker="*", s=160, color="black", edgecolors="white", linewidths=0.8, zorder=10)


def overlay_user_runs(ax: plt.Axes, user: pd.DataFrame, x: str, y: str = "best_metric",
                      positions: Union[Mapping[Any, float], Callable[[Any], float], None] = None,
                      scale: float = 100.0, label: Optional[str] = "yours", **style: Any):
    """Scatter one marker per run of ``user`` on ``ax`` (an existing figure's axes), labelled ``label``.

    ``x``: the column giving each run's x (numeric axes), mapped through ``positions`` (a dict or a
    function) on categorical axes. ``y``: the metric column, times ``scale`` (100: the papers' ×100,
    as the committed figures draw it). ``style`` overrides ``YOURS_STYLE``. If ``ax`` has a legend it
    is redrawn with the new entry. The y-limits widen to show every run (a lab run often sits below the
    committed ones). Returns the ``PathCollection``.
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
    points = ax.scatter(xs, ys, label=label, **{**YOURS_STYLE, **style})
    lo, hi = ax.get_ylim()
    pad = 0.05 * (hi - lo)
    ax.set_ylim(min(lo, ys.min() - pad), max(hi, ys.max() + pad))
    if ax.get_legend() is not None:
        ax.legend()
    return points
