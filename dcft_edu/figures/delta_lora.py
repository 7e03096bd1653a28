"""Experiment figures of 13_delta_lora_lambda and 14_delta_lora_k_and_twin, drawn from the committed results.

Each figure is a zero-argument function registered in ``dcft_edu.figures.FIGURES``;
``python -m dcft_edu.figures`` redraws them from ``figures/data/`` without training:

- ``delta_lora_lambda_k``: Delta-LoRA's best dev metric vs the update ratio λ (at the
  task's default start step K) and vs K as a fraction of all optimizer steps (at λ = 0.5),
  per task, with LoRA r = 8 as the reference (Delta-LoRA Tables 7 and 8).
- ``delta_lora_twin``: per-epoch dev curves of Delta-LoRA(λ), its "twin" (LoRA whose scale
  jumps from s to (1+λ)·s at step K, docs/method_notes.md §4) and LoRA, for the seeds that exist.

The sweeps (``dcft_edu.experiments.recipes.GRIDS``): ``delta_lambda`` (λ ∈ {0, 0.5, 1, 2, 3, 5}; its λ = 0.5
runs are ``main``'s Delta-LoRA, reused), ``delta_k`` (K ∈ {0, 10, 25, 50 %} of all optimizer
steps), ``scale_jump`` (the twin, λ ∈ {0.5, 2}); the reference is ``main``'s LoRA with
Delta-LoRA's r, α and target modules and no dropout. Above the figures: the helpers the
notebook prints its tables with (seed coverage, "mean ± std (n=…)" cells, the twin pairs),
and the two checks it runs on trained models (``delta_lora_identity_gap``,
``effective_change_gap``).

Taught in: ``13_delta_lora_lambda``, ``14_delta_lora_k_and_twin``.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from torch import nn

from ..experiments.analysis import (TASK_LABELS, TASK_ORDER, best_lambda_of, load_sweep, short_device, short_devices,
                                    summarize)
from .plotting import FEW_SEEDS_COLOR, backbone
from .registry import register
from ..experiments.presets import METHOD_DEFAULTS
from ..experiments.recipes import ABLATION_TASKS, GRIDS

#: the four GLUE tasks of the ablations, in the tables' order
TASKS = [t for t in TASK_ORDER if t in ABLATION_TASKS]
#: what each grid asks for (read from the grids, so tables and grids cannot drift apart)
LAMBDAS = tuple(float(x) for x in GRIDS["delta_lambda"]["update_ratio"])
K_FRACTIONS = tuple(float(x) for x in GRIDS["delta_k"]["start_frac"])
TWIN_LAMBDAS = tuple(float(x) for x in GRIDS["scale_jump"]["update_ratio"])
PLANNED_SEEDS = tuple(GRIDS["delta_lambda"]["seed"])
#: the y-axis names of the tasks' main metrics (×100, as in the papers' tables)
METRIC_AXIS = {"matthews_correlation": "Matthews corr. ×100", "accuracy": "accuracy (%)",
               "pearson": "Pearson r ×100"}
#: the figures' y-axes span the LoRA reference ± this many points; runs below are drawn as ▼ at the edge
Y_SPAN = 15.0


# ------------------------------------------------------------------ the paper's numbers (NOT ours)
#: Delta-LoRA paper (Zi et al., 2023), Table 1: E2E Challenge test set, GPT-2 medium (LoRA "repr." is their rerun of
#: LoRA with their settings; Delta-LoRA r 4, α 32, λ 2, K 500), one run per row. Copied from its text.
PAPER_E2E_TABLE1 = pd.DataFrame(
    [("Full Fine-Tuning", "354.92M", 69.58, 8.75, 46.34, 71.66, 2.47),
     ("LoRA (repr.)", "0.375M", 69.60, 8.78, 45.61, 71.12, 2.45),
     ("Delta-LoRA", "0.375M", 70.84, 8.91, 46.47, 72.24, 2.53)],
    columns=["method", "trainable", "BLEU", "NIST", "METEOR", "ROUGE-L", "CIDEr"]).set_index("method")
#: Delta-LoRA paper (Zi et al., 2023), Appendix A.2, Table 7: the update ratio λ on the E2E Challenge with
#: GPT-2 medium (r 4, α 32, K 500, lr 2e-4, batch 8, 5 epochs), one run per row. Copied from its text.
PAPER_TABLE7 = pd.DataFrame(
    [(0, 68.94, 8.73, 45.27, 70.81, 2.41), (1, 69.77, 8.81, 45.99, 71.58, 2.46), (2, 70.84, 8.91, 46.47, 72.24, 2.53),
     (3, 70.14, 8.84, 46.39, 71.45, 2.45), (4, 70.03, 8.83, 46.21, 71.56, 2.47), (5, 70.13, 8.85, 46.35, 71.72, 2.48)],
    columns=["λ", "BLEU", "NIST", "METEOR", "ROUGE-L", "CIDEr"]).set_index("λ")
#: Delta-LoRA paper, Appendix A.2, Table 8: the start step K (optimizer steps) on E2E, GPT-2 medium, λ = 2.
PAPER_TABLE8 = pd.DataFrame(
    [(0, 69.10, 8.75, 45.54, 71.31, 2.41), (100, 69.97, 8.84, 46.07, 71.40, 2.46),
     (200, 69.72, 8.83, 45.82, 71.41, 2.43), (300, 69.73, 8.86, 45.98, 71.09, 2.46),
     (400, 70.18, 8.89, 46.30, 71.66, 2.49), (500, 70.84, 8.91, 46.47, 72.24, 2.53),
     (600, 70.38, 8.86, 46.38, 71.70, 2.47), (700, 70.61, 8.89, 46.43, 72.13, 2.51),
     (800, 70.70, 8.89, 46.30, 71.97, 2.51), (900, 71.00, 8.92, 46.47, 72.04, 2.52),
     (1000, 70.87, 8.89, 46.31, 72.06, 2.50)],
    columns=["K", "BLEU", "NIST", "METEOR", "ROUGE-L", "CIDEr"]).set_index("K")
#: the paper's E2E recipe (its Table 9), to express its K as a fraction of its optimizer steps
PAPER_E2E_BATCH, PAPER_E2E_EPOCHS = 8, 5


# ------------------------------------------------------------------ loading
def sweep_results(name: str) -> pd.DataFrame:
    """The committed results of one sweep (read once per process; a copy each call).

    Taught in: ``13_delta_lora_lambda``, ``14_delta_lora_k_and_twin``.
    """
    return load_sweep(name)


def lora_reference(main: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """The LoRA runs that Delta-LoRA is compared with: sweep ``main``'s LoRA with Delta-LoRA's defaults.

    Same r, lora_alpha and target_modules as ``METHOD_DEFAULTS["delta_lora"]``, lora_dropout 0 and no
    scale jump, so that Delta-LoRA with λ = 0 would be the very same method.

    Taught in: ``13_delta_lora_lambda``.
    """
    main = sweep_results("main") if main is None else main
    d = METHOD_DEFAULTS["delta_lora"]
    jump = main["lora_scale_jump"].fillna(False).astype(bool) if "lora_scale_jump" in main else False
    keep = ((main["method"] == "lora") & (main["r"] == d["r"]) & (main["lora_alpha"] == d["lora_alpha"])
            & (main["target_modules"].map(str) == str(d["target_modules"])) & (main["lora_dropout"] == 0.0) & ~jump)
    return main[keep].copy()


def planned_fraction(start_steps: int, optimizer_steps: int) -> Optional[float]:
    """Which ``K_FRACTIONS`` entry a K belongs to (``make_run``: K = round(fraction × steps)), else None.
    """
    for f in K_FRACTIONS:
        if int(round(f * optimizer_steps)) == int(start_steps):
            return f
    return None


def k_runs(delta_k: Optional[pd.DataFrame] = None, delta_lambda: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Delta-LoRA runs for the K ablation: ``delta_k`` plus the task-default-K runs at the same λ.

    Columns added: ``k_frac`` = start_steps / optimizer_steps (K as a fraction of all optimizer steps)
    and ``k_setting``: "0 %", "10 %", … for the grid's fractions, "default" for the task's own K
    (Delta-LoRA's per-task K as a fraction of its total steps, ``recipes.TASK_RECIPES``).

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    dk = sweep_results("delta_k") if delta_k is None else delta_k.copy()
    dl = sweep_results("delta_lambda") if delta_lambda is None else delta_lambda.copy()
    lams = sorted(dk["update_ratio"].unique())
    if len(lams) != 1:
        raise ValueError(f"the K sweep should hold one λ, it holds {lams}")
    default = dl[dl["update_ratio"] == lams[0]].copy()
    default["k_setting"] = "default"
    fr = [planned_fraction(k, n) for k, n in zip(dk["start_steps"], dk["optimizer_steps"])]
    dk["k_setting"] = [f"{100 * f:g} %" if f is not None else f"K={k}" for f, k in zip(fr, dk["start_steps"])]
    out = pd.concat([dk, default], ignore_index=True)
    out["k_frac"] = out["start_steps"] / out["optimizer_steps"]
    return out


#: Label statistics of GLUE's full train and dev splits, on which every committed run trained and was scored
#: (the files of ``docs/data.md``, section 3; ``tests/test_figures_delta.py`` recomputes them from the data when
#: ``DCFT_EDU_DATA`` holds the full sets): the count of each class id, or for STS-B the score's mean and variance.
#: ``constant_predictor`` reads these, not the data folder, so the collapse check of committed runs is the same
#: with the full data, with the tests' small sample, or with no data at all.
FULL_SPLIT_LABELS: dict[tuple[str, str], Union[list[int], dict[str, float]]] = {
    ("cola", "train"): [2528, 6023], ("cola", "dev"): [322, 721],
    ("sst2", "train"): [29780, 37569], ("sst2", "dev"): [428, 444],
    ("mrpc", "train"): [1194, 2474], ("mrpc", "dev"): [129, 279],
    ("rte", "train"): [1249, 1241], ("rte", "dev"): [146, 131],  # entailment = 0
    ("stsb", "train"): {"mean": 2.7009990240624933, "var": 2.1440891043549084},
    ("stsb", "dev"): {"mean": 2.3639075540602206, "var": 2.249956200596187},
}


def constant_predictor(task: str, split: str = "dev") -> dict[str, float]:
    """What a model that ignores its input scores on a split: the best constant prediction's loss (the entropy
    of the label prior in nats for classification, the label variance for STS-B's MSE), the loss on this split
    of the constant a collapsed model actually learns — the **training** prior (label frequencies, or the mean
    score) — and, for classification, the best constant's accuracy (the majority class's share). A run whose
    loss sits at one of the two losses has collapsed. Computed from GLUE's full splits (``FULL_SPLIT_LABELS``).
    """
    y, y_train = FULL_SPLIT_LABELS[(task, split)], FULL_SPLIT_LABELS[(task, "train")]
    if isinstance(y, dict):  # STS-B: regression
        # MSE of the train mean on this split: Var(y) + (mean_train − mean(y))²
        return {"loss": y["var"], "train prior loss": y["var"] + (y_train["mean"] - y["mean"]) ** 2,
                "accuracy": np.nan}
    q = np.asarray(y) / sum(y)  # this split's label frequencies
    p_train = np.asarray(y_train) / sum(y_train)
    seen = q > 0
    # H(q) = −Σ q log q : the cross-entropy of always predicting this split's own prior (the best constant)
    # H(q, p_train) = −Σ q log p_train : that of always predicting the training prior
    return {"loss": float(-(q[seen] * np.log(q[seen])).sum()),
            "train prior loss": float(-(q[seen] * np.log(p_train[seen])).sum()), "accuracy": float(q.max())}


def collapse_check(df: pd.DataFrame, tol: float = 0.05) -> pd.DataFrame:
    """Per run: the last epoch's train and dev loss against the best constant predictor's (``constant_predictor``
    on train and dev), and ``collapsed`` = the train loss within ``tol`` (relative) of the constant's and the dev
    loss within ``tol`` of the best dev constant's *or* of the training prior's dev loss: the model learned
    nothing beyond the label prior. (A collapsed model predicts the training prior, which on dev can cost more
    than ``tol`` above the best dev constant: on STS-B, 5.1 %.) Columns: task, method, λ (update_ratio), jump
    (lora_scale_jump), seed, best metric ×100, the losses and their ratios to the constants', collapsed.

    Taught in: ``13_delta_lora_lambda``.
    """
    const = {(t, sp): constant_predictor(t, sp) for t in df["task"].unique() for sp in ("train", "dev")}
    rows = []
    for _, r in df.iterrows():
        last = r["epochs"][-1]
        ct, cd = const[(r["task"], "train")]["loss"], const[(r["task"], "dev")]
        rows.append({"task": TASK_LABELS[r["task"]], "method": r["method"], "λ": r["update_ratio"],
                     "jump": bool(r.get("lora_scale_jump", False)), "seed": int(r["seed"]),
                     "best ×100": 100 * r["best_metric"], "train loss": last["train_loss"], "constant (train)": ct,
                     "dev loss": last["loss"], "constant (dev)": cd["loss"], "train prior (dev)": cd["train prior loss"],
                     "train / constant": last["train_loss"] / ct, "dev / constant": last["loss"] / cd["loss"],
                     "dev / train prior": last["loss"] / cd["train prior loss"]})
    out = pd.DataFrame(rows)
    near = lambda ratio: (ratio - 1).abs() < tol  # noqa: E731
    out["collapsed"] = near(out["train / constant"]) & (near(out["dev / constant"]) | near(out["dev / train prior"]))
    return out


# ------------------------------------------------------------------ cells and tables


def _task_index(tasks: Sequence[str]) -> list[str]:
    return [TASK_LABELS[t] for t in tasks]


def lambda_table(delta_lambda: Optional[pd.DataFrame] = None, reference: Optional[pd.DataFrame] = None,
                 tasks: Sequence[str] = TASKS) -> pd.DataFrame:
    """Delta-LoRA's best dev metric ×100 per task (rows) and λ (columns), LoRA r = 8 first; every cell
    "mean ± std (n=…)", "missing" where no seed exists. (Delta-LoRA Table 7's layout, on GLUE.)

    Taught in: ``13_delta_lora_lambda``.
    """
    dl = sweep_results("delta_lambda") if delta_lambda is None else delta_lambda
    ref = lora_reference() if reference is None else reference
    s = summarize(dl, ["task", "update_ratio"]).set_index(["task", "update_ratio"])["cell"]
    r = summarize(ref, ["task"]).set_index("task")["cell"]
    rows = []
    for t in tasks:
        row = {f"LoRA r={METHOD_DEFAULTS['lora']['r']}": r.get(t, "missing")}
        row.update({f"λ={lam:g}": s.get((t, lam), "missing") for lam in LAMBDAS})
        rows.append(row)
    return pd.DataFrame(rows, index=_task_index(tasks))


def k_table(runs: Optional[pd.DataFrame] = None, reference: Optional[pd.DataFrame] = None,
            tasks: Sequence[str] = TASKS) -> pd.DataFrame:
    """Delta-LoRA's best dev metric ×100 per task and start step K (``k_runs``): the grid's fractions of all
    optimizer steps, the task's default K (with its K / steps), and LoRA r = 8. (Table 8's layout, on GLUE.)

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    runs = k_runs() if runs is None else runs
    ref = lora_reference() if reference is None else reference
    s = summarize(runs, ["task", "k_setting"]).set_index(["task", "k_setting"])["cell"]
    r = summarize(ref, ["task"]).set_index("task")["cell"]
    settings = [f"{100 * f:g} %" for f in K_FRACTIONS]
    rows = []
    for t in tasks:
        d = runs[(runs["task"] == t) & (runs["k_setting"] == "default")]
        k_def = (f"{int(d['start_steps'].iloc[0])} / {int(d['optimizer_steps'].iloc[0])} "
                 f"({100 * d['k_frac'].iloc[0]:.1f} %)") if len(d) else "—"
        row = {f"LoRA r={METHOD_DEFAULTS['lora']['r']}": r.get(t, "missing")}
        row.update({f"K={k}": s.get((t, k), "missing") for k in settings[:1]})
        row.update({"default K (steps)": k_def, "K=default": s.get((t, "default"), "missing")})
        row.update({f"K={k}": s.get((t, k), "missing") for k in settings[1:]})
        rows.append(row)
    return pd.DataFrame(rows, index=_task_index(tasks))


