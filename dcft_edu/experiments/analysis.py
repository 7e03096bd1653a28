"""From result files to tables: mean ± std over seeds, the papers' numbers beside ours.

``load_results`` (``dcft_edu.experiments.sweep``) gives one row per run; here those rows are
grouped by everything that defines a configuration except the seed, and each
group becomes one row with the mean, standard deviation and number of seeds of
the metric (the papers report a single seed; we report ≥ 3). Metrics are shown
×100 as in the papers' tables.

    python -m dcft_edu.experiments.analysis table figures/data/main          # a quick look from the shell
    python -m dcft_edu.experiments.analysis best-lambda figures/data/delta_lambda

Used in: notebook 09; used by ``dcft_edu.figures`` and ``tests/test_committed_*.py``.
"""
from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import numpy as np
import pandas as pd

from .runinfo import committed_results_dir
from .store import load_results


def finished_runs(df: pd.DataFrame, source: Union[str, Path] = "these results") -> pd.DataFrame:
    """The runs whose ``status`` is ``"ok"``: diverged runs (a non-finite loss or gradient, no metric) are dropped,
    and how many is logged as a warning. (A run that trained but collapsed to the constant predictor is
    still "ok": ``figures.delta_lora.collapse_check`` finds those.)

    Used by: ``load_sweep`` and this module's command line.
    """
    if df.empty:  # no result files: no columns either
        return df
    ok = df["status"] == "ok"
    if not ok.all():
        logging.getLogger(__name__).warning(
            "%s: left out %d diverged run(s) of %d (%s); rerun them with a lower lr", source, (~ok).sum(), len(df),
            ", ".join(Path(f).name for f in df.loc[~ok, "file"]))
    return df[ok].reset_index(drop=True)


@functools.lru_cache(maxsize=None)
def _read_sweep(folder: Path, mtime_ns: int) -> pd.DataFrame:
    return finished_runs(load_results(folder), folder)


def load_sweep(name: str) -> pd.DataFrame:
    """The committed results of one sweep (``committed_results_dir() / name``) as a DataFrame, one row per run.
    ``name`` may name a sub-folder: ``"cpu/stride"`` is sweep ``stride`` trained on a CPU (``CPU_RESULTS``).

    Diverged runs are left out (``finished_runs``). Read once per process and returned as a fresh copy; a new
    result file (which changes the folder's modification time) makes the next call read the folder again.
    """
    folder = committed_results_dir() / name
    if not folder.is_dir():
        raise FileNotFoundError(f"no committed results at {folder}: restore them (`git checkout -- figures/data`) or "
                                f"regenerate them on a GPU (`python -m dcft_edu.experiments.sweep {folder.name} "
                                f"--scale gpu --results {folder.parent}`)")
    return _read_sweep(folder, folder.stat().st_mtime_ns).copy()


def short_device(device: str) -> str:
    """"H100", "H200", "cpu" … from a result's ``device`` string (timings compare only within one device).

    Used by: the figures and ``tests/test_committed_*.py``.
    """
    for gpu in ("H100", "H200", "A100", "L4", "T4"):
        if gpu in str(device):
            return gpu
    return str(device).split()[0]


def short_devices(devices: Iterable[str], sep: str = ", ") -> str:
    """The distinct ``short_device`` names of ``devices``, sorted and joined: "H100, H200"."""
    return sep.join(sorted({short_device(d) for d in devices}))

TASK_ORDER = ["cola", "sst2", "mrpc", "stsb", "rte"]
TASK_LABELS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "stsb": "STS-B", "rte": "RTE", "qnli": "QNLI"}


def method_label(row: Union[pd.Series, dict]) -> str:
    """A readable name for a run's method and its defining settings ("LoRA r=8", "DCFT k=8", …)."""
    m = row["method"]
    if m == "full":
        return "full FT"
    if m == "head":
        return "head only"
    if m == "lora":
        base = f"LoRA r={int(row['r'])}"
        return base + (f" + scale jump λ={row['update_ratio']:g}" if row.get("lora_scale_jump") else "")
    if m == "dcft":
        k = int(row["kernel_size"])
        s = row.get("stride")
        s = k if s is None or (isinstance(s, float) and np.isnan(s)) else int(s)
        return f"DCFT k={k}" + ("" if s == k else f" s={s}")
    if m == "delta_lora":
        return f"Delta-LoRA r={int(row['r'])} λ={row['update_ratio']:g}"
    if m == "lokr":
        return f"LoKr k={int(row['kernel_size'])}"
    return m