def coverage(delta_lambda: Optional[pd.DataFrame] = None, krun: Optional[pd.DataFrame] = None,
             twin: Optional[pd.DataFrame] = None, tasks: Sequence[str] = TASKS) -> pd.DataFrame:
    """Seeds present per planned cell of the three sweeps: one row per (sweep, setting), one column per task,
    cells "3/3", "1/3 (seed 0)", "0/3"; ``PLANNED_SEEDS`` is what each grid asks for. Never fills gaps.
    """
    dl = sweep_results("delta_lambda") if delta_lambda is None else delta_lambda
    kr = k_runs() if krun is None else krun
    tw = sweep_results("scale_jump") if twin is None else twin
    planned = len(PLANNED_SEEDS)
    cells = [("delta_lambda", f"λ={lam:g}", dl[dl["update_ratio"] == lam]) for lam in LAMBDAS]
    cells += [("delta_k", f"K={100 * f:g} %", kr[kr["k_setting"] == f"{100 * f:g} %"]) for f in K_FRACTIONS]
    cells += [("scale_jump", f"twin λ={lam:g}", tw[tw["update_ratio"] == lam]) for lam in TWIN_LAMBDAS]
    rows = []
    for sweep, setting, d in cells:
        row = {"sweep": sweep, "setting": setting}
        for t in tasks:
            seeds = sorted(int(s) for s in d.loc[d["task"] == t, "seed"])
            row[TASK_LABELS[t]] = f"{len(seeds)}/{planned}" + (
                f" (seed {','.join(map(str, seeds))})" if 0 < len(seeds) < planned else "")
        rows.append(row)
    return pd.DataFrame(rows).set_index(["sweep", "setting"])


# ------------------------------------------------------------------ the twin
def _curve(row: pd.Series) -> pd.DataFrame:
    main = row["main_metric"]
    return pd.DataFrame({"epoch": [e["epoch"] for e in row["epochs"]], "step": [e["step"] for e in row["epochs"]],
                         "metric": [100 * e[main] for e in row["epochs"]],
                         "dev_loss": [e["loss"] for e in row["epochs"]],
                         "train_loss": [e["train_loss"] for e in row["epochs"]],
                         "device": short_device(row["device"])})


def _one(df: pd.DataFrame, **eq) -> Optional[pd.Series]:
    m = np.ones(len(df), dtype=bool)
    for k, v in eq.items():
        m &= (df[k] == v).to_numpy()
    return df[m].iloc[0] if m.any() else None


def twin_matches(delta: Optional[pd.DataFrame] = None, twin: Optional[pd.DataFrame] = None,
                 reference: Optional[pd.DataFrame] = None) -> list[dict]:
    """For every twin run: the Delta-LoRA run with the same task, seed, λ and K, the LoRA reference run and
    the λ = 0 Delta-LoRA run with the same task and seed (``None`` where missing). A list of dicts with
    keys task, lam, seed, K, ``delta``, ``twin``, ``lora``, ``lambda0`` (result rows).

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    dl = sweep_results("delta_lambda") if delta is None else delta
    tw = sweep_results("scale_jump") if twin is None else twin
    ref = lora_reference() if reference is None else reference
    out = []
    for _, r in tw.sort_values(["update_ratio", "task", "seed"]).iterrows():
        t, s, lam, k = r["task"], int(r["seed"]), float(r["update_ratio"]), int(r["start_steps"])
        out.append({"task": t, "lam": lam, "seed": s, "K": k, "twin": r,
                    "delta": _one(dl, task=t, seed=s, update_ratio=lam, start_steps=k),
                    "lora": _one(ref, task=t, seed=s), "lambda0": _one(dl, task=t, seed=s, update_ratio=0.0)})
    return out


def twin_table(matches: Optional[list[dict]] = None) -> pd.DataFrame:
    """Per twin pair: the best dev metric ×100 of Delta-LoRA(λ), the twin and LoRA (same task and seed), the
    twin's gap |Δ| to Delta-LoRA (best epoch and the largest per-epoch gap), and as a yardstick the gap
    between λ = 0 Delta-LoRA and LoRA: the same method on paper, so their gap is run-to-run noise alone.

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    matches = twin_matches() if matches is None else matches
    rows = []
    for m in matches:
        d, tw, lo, l0 = m["delta"], m["twin"], m["lora"], m["lambda0"]
        row = {"task": TASK_LABELS[m["task"]], "λ": m["lam"], "seed": m["seed"], "K": m["K"],
               "steps": int(tw["optimizer_steps"]),
               "Delta-LoRA": 100 * d["best_metric"] if d is not None else np.nan,
               "twin": 100 * tw["best_metric"],
               "LoRA": 100 * lo["best_metric"] if lo is not None else np.nan}
        row["abs diff Delta–twin"] = abs(row["Delta-LoRA"] - row["twin"])
        if d is not None:
            cd, ct = _curve(d), _curve(tw)
            row["max abs diff per epoch"] = float(np.abs(cd["metric"].to_numpy() - ct["metric"].to_numpy()).max())
        else:
            row["max abs diff per epoch"] = np.nan
        row["abs diff λ=0–LoRA (noise)"] = (abs(100 * l0["best_metric"] - row["LoRA"])
                                       if l0 is not None and lo is not None else np.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def twin_curves(matches: Optional[list[dict]] = None) -> pd.DataFrame:
    """The per-epoch dev curves of every twin pair (and its LoRA run), long format: task, lam, seed, K,
    variant ("Delta-LoRA", "twin", "LoRA"), epoch, step, metric (×100), dev_loss, train_loss, device.
    """
    matches = twin_matches() if matches is None else matches
    parts = []
    for m in matches:
        for variant in ("delta", "twin", "lora"):
            if m[variant] is not None:
                c = _curve(m[variant])
                c.insert(0, "variant", {"delta": "Delta-LoRA", "twin": "twin", "lora": "LoRA"}[variant])
                for k in ("K", "seed", "lam", "task"):
                    c.insert(0, k, m[k])
                parts.append(c)
    return pd.concat(parts, ignore_index=True)


def twin_adam_step_ratio(lam: float, start: int, t: Union[int, np.ndarray],
                         betas: tuple[float, float] = (0.9, 0.999)) -> np.ndarray:
    """How much larger the twin's Adam step on A, B is than Delta-LoRA's, at step t, for a gradient of
    constant size (an idealisation: it isolates the effect of Adam's memory).

    Both see the gradient g up to step K; after K the twin sees (1+λ)·g. With bias-corrected moments
    m̂_t = Σ_i w¹_i c_i g,  v̂_t = Σ_i w²_i c_i² g²,  w^β_i = (1−β) β^(t−i) / (1 − β^t),  c_i = 1 (i ≤ K)
    or 1+λ (i > K), the ratio of the steps is  (m̂_t / √v̂_t) / (g / |g|)  = Σ w¹ c / √(Σ w² c²):
    1 up to K, above 1 after it (the first moment forgets the old scale in ~10 steps, the second in
    ~1000), back towards 1 as both forget. With exact scale invariance (K = 0) it is 1 throughout.

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    ts = np.atleast_1d(np.asarray(t, dtype=int))
    out = np.empty(len(ts))
    for j, tt in enumerate(ts):
        i = np.arange(1, tt + 1)
        c = np.where(i <= start, 1.0, 1.0 + lam)
        w1 = (1 - betas[0]) * betas[0] ** (tt - i) / (1 - betas[0] ** tt)
        w2 = (1 - betas[1]) * betas[1] ** (tt - i) / (1 - betas[1] ** tt)
        out[j] = (w1 * c).sum() / np.sqrt((w2 * c ** 2).sum())
    return out


# ------------------------------------------------------------------ checks on trained models
def pretrained_weights(names: Sequence[str], task: str = "rte", model: Optional[str] = None) -> dict[str, torch.Tensor]:
    """W₀ of the named linear modules, (out, in), read from a freshly loaded pretrained model.

    Loaded independently of any trained model, so checks against it are not circular (unlike
    ``original_weights``, which recovers W₀ from the trained model itself).

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    from ..experiments.models import load_model

    fresh, _ = load_model(task, model)
    return {n: fresh.get_submodule(n).weight.detach().clone() for n in names}


def effective_weight(layer: nn.Module) -> torch.Tensor:
    """What an (unmerged) adapter layer multiplies x by: base_weight() + get_delta_weight(), (out, in).

    Taught in: ``13_delta_lora_lambda``.
    """
    return layer.effective_weight().detach()


@torch.no_grad()
def delta_lora_identity_gap(model: nn.Module, pretrained: dict[str, torch.Tensor]) -> pd.DataFrame:
    """Per Delta-LoRA layer: the largest |entry| of  W_eff − (W₀ + s·((1+λ)·P_t − λ·P_K)),  P = B·A.

    W_eff = base_weight() + get_delta_weight() is the layer's effective weight, W₀ comes from
    ``pretrained`` (e.g. ``pretrained_weights``), P_t from the current (A, B) and P_K from the
    (A_K, B_K) the layer recorded at step K (``lora_A_start``, ``lora_B_start``). Past K the two agree
    up to float rounding: Delta-LoRA's effective weight IS that of LoRA whose scale jumped from s to
    (1+λ)·s at K, with the constant −λ·s·P_K folded into W (docs/method_notes.md §4). Columns: layer,
    num_steps, K, gap, scale (max |W_eff − W₀|, for reference).

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    from ..delta_lora import delta_lora_layers

    rows = []
    for name, layer in delta_lora_layers(model):
        if not layer.updates_started:
            raise ValueError(f"{name}: only {layer.steps_taken} steps, K = {layer.start_steps}: train past K first")
        w0 = pretrained[name]
        rows.append({"layer": name, "num_steps": layer.steps_taken, "K": layer.start_steps,
                     "gap": layer.twin_gap(w0),  # DeltaLoRALinear.twin_gap: the computation, in the core
                     "scale": (effective_weight(layer).double() - w0.double()).abs().max().item()})
    return pd.DataFrame(rows)


@torch.no_grad()
def effective_change_gap(model_a: nn.Module, model_b: nn.Module, pretrained: dict[str, torch.Tensor]) -> float:
    """‖ΔW_a − ΔW_b‖_F / ‖ΔW_b‖_F over all adapter layers, ΔW = W_eff − W₀ (``effective_weight``, ``pretrained``).

    0 for two models that learned the same change of their weights; used to compare Delta-LoRA with its twin.

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    from ..inject import adapter_layers

    b = dict(adapter_layers(model_b))
    num = den = 0.0
    for name, la in adapter_layers(model_a):
        w0 = pretrained[name].double()
        da, db = effective_weight(la).double() - w0, effective_weight(b[name]).double() - w0
        num += ((da - db) ** 2).sum().item()
        den += (db ** 2).sum().item()
    return float(np.sqrt(num / den))


# ------------------------------------------------------------------ figures

def _reference_band(ax, ref: pd.Series, label: bool) -> None:
    m, sd, n = ref["mean"], ref["std"], int(ref["n"])
    ax.axhline(m, color="0.35", lw=1.2, ls="--", zorder=1,
               label="LoRA r=8 (main), mean ± std" if label else None)
    if n >= 2 and not np.isnan(sd):
        ax.axhspan(m - sd, m + sd, color="0.6", alpha=0.18, zorder=0)


def _points(ax, x: np.ndarray, s: pd.DataFrame, lo: float, color: str, marker: str, label: Optional[str],
            line: bool = True) -> None:
    """mean ± std markers (error bars only where n ≥ 2), ``n=…`` beside each, ▼ at the bottom for values < lo."""
    y = s["mean"].to_numpy()
    shown = np.where(y < lo, np.nan, y)
    if line:
        ax.plot(x, np.where(y < lo, lo, y), color=color, lw=1.0, alpha=0.6, zorder=2)
    err = np.where((s["n"] >= 2) & ~np.isnan(s["std"]), s["std"], np.nan)
    ax.errorbar(x, shown, yerr=err, fmt=marker, color=color, ms=6, capsize=3, zorder=3, label=label)
    planned = len(PLANNED_SEEDS)
    for xi, yi, n in zip(x, y, s["n"]):
        if yi < lo:
            ax.plot([xi], [lo], marker="v", color=color, ms=9, clip_on=False, zorder=4)
            ax.annotate(f"{yi:.1f}\n(n={n})", (xi, lo), xytext=(0, 8), textcoords="offset points", ha="center",
                        va="bottom", fontsize=7.5, color=FEW_SEEDS_COLOR if n < planned else "0.2",
                        bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.8))
        else:
            ax.annotate(f"n={n}", (xi, yi), xytext=(4, 4), textcoords="offset points", fontsize=7.5,
                        color=FEW_SEEDS_COLOR if n < planned else "0.2")