def _hashable(v):
    return tuple(v) if isinstance(v, list) else v


def summarize(df: pd.DataFrame, by: Sequence[str] = ("task", "label"), metric: str = "best_metric",
              extra: Sequence[str] = ("adapter_params", "trainable_params", "train_time_s", "samples_per_s",
                                      "peak_memory_mb")) -> pd.DataFrame:
    """One row per group ``by`` (sorted; list-valued keys such as ``target_modules`` become tuples):

    - ``mean``, ``std`` (ddof 1; NaN for one seed) and ``n`` of ``metric`` ×100, and a printable ``cell``
      ("71.2 ± 1.3 (n=3)");
    - ``seeds``, the seeds present ("0,1,2"), and ``device``, their ``short_devices`` ("H100+H200");
    - each ``extra`` column present: a count column (integer: ``adapter_params`` …) as its one value per
      group, −1 where the group mixes counts; any other as its mean.

    A ``label`` column (``method_label``) is added when ``by`` asks for one and ``df`` has none. Grouped by
    ``["label", "seed"]``, ``mean`` is each seed's average over the tasks it ran (``n`` of them).
    """
    df = df.copy()
    if "label" in by and "label" not in df:
        df["label"] = df.apply(method_label, axis=1)
    for c in by:
        df[c] = df[c].map(_hashable)
    g = df.groupby(list(by), dropna=False)
    out = g[metric].agg(mean=lambda x: 100 * x.mean(), std=lambda x: 100 * x.std(ddof=1), n="count")
    if "seed" in df:
        out["seeds"] = g["seed"].agg(lambda x: ",".join(map(str, sorted(int(s) for s in x))))
    if "device" in df:
        out["device"] = g["device"].agg(lambda x: short_devices(x, sep="+"))
    for c in extra:
        if c in df and pd.api.types.is_integer_dtype(df[c]):
            out[c] = g[c].agg(lambda x: int(x.iloc[0]) if x.nunique() == 1 else -1)
        elif c in df:
            out[c] = g[c].mean()
    out = out.reset_index()
    out["cell"] = [cell(m, s, n) for m, s, n in zip(out["mean"], out["std"], out["n"])]
    return out


#: Sub-folder of the results folder for runs of the ``gpu`` preset trained on a CPU, one folder per sweep
#: (``figures/data/cpu/stride/`` …). They are kept apart from the GPU runs because the device alone moves a
#: run (``device_comparison``), and so that a GPU sweep still trains those configs.
CPU_RESULTS = "cpu"


def device_comparison(gpu: pd.DataFrame, cpu: pd.DataFrame, by: Sequence[str],
                      metric: str = "best_metric") -> pd.DataFrame:
    """The same configs on two devices: per group ``by``, ``GPU`` and ``CPU`` cells ("9.0 ± 0.5 (n=3)") and,
    over the seeds that ran on both, the mean same-seed difference ``CPU − GPU`` (×100) and how many
    seeds it averages (``paired n``; NaN/0 where no seed ran on both).

    Used by: ``tests/test_committed_11.py`` (REPORT.md).
    """
    by = list(by)
    g = summarize(gpu, by, metric).set_index(by)
    c = summarize(cpu, by, metric).set_index(by)
    out = pd.DataFrame({"GPU": g["cell"], "GPU seeds": g["seeds"], "CPU": c["cell"], "CPU seeds": c["seeds"]})
    # same config and seed on both devices: (rows of gpu) ⋈ (rows of cpu) on by + seed
    both = gpu[by + ["seed", metric]].merge(cpu[by + ["seed", metric]], on=by + ["seed"], suffixes=(" gpu", " cpu"))
    diff = (100 * (both[f"{metric} cpu"] - both[f"{metric} gpu"])).groupby([both[b] for b in by])
    out["CPU − GPU (same seed)"] = diff.mean()
    out["paired n"] = diff.count()
    out["paired n"] = out["paired n"].fillna(0).astype(int)
    out[["GPU", "CPU", "GPU seeds", "CPU seeds"]] = out[["GPU", "CPU", "GPU seeds", "CPU seeds"]].fillna("—")
    return out


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else str(value)