def _limits(s: pd.DataFrame, ref: pd.Series) -> tuple[float, float]:
    """y-limits: at most Y_SPAN points below the reference, shrunk to the data (mean ± std) that falls inside;
    means below the limit are drawn as ▼ on the bottom edge."""
    lo = ref["mean"] - Y_SPAN
    m, sd = s["mean"].to_numpy(), np.nan_to_num(s["std"].to_numpy())
    inside = m >= lo
    low = np.concatenate([m[inside] - sd[inside], [ref["mean"] - np.nan_to_num(ref["std"])]])
    high = np.concatenate([m[inside] + sd[inside], [ref["mean"] + np.nan_to_num(ref["std"])]])
    return max(lo, low.min() - 1.5), high.max() + 1.5


@register("delta_lora_lambda_k")
def draw_delta_lora_lambda_k() -> Figure:
    """Best dev metric vs the update ratio λ (top) and the start step K (bottom), per task, LoRA r=8 as reference.

    Taught in: ``13_delta_lora_lambda``, ``14_delta_lora_k_and_twin``.
    """
    dl, kr, ref = sweep_results("delta_lambda"), k_runs(), lora_reference()
    sl = summarize(dl, ["task", "update_ratio"])
    sk = summarize(kr, ["task", "k_setting"]).merge(
        kr.groupby(["task", "k_setting"])["k_frac"].mean().reset_index(), on=["task", "k_setting"])
    sr = summarize(ref, ["task"]).set_index("task")
    k_lam = float(kr.loc[kr["k_setting"] != "default", "update_ratio"].iloc[0])
    fig, axes = plt.subplots(2, len(TASKS), figsize=(4.0 * len(TASKS), 7.6), layout="constrained")
    for j, t in enumerate(TASKS):
        metric = dl.loc[dl["task"] == t, "main_metric"].iloc[0]
        ref_t = sr.loc[t]
        # --- λ
        ax = axes[0, j]
        s = sl[sl["task"] == t].sort_values("update_ratio")
        lo, hi = _limits(s, ref_t)
        _reference_band(ax, ref_t, label=(j == 0))
        _points(ax, s["update_ratio"].to_numpy(), s, lo, "C0", "o", "Delta-LoRA, task's default K" if j == 0 else None)
        ax.set_ylim(lo, hi)
        ax.set_xticks(LAMBDAS)
        ax.set_xticklabels([f"{x:g}" for x in LAMBDAS])
        ax.set_xlabel("update ratio λ")
        ax.set_title(f"{TASK_LABELS[t]}: λ at default K = {int(dl.loc[dl['task'] == t, 'start_steps'].iloc[0])}",
                     fontsize=10)
        ax.set_ylabel(METRIC_AXIS[metric])
        # --- K
        ax = axes[1, j]
        s = sk[sk["task"] == t]
        grid = s[s["k_setting"] != "default"].sort_values("k_frac")
        default = s[s["k_setting"] == "default"]
        lo, hi = _limits(s, ref_t)
        _reference_band(ax, ref_t, label=False)
        if len(grid):
            _points(ax, 100 * grid["k_frac"].to_numpy(), grid, lo, "C1", "o",
                    f"Delta-LoRA λ={k_lam:g}, K = 0/10/25/50 % of steps" if j == 0 else None)
        if len(default):
            _points(ax, 100 * default["k_frac"].to_numpy(), default, lo, "C2", "s",
                    f"Delta-LoRA λ={k_lam:g}, task's default K (main)" if j == 0 else None, line=False)
        ax.set_ylim(lo, hi)
        ax.set_xlim(-3, 53)
        ax.set_xticks([100 * f for f in K_FRACTIONS])
        ax.set_xlabel("start step K, % of all optimizer steps")
        missing = [f"{100 * f:g} %" for f in K_FRACTIONS if f"{100 * f:g} %" not in set(grid["k_setting"])]
        ax.set_title(f"{TASK_LABELS[t]}: K at λ = {k_lam:g}" + (f"  (no run: {', '.join(missing)})" if missing else ""),
                     fontsize=10, color=FEW_SEEDS_COLOR if missing else "black")
        ax.set_ylabel(METRIC_AXIS[metric])
    handles = [Line2D([], [], color="C0", marker="o", ls="-", label="Delta-LoRA r=8, λ varied, task's default K"),
               Line2D([], [], color="C1", marker="o", ls="-", label=f"Delta-LoRA r=8, λ={k_lam:g}, K varied"),
               Line2D([], [], color="C2", marker="s", ls="", label=f"Delta-LoRA r=8, λ={k_lam:g}, task's default K"),
               Line2D([], [], color="0.35", ls="--", label="LoRA r=8 (same r, α, matrices), band = ± std"),
               Line2D([], [], color="0.4", marker="v", ls="", label=f"below the axis (> {Y_SPAN:g} points under LoRA)")]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.065), ncol=3, fontsize=9, frameon=False)
    devices, best_lam = short_devices(pd.concat([dl, kr, ref])["device"]), best_lambda_of(dl)
    fig.suptitle(
        "Delta-LoRA's update ratio λ (top) and start step K (bottom): best-epoch GLUE dev metric ×100 "
        "(cf. Delta-LoRA Tables 7–8, on E2E)\n"
        f"{backbone()}, scale gpu ({devices}); mean ± std over seeds (error bars only where n ≥ 2), "
        f"n=… per point (red: fewer than {len(PLANNED_SEEDS)} seeds)\nthe K runs (bottom) used λ = {k_lam:g}, "
        + ("the λ > 0 best on average over the four tasks (not each task's best)" if k_lam == best_lam
           else f"not the λ > 0 now best on average over the tasks ({best_lam:g})"),
        fontsize=10.5)
    return fig


@register("delta_lora_twin")
def draw_delta_lora_twin() -> Figure:
    """Per-epoch dev curves of Delta-LoRA(λ), the scale-jump twin (LoRA, s → (1+λ)·s at K) and LoRA.

    Taught in: ``14_delta_lora_k_and_twin``.
    """
    matches = twin_matches()
    curves = twin_curves(matches)
    lams = sorted(curves["lam"].unique())
    fig, axes = plt.subplots(len(lams), len(TASKS), figsize=(4.0 * len(TASKS), 3.5 * len(lams) + 0.6),
                             layout="constrained", squeeze=False)
    style = {"Delta-LoRA": dict(color="C0", marker="o", ls="-", lw=2.2, ms=6),
             "twin": dict(color="C3", marker="s", ls="--", lw=1.6, ms=5),
             "LoRA": dict(color="0.45", marker="^", ls=":", lw=1.3, ms=5)}
    seeds = sorted(curves["seed"].unique())
    for i, lam in enumerate(lams):
        for j, t in enumerate(TASKS):
            ax = axes[i, j]
            c = curves[(curves["lam"] == lam) & (curves["task"] == t)]
            if c.empty:
                ax.text(0.5, 0.5, "no run", transform=ax.transAxes, ha="center", color=FEW_SEEDS_COLOR)
                continue
            for seed in sorted(c["seed"].unique()):
                for v in ("Delta-LoRA", "twin", "LoRA"):
                    cv = c[(c["variant"] == v) & (c["seed"] == seed)]
                    if len(cv):
                        ax.plot(cv["step"], cv["metric"], **style[v])
            k = int(c["K"].iloc[0])
            ax.axvline(k, color="0.3", lw=0.9, ls="-.")
            ax.annotate(f"K={k}", (k, 0.02), xycoords=("data", "axes fraction"), xytext=(3, 0),
                        textcoords="offset points", fontsize=8, color="0.3")
            ax.set_xlim(left=0)
            ax.set_title(f"{TASK_LABELS[t]}, λ = {lam:g}  (seed {','.join(map(str, sorted(c['seed'].unique())))})",
                         fontsize=10)
            main = next(m["twin"]["main_metric"] for m in matches if m["task"] == t)
            ax.set_ylabel(METRIC_AXIS[main] if j else f"dev metric after each epoch\n{METRIC_AXIS[main]}")
            if i == len(lams) - 1:
                ax.set_xlabel("optimizer step (end of each epoch)")
    handles = [Line2D([], [], **style["Delta-LoRA"], label="Delta-LoRA r=8, λ (W moves by λ·s·Δ(BA) after K)"),
               Line2D([], [], **style["twin"], label="twin: LoRA r=8 whose scale jumps s → (1+λ)·s at step K"),
               Line2D([], [], **style["LoRA"], label="LoRA r=8 (no jump)"),
               Line2D([], [], color="0.3", lw=0.9, ls="-.", label="start step K")]
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=9, frameon=False)
    fig.suptitle(
        "Delta-LoRA and its twin share the effective weight W₀ + s·((1+λ)·P_t − λ·P_K) for the same A, B; "
        "but after K the twin's A, B get (1+λ)× the gradient, and Adam remembers the steps before K\n"
        f"{backbone()}, scale gpu ({short_devices(_devices_of(matches))}), "
        f"GLUE dev after each epoch; seed {','.join(map(str, seeds))} only (n=1 per curve: the other seeds were not run)",
        fontsize=10.5)
    return fig