def paired_differences(df: pd.DataFrame, by: str, reference: Any, metric: str = "best_metric",
                       within: Sequence[str] = ()) -> pd.DataFrame:
    """Every setting of column ``by`` against the ``reference`` setting *of the same seed on the same device*.

    One row per setting ≠ ``reference``: the runs' seeds, devices and metrics, their differences metric − reference
    (×100, in seed order), the mean difference, how many are > 0, and a one-sample t-test of the differences
    (NaN below two pairs). A run whose seed has no reference run on its device is left out. Pairing within
    seed and device is what lets runs from two devices (``CPU_RESULTS``) share one comparison. ``within``
    (e.g. ``["task"]``) pairs inside each group of those columns only, which lead the returned index.

    Used by: ``tests/test_committed_10.py`` to ``_14.py`` (REPORT.md).
    """
    from scipy import stats

    if within:  # one table per group, stacked under the group's key
        return pd.concat({key if len(within) > 1 else key[0]: paired_differences(g, by, reference, metric)
                          for key, g in df.groupby(list(within))}, names=list(within))

    d = df.assign(dev=df["device"].map(short_device))
    ref = d[d[by] == reference].set_index(["seed", "dev"])[metric]
    d = d[d[by] != reference].copy()
    d["diff"] = 100 * (d[metric].to_numpy() - ref.reindex(list(zip(d["seed"], d["dev"]))).to_numpy())
    columns = [by, "runs (seed device)", "metric ×100", f"minus {by}={_fmt(reference)}", "mean", "pairs > 0",
               "paired t-test p"]
    rows = []
    for value, g in d.dropna(subset=["diff"]).sort_values("seed").groupby(by):
        x = g["diff"]
        rows.append([value, ", ".join(f"{sd} {dv}" for sd, dv in zip(g["seed"], g["dev"])),
                     ", ".join(f"{100 * v:.1f}" for v in g[metric]), ", ".join(f"{v:+.1f}" for v in x), x.mean(),
                     f"{int((x > 0).sum())}/{len(x)}", stats.ttest_1samp(x, 0.0).pvalue if len(x) >= 2 else np.nan])
    return pd.DataFrame(rows, columns=columns).set_index(by)  # empty (same columns) when nothing pairs