def _devices_of(matches: list[dict]) -> list[str]:
    """The device of every run drawn in the twin figure."""
    return [m[v]["device"] for m in matches for v in ("delta", "twin", "lora") if m[v] is not None]


def _span(counts: pd.Series) -> str:
    """"3" if every cell has 3 runs, else "1–3": the runs per cell, for a figure's title."""
    return f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}–{counts.max()}"


@register("e2e_lambda")
def draw_e2e_lambda(df: Optional[pd.DataFrame] = None) -> Figure:
    """E2E BLEU and ROUGE-L against λ at K = 0: ours (``figures/data/e2e``, one dot per seed, LoRA as a dashed line,
    and the twins — LoRA with α × (1 + λ) — as open squares) on the left, the paper's Table 7 (GPT-2 Medium, test
    set, one run per λ) on the right: two scales, two axes.

    Taught in: ``16_e2e_generation``.
    """
    from ..experiments.e2e import load_e2e_results, split_e2e_runs

    d = load_e2e_results() if df is None else df
    parts = split_e2e_runs(d)
    delta, lora, twins = parts["lambda"], parts["table1"].query("method == 'lora'"), parts["twins"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.8))
    for metric, label, color in (("bleu", "BLEU", "#1565c0"), ("rouge_l", "ROUGE-L", "#2e7d32")):
        ax.scatter(delta["λ"], delta[metric], color=color, s=22, alpha=0.6)
        mean = delta.groupby("λ")[metric].mean()
        ax.plot(mean.index, mean.values, "-o", color=color, ms=4, label=f"Delta-LoRA {label}")
        if len(twins):
            ax.scatter(twins["λ"] + 0.06, twins[metric], marker="s", s=30, facecolors="none", edgecolors=color,
                       label=f"twin: LoRA α·(1+λ), {label}")
        if len(lora):
            ax.axhline(lora[metric].mean(), color=color, ls="--", lw=1, label=f"LoRA {label} (n = {len(lora)})")
        bx.plot(PAPER_TABLE7.index, PAPER_TABLE7[label], "-o", color=color, ms=4, label=f"Delta-LoRA {label}")
    seeds = delta.groupby("λ").size()
    ax.set_title(f"ours: SmolLM2-135M, {', '.join(sorted(set(d['scale'])))} scale, "
                 f"{int(d['num_mrs'].iloc[0]) if len(d) else 0} dev MRs, "
                 f"{_span(seeds)} seed(s) per λ"
                 if len(seeds) else "ours: no runs", fontsize=9)
    bx.set_title("the paper's Table 7: GPT-2 Medium, 630 test MRs, one run per λ", fontsize=9)
    for a in (ax, bx):
        a.set_xlabel("update ratio λ")
        a.set_ylabel("score ×100")
        a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: no point hidden
    fig.suptitle(f"Delta-LoRA's update ratio λ on E2E NLG (K = the paper's 1.9 % of the run = 0 here; "
                 f"{short_devices(d['device'].unique()) if len(d) else 'no runs'})", fontsize=10)
    fig.tight_layout()
    return fig


@register("e2e_start_step")
def draw_e2e_start_step(df: Optional[pd.DataFrame] = None) -> Figure:
    """E2E BLEU and ROUGE-L against the start step K, in units of each run's warmup: ours (one dot per seed, the
    mean as a line) on the left, the paper's Table 8 (GPT-2 Medium, λ 2, warmup 500 steps) on the right.

    Taught in: ``16_e2e_generation``.
    """
    from ..experiments.e2e import load_e2e_results, make_e2e_run, split_e2e_runs
    from ..experiments.presets import total_optimizer_steps

    d = load_e2e_results() if df is None else df
    parts = split_e2e_runs(d)
    lora, ks = parts["table1"].query("method == 'lora'"), parts["start_step"]
    if ks.empty:
        raise FileNotFoundError("no Delta-LoRA E2E runs with K > 0: run `python -m dcft_edu.experiments.e2e "
                                "--methods delta_lora --start-steps ...` (figures/data/e2e/README.md)")
    lam = float(ks["λ"].iloc[0])
    run = make_e2e_run("delta_lora", str(ks["scale"].iloc[0]))
    warm = run.warmup_steps
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 4.8))
    for metric, label, color in (("bleu", "BLEU", "#1565c0"), ("rouge_l", "ROUGE-L", "#2e7d32")):
        ax.scatter(ks["K"] / warm, ks[metric], color=color, s=22, alpha=0.6)
        mean = ks.groupby("K")[metric].mean()
        ax.plot(mean.index / warm, mean.values, "-o", color=color, ms=4, label=f"Delta-LoRA λ {lam:g} {label}")
        if len(lora):
            ax.axhline(lora[metric].mean(), color=color, ls="--", lw=1, label=f"LoRA {label} (n = {len(lora)})")
        bx.plot(PAPER_TABLE8.index / 500, PAPER_TABLE8[label], "-o", color=color, ms=4, label=f"Delta-LoRA λ 2 {label}")
    n = ks.groupby("K").size()
    ax.set_title(f"ours: SmolLM2-135M, {run.scale} scale\n{total_optimizer_steps(run)} steps, warmup {warm}; "
                 f"{_span(n)} seed(s) per K", fontsize=9)
    bx.set_title("the paper's Table 8: GPT-2 Medium\n26,290 steps, warmup 500; one run per K", fontsize=9)
    for a in (ax, bx):
        a.set_xlabel("start step K ÷ warmup steps")
        a.set_ylabel("score ×100")
        a.axvline(1.0, color="0.4", lw=0.8, ls=":")
        a.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.suptitle("Delta-LoRA's start step K on E2E NLG: W starts to move after K optimizer steps "
                 f"({short_devices(d['device'].unique())})", fontsize=10)
    fig.tight_layout()
    return fig