def holm(pvalues: Union[Sequence[float], pd.Series]) -> Union[np.ndarray, pd.Series]:
    """Holm–Bonferroni adjusted p-values, in the input order (NaN stays NaN and does not count in m).

    One claim's tests (e.g. one per task) are one family; a Series comes back as a Series with its index.

    Sort the m p-values ascending: p̃₍ᵢ₎ = max_{j ≤ i} min(1, (m − j + 1) · p₍ⱼ₎); reject where p̃ < α.
    Controls the family-wise error rate at α under any dependence (Holm 1979).

    Used by: ``dcft_question``, ``tests/test_committed_*.py`` and ``REPORT.md``.
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    order = ok[np.argsort(p[ok], kind="stable")]
    m = len(order)
    out[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return pd.Series(out, index=pvalues.index) if isinstance(pvalues, pd.Series) else out


def holdout_tuned(df: pd.DataFrame) -> pd.DataFrame:
    """Tuned against tuned: per task and method (``method_label``), the runs at the ``lr`` whose held-out score
    (``select_on="train_holdout"``: the best epoch's ``holdout_<metric>``, averaged over seeds) is highest.

    The dev set plays no part in the choice; the returned rows' ``selected_metric`` (dev score of the epoch
    best on the held-out rows) is what is reported. Adds ``holdout_score`` and ``lr_factor`` (lr ÷ the task
    recipe's lr).

    Used by: ``dcft_question``.
    """
    from .presets import TASK_RECIPES

    d = df[df["select_on"] == "train_holdout"].copy()
    d["label"] = d.apply(method_label, axis=1)
    d["holdout_score"] = [s[f"holdout_{m}"] for s, m in zip(d["selected"], d["main_metric"])]
    d["lr_factor"] = d["lr"] / d["task"].map(lambda t: TASK_RECIPES[t].lr)
    score = d.groupby(["task", "label", "lr"])["holdout_score"].mean()
    best = score.groupby(level=["task", "label"]).idxmax()  # (task, label, lr) with the best held-out mean
    return d[[(t, l, lr) in set(best) for t, l, lr in zip(d["task"], d["label"], d["lr"])]].reset_index(drop=True)


def _pairs(a: pd.DataFrame, b: pd.DataFrame, metric: str, times: float = 100) -> pd.DataFrame:
    """Same task, seed and device: one row per pair with ``diff`` = times · (a − b) of ``metric``."""
    cols = ["task", "seed", "dev", metric]
    m = a.assign(dev=a["device"].map(short_device))[cols].merge(
        b.assign(dev=b["device"].map(short_device))[cols], on=["task", "seed", "dev"], suffixes=("_a", "_b"))
    return m.assign(diff=times * (m[f"{metric}_a"] - m[f"{metric}_b"]))[["task", "seed", "dev", "diff"]]


def _gap(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """DCFT k = 8 minus LoRA r = 1 (×100), same task, seed and device, as a frame ``_pairs`` can pair again."""
    lab = df.apply(method_label, axis=1)
    g = _pairs(df[lab == "DCFT k=8"], df[lab == "LoRA r=1"], metric)
    return g.assign(device=g["dev"]).rename(columns={"diff": "gap"})


def dcft_question(ref: Optional[pd.DataFrame], paper: Optional[pd.DataFrame], lr: Optional[pd.DataFrame],
                  init: Optional[pd.DataFrame], metric: str = "best_metric", alpha: float = 0.05) -> pd.DataFrame:
    """The pre-registered decision rule of ``docs/dcft_question_protocol.md`` applied to the study's runs.

    ``ref``, ``paper``, ``lr``, ``init``: ``finished_runs`` of the sweeps ``dcft_ref`` (gpu preset),
    ``dcft_paper`` (paper preset), ``dcft_lr`` and ``dcft_init``. One row per comparison of the family: the
    paired differences (×100, same task, seed and device) pooled over tasks, their ``mean``, ``n``, a two-sided
    one-sample t-test ``p``, its Holm-adjusted ``p_holm`` over the family, ``same sign`` (share of pairs with
    the mean's sign), ``tasks agree`` (every task's mean has that sign) and the ``verdict``: "> 0" / "< 0" when
    p_holm < ``alpha``, ≥ 80 % of pairs share the sign and every task agrees, else "inconclusive". Beside the
    t-test: the exact sign-flip p (``sign_flip_p``) and its Holm adjustment, and ``holds under``: "both tests"
    or "t-test only" for a clear verdict (with 3 pairs the sign-flip p is ≥ 0.25, so every verdict there is the
    t-test's alone). (b) scores ``selected_metric`` (the held-out-selected epoch) whatever ``metric`` says; with
    LoKr runs (method ``lokr``) in ``lr``, (b) adds LoKr − LoRA r=1 and DCFT − LoKr, both tuned.

    A sweep not run yet is passed as None: the comparisons that need it leave the family, and Holm corrects
    over the comparisons that remain (e.g. the CPU partial study, (b) alone: two comparisons).
    """
    from scipy import stats

    from .presets import TASK_RECIPES

    def labelled(df, name):
        return df[df.apply(method_label, axis=1) == name]

    def init_cell(init_kind, gamma_zero):
        d = init[(init["method"] == "dcft") & (init["dcft_init"] == init_kind)]
        return d[(d["orth_gamma"] == 0) == gamma_zero]

    sel = "selected_metric"
    family = {}
    if paper is not None:
        g_paper = _gap(paper, metric)
        family["a: DCFT − LoRA r=1, paper preset"] = g_paper.rename(columns={"gap": "diff"})
        if ref is not None:
            family["a: gap change, paper − gpu preset (budget)"] = _pairs(g_paper, _gap(ref, metric), "gap", times=1)
        family["a: LoRA r=8 − r=1, paper preset (capacity)"] = _pairs(labelled(paper, "LoRA r=8"),
                                                                      labelled(paper, "LoRA r=1"), metric)
    if lr is not None:
        tuned = holdout_tuned(lr)
        recipe = lr[(lr["select_on"] == "train_holdout")
                    & np.isclose(lr["lr"], lr["task"].map(lambda t: TASK_RECIPES[t].lr))]
        g_tuned, g_recipe = _gap(tuned, sel), _gap(recipe, sel)
        family["b: DCFT − LoRA r=1, both lr tuned on held-out train"] = g_tuned.rename(columns={"gap": "diff"})
        family["b: gap change, tuned − recipe lr"] = _pairs(g_tuned, g_recipe, "gap", times=1)
        if (tuned["method"] == "lokr").any():  # PEFT's LoKr, the third arm (amendment 6): same structure, own init
            lokr = labelled(tuned, "LoKr k=8")
            family["b: LoKr − LoRA r=1, both tuned"] = _pairs(lokr, labelled(tuned, "LoRA r=1"), sel)
            family["b: DCFT − LoKr, both tuned"] = _pairs(labelled(tuned, "DCFT k=8"), lokr, sel)
    if init is not None:
        family["c: B = 0 init − paper init (recipe γ)"] = _pairs(init_cell("zero", False), init_cell("paper", False),
                                                                 metric)
        family["c: γ = 0 − recipe γ (paper init)"] = _pairs(init_cell("paper", True), init_cell("paper", False), metric)
        family["c: B = 0 init and γ = 0 − paper init and γ"] = _pairs(init_cell("zero", True),
                                                                     init_cell("paper", False), metric)
    if not family:
        raise ValueError("dcft_question: every sweep is None; pass the finished runs of at least one of "
                         "dcft_ref + dcft_paper, dcft_lr, dcft_init")
    rows = []
    for name, d in family.items():
        x = d["diff"].to_numpy()
        mean = x.mean() if len(x) else np.nan
        sign = np.sign(mean)
        rows.append({"comparison": name, "n": len(x), "tasks": ",".join(sorted(d["task"].unique())), "mean": mean,
                     "p": stats.ttest_1samp(x, 0.0).pvalue if len(x) >= 2 else np.nan,
                     "p_signflip": sign_flip_p(x),
                     "same sign": float(np.mean(np.sign(x) == sign)) if len(x) else np.nan,
                     "tasks agree": bool(len(x)) and bool((np.sign(d.groupby("task")["diff"].mean()) == sign).all())})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p"])
    out["p_signflip_holm"] = holm(out["p_signflip"])
    clear = (out["p_holm"] < alpha) & (out["same sign"] >= 0.8) & out["tasks agree"]
    out["verdict"] = np.where(clear, np.where(out["mean"] > 0, "> 0", "< 0"), "inconclusive")
    # a verdict the exact sign-flip test does not reach (Holm-adjusted too) is reported as the t-test's alone
    out["holds under"] = np.where(~clear, "", np.where(out["p_signflip_holm"] < alpha, "both tests", "t-test only"))
    return out.set_index("comparison")


def sign_flip_p(x: Union[Sequence[float], np.ndarray]) -> float:
    """The exact two-sided sign-flip (permutation) p-value of paired differences ``x`` against a mean of 0.

    Under the null each difference is as likely to have either sign, so the 2ⁿ sign patterns of x are equally
    likely; p = the share of them whose mean is at least as extreme as the observed one (scipy's
    ``permutation_test`` with ``permutation_type="samples"``, every pattern enumerated). It assumes no normality,
    unlike the t-test, but it cannot go below 2/2ⁿ: 0.25 with 3 pairs, 0.031 with 6. NaN below 2 pairs.

    Used by: ``dcft_question``.
    """
    from scipy import stats

    x = np.asarray(x, dtype=float)
    if len(x) < 2:
        return np.nan
    res = stats.permutation_test((x,), np.mean, permutation_type="samples", alternative="two-sided",
                                 n_resamples=np.inf)
    return float(res.pvalue)


def two_look_false_positive_rate(n_sim: int = 200_000, pairs: int = 3, alpha: float = 0.05,
                                 seed: int = 0) -> dict[str, float]:
    """How often (b)'s rule declares the gap change B2 ≠ 0 when nothing is there, with one look or two.

    The procedure of amendments 2 and 5 (a forking path, named in REPORT §15): look at task 1's ``pairs`` seed
    pairs (B1 and B2, Holm over the 2, ≥ 80 % of pairs with the mean's sign); if B2 is inconclusive, add task 2's
    ``pairs`` and decide on the pooled pairs (both tasks' means with that sign too). Against it, one planned
    look at the pooled pairs. Under the null each pair's tuned and recipe gaps are independent N(0, 1) draws,
    B1 = tuned gap, B2 = tuned − recipe gap (so B1 and B2 are correlated, as in the study). Returns the share
    of simulated studies whose B2 verdict is "> 0" or "< 0": ``one_look``, ``two_looks``, ``first_look`` (the
    part found at the first look) and ``n_sim``.
    """
    from scipy import stats

    rng = np.random.default_rng(seed)
    tuned, recipe = rng.standard_normal((2, n_sim, 2 * pairs))  # columns: task 1's pairs, then task 2's
    b1, b2 = tuned, tuned - recipe

    def clear(x1: np.ndarray, x2: np.ndarray, tasks: int) -> np.ndarray:
        p = np.stack([stats.ttest_1samp(x, 0.0, axis=1).pvalue for x in (x1, x2)], axis=1)
        # Holm over the 2: B2's adjusted p is max(2·min(p), p_B2) when B2 is the larger, else 2·p_B2
        p_holm = np.where(p[:, 1] <= p[:, 0], np.minimum(1, 2 * p[:, 1]), np.maximum(np.minimum(1, 2 * p[:, 0]), p[:, 1]))
        sign = np.sign(x2.mean(axis=1, keepdims=True))
        ok = (p_holm < alpha) & ((np.sign(x2) == sign).mean(axis=1) >= 0.8)
        per_task = np.sign(x2.reshape(len(x2), tasks, -1).mean(axis=2))
        return ok & (per_task == sign).all(axis=1)

    first = clear(b1[:, :pairs], b2[:, :pairs], 1)
    pooled = clear(b1, b2, 2)
    return {"one_look": float(pooled.mean()), "two_looks": float((first | pooled).mean()),
            "first_look": float(first.mean()), "n_sim": n_sim}


def mean_std(mean: float, std: float, n: int) -> str:
    """'71.2 ± 1.3' (or '71.2' for a single seed)."""
    return cell(mean, std, n, missing="—", show_n=False)


def cell(mean: float, std: float, n: int, digits: int = 1, missing: str = "missing", show_n: bool = True) -> str:
    """'71.2 ± 1.3 (n=3)'; one seed gives '49.8 (n=1)' (no ±); no run gives ``missing``.

    Used by: ``summarize`` and the figure modules' tables.
    """
    if n == 0 or mean is None or np.isnan(mean):
        return missing
    seeds = f" (n={n})" if show_n else ""
    if n < 2 or np.isnan(std):
        return f"{mean:.{digits}f}{seeds}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}{seeds}"


def wide_table(summary: pd.DataFrame, rows: str = "label", cols: str = "task",
               order: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Pivot a ``summarize`` result into the papers' layout: one row per method, one column per task."""
    s = summary.copy()
    s["cell"] = [mean_std(m, sd, n) for m, sd, n in zip(s["mean"], s["std"], s["n"])]
    t = s.pivot(index=rows, columns=cols, values="cell")
    tasks = [c for c in (order or TASK_ORDER) if c in t.columns] + [c for c in t.columns if c not in (order or TASK_ORDER)]
    t = t[tasks]
    t.columns = [TASK_LABELS.get(c, c) for c in t.columns]
    avg = s.pivot(index=rows, columns=cols, values="mean")[tasks].mean(axis=1)
    t["Avg."] = [f"{v:.1f}" for v in avg.reindex(t.index)]
    return t


def best_lambda(folder: Union[str, Path], positive: bool = True) -> float:
    """The λ of Delta-LoRA with the highest metric averaged over tasks (each task's mean over seeds).

    ``positive=True`` leaves λ = 0 out: it is plain LoRA, where K means nothing, and this λ picks
    the K ablation's setting. Used by ``scripts/gpu_experiments.sh`` (the K ablation of
    ``14_delta_lora_k_and_twin``).
    """
    return best_lambda_of(finished_runs(load_results(folder), folder), folder, positive)


def best_lambda_of(df: pd.DataFrame, source: Union[str, Path] = "these runs", positive: bool = True) -> float:
    """``best_lambda`` of runs already loaded (a delta_lambda sweep's ``load_results``/``load_sweep``).
    """
    if not df.empty and positive:
        df = df[df["update_ratio"] > 0]
    if df.empty:
        raise ValueError(f"no results in {source}: run the delta_lambda sweep first")
    per_task = df.groupby(["update_ratio", "task"])["best_metric"].mean().unstack("task")
    per_task = per_task.dropna(axis=1)  # tasks that every λ has
    return float(per_task.mean(axis=1).idxmax())


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.analysis", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("table", help="mean ± std over seeds, one row per method, one column per task")
    t.add_argument("folder")
    b = sub.add_parser("best-lambda", help="print the best Delta-LoRA λ of a delta_lambda sweep")
    b.add_argument("folder")
    args = ap.parse_args(argv)
    if args.command == "best-lambda":
        print(f"{best_lambda(args.folder):g}")
        return 0
    df = finished_runs(load_results(args.folder), args.folder)
    if df.empty:
        ap.error(f"no result files under {args.folder}")
    print(wide_table(summarize(df)).to_string())
    return 0


if __name__ == "__main__":
    from .cli import run_cli

    sys.exit(run_cli(main))
