"""Recipes as data, in one module: what one run is made of, and the sweeps of many.

- ``METHODS``, ``SCALES``; ``TASK_RECIPES`` (the official DCFT scripts' settings per GLUE task), ``PRESETS`` (the
  scales), ``METHOD_DEFAULTS``, ``GPU_DEVIATIONS``; for the E2E task ``E2E_PRESETS``, ``E2E_RUN_DEFAULTS``,
  ``E2E_METHOD_DEFAULTS``, ``PAPER_K_FRAC``. ``presets.make_run`` builds a ``RunConfig`` from them.
- ``GRIDS``: the named sweep grids (``python -m dcft_edu.experiments.sweep GRID`` runs them);
- ``LAB_GRIDS``: each experiment notebook's lab sub-grids (``lab.run_lab``).

Six scales, each a ``Preset`` anyone can read:

- ``quick``: CI scale — a couple of hundred examples, one short epoch, seconds
  per run on a 2-core CPU. Numbers from it mean nothing; it tests code paths.
- ``cpu``: minutes per run on a 2-core CPU — the first 1,000 training examples, full dev
  set, three epochs. Meaningful on the small tasks (RTE, MRPC, STS-B, CoLA).
- ``gpu``: the budgeted recipes — the official learning rates, warmup, γ and weight
  decay, batch 32, full dev sets, about 20k training examples per run. Every field where it
  departs from the official scripts is listed in ``GPU_DEVIATIONS`` (a test keeps the list
  true against ``paper``).
- ``paper``: the official DCFT DeBERTa-v3-base scripts in full (docs/method_notes.md §1): all training
  data, their epochs, warmup steps, γ, weight decay, max lengths, classifier dropout and
  DCFT scale α/r, batch 32. Only the model differs (MiniLM, not DeBERTa-v3-base).
- ``lab`` and ``lab_cpu``: what a student trains in notebooks 07–14 (``dcft_edu.experiments.lab``):
  a notebook's lab sweep in ≤ 10 minutes on a Colab T4 (``lab``) or ≤ 15 minutes on a
  2-core CPU (``lab_cpu``, fewer runs too). Their timings and basis: ``dcft_edu.experiments.lab``.

Per-task recipes follow the official DCFT DeBERTa-v3-base scripts (learning
rate, epochs, warmup, γ). Every adapter method shares the task's learning rate
so that comparisons differ only in the method; full fine-tuning uses 1e-4 and
head-only 1e-3. Delta-LoRA's start step K is the paper's per-task K expressed as
a fraction of its total steps (RoBERTa-base, batch 128), so it scales with ours.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union


# ---- methods, scales and the recipes of one run (``presets.make_run`` builds a RunConfig from them) ----------

METHODS = ("full", "head", "lora", "dcft", "delta_lora", "lokr")
SCALES = ("quick", "cpu", "gpu", "paper", "lab", "lab_cpu")
#: the generation task (Delta-LoRA's E2E NLG with a causal LM): a task of ``RunConfig`` like the GLUE ones
E2E_TASK = "e2e"
E2E_METHODS = ("full", "lora", "dcft", "delta_lora")
#: E2E's training rows (trainset.csv): its ``total_optimizer_steps`` without a ``limit_train``
E2E_TRAIN_ROWS = 42_061


@dataclass(frozen=True)
class TaskRecipe:
    """The official DCFT script's settings for one task (docs/method_notes.md §1), plus Delta-LoRA's K."""

    lr: float
    epochs: int
    warmup: Union[int, float]  # steps (int) or a fraction of all steps (float)
    orth_gamma: float
    weight_decay: float
    delta_start_frac: float  # Delta-LoRA's K / total steps in its paper (docs/method_notes.md §4)
    max_length: int  # the script's max_seq_length (``data.GLUE_TASKS`` caps it at 256 for the other presets)
    classifier_dropout: float  # the script's cls_dropout
    dcft_alpha: float  # the script's lora_alpha and lora_r: DCFT's scale is α/r (its subspace rank is 1)
    dcft_r: int


TASK_RECIPES: dict[str, TaskRecipe] = {
    # K fractions: MRPC 10/860, CoLA 100/10.7k, RTE 200/1560, STS-B 200/1800, SST-2 400/31.6k, QNLI 800/20.5k
    "cola": TaskRecipe(8e-4, 25, 100, 0.1, 0.0, 0.009, max_length=64, classifier_dropout=0.1, dcft_alpha=32, dcft_r=3),
    "sst2": TaskRecipe(8e-4, 24, 1000, 0.1, 0.01, 0.013, max_length=128, classifier_dropout=0.0, dcft_alpha=16, dcft_r=2),
    "mrpc": TaskRecipe(1e-3, 30, 0.1, 0.1, 0.01, 0.012, max_length=320, classifier_dropout=0.0, dcft_alpha=32, dcft_r=2),
    "stsb": TaskRecipe(2.2e-3, 25, 100, 0.3, 0.1, 0.11, max_length=128, classifier_dropout=0.2, dcft_alpha=32, dcft_r=2),
    "rte": TaskRecipe(1.2e-3, 50, 200, 0.3, 0.01, 0.128, max_length=320, classifier_dropout=0.2, dcft_alpha=32, dcft_r=2),
    "qnli": TaskRecipe(5e-4, 5, 500, 0.1, 0.01, 0.039, max_length=512, classifier_dropout=0.1, dcft_alpha=32, dcft_r=2),
}


@dataclass(frozen=True)
class Preset:
    """How big a run is. ``None`` means "use all" / "use the task recipe"."""

    name: str
    limit_train: Optional[int]
    limit_dev: Optional[int]
    epochs: Optional[int]  # None: the task recipe's epochs
    batch_size: int
    max_length: Optional[int]  # None: the task's max_length (``data.GLUE_TASKS``: the official scripts', capped at 256)
    warmup_ratio: Optional[float]  # None: the task recipe's warmup
    # At most this many training examples seen per run (None: no cap). The recipe's epochs are
    # cut to fit, but never below ``min_epochs``; a train set too big for that is truncated to
    # sample_budget // min_epochs examples. Warmup and Delta-LoRA's K stay the same FRACTION
    # of all steps as in the full recipe.
    sample_budget: Optional[int] = None
    min_epochs: int = 3
    # True: the recipe's max length and classifier dropout for every method, and its scale α/r for DCFT
    official_task_settings: bool = False


PRESETS: dict[str, Preset] = {
    "quick": Preset("quick", limit_train=160, limit_dev=96, epochs=1, batch_size=16, max_length=64, warmup_ratio=0.1),
    "cpu": Preset("cpu", limit_train=1000, limit_dev=None, epochs=3, batch_size=32, max_length=128, warmup_ratio=0.06),
    # The committed GPU results: the recipes' learning rates, warmup fractions, γ, weight decay and max
    # lengths, batch 32, full dev sets, and about 20k training examples seen per run (MRPC 5 epochs,
    # RTE 8, STS-B 3, CoLA and SST-2 3 epochs of their first 6,666 examples), so that the ~450 runs of
    # notebooks 07–13 fit in half an hour of one GPU. For the papers' full epochs: ``--set``/override
    # ``epochs`` and ``limit_train``, or use ``Preset(..., sample_budget=None)``.
    "gpu": Preset("gpu", limit_train=None, limit_dev=None, epochs=None, batch_size=32, max_length=None, warmup_ratio=None,
                  sample_budget=20_000, min_epochs=3),
    # A course's lab (``dcft_edu.experiments.lab``): the recipes' learning rates, γ and weight decay on the first
    # training rows; the CPU form also evaluates on the first dev rows only. Timings: ``dcft_edu.experiments.lab``.
    "lab": Preset("lab", limit_train=2000, limit_dev=None, epochs=3, batch_size=32, max_length=128, warmup_ratio=0.06),
    "lab_cpu": Preset("lab_cpu", limit_train=400, limit_dev=300, epochs=3, batch_size=16, max_length=128,
                      warmup_ratio=0.06),
    # The official scripts in full (~5–17× the gpu preset's examples per run): see GPU_DEVIATIONS
    "paper": Preset("paper", limit_train=None, limit_dev=None, epochs=None, batch_size=32, max_length=None,
                    warmup_ratio=None, official_task_settings=True),
}

#: Where the ``gpu`` preset departs from the official DCFT scripts (the ``paper`` preset), per RunConfig
#: field of a DCFT run, and why. ``gpu_deviations()`` lists the values; a test checks that exactly these
#: fields differ, so this table cannot drift. Both presets train MiniLM-L6 (width 384), not DeBERTa-v3-base.
GPU_DEVIATIONS: dict[str, str] = {
    "epochs": "cut so that a run sees ~20k examples (MRPC 5 of 30, RTE 8 of 50, STS-B, CoLA, SST-2 3)",
    "limit_train": "CoLA and SST-2 train on their first 6,666 examples (3 epochs within the budget)",
    "warmup_steps": "the recipe's warmup as the same FRACTION of the (shorter) run, not the same step count",
    "max_length": "capped at 256 (MRPC and RTE: official 320; QNLI: 512)",
    "classifier_dropout": "MiniLM's own 0.1 (official: 0.0 SST-2 and MRPC, 0.2 STS-B and RTE, 0.1 CoLA and QNLI)",
    "lora_alpha": "DCFT scale α/r = 16 on every task (official: 32/3 CoLA, 16/2 = 8 SST-2, 32/2 = 16 others)",
}


# ---- E2E (task "e2e", ``dcft_edu.experiments.e2e``) -------------------------------------------------

#: Delta-LoRA's E2E start step as a fraction of its run: K 500 of 42,061 / 8 × 5 = 26,290 optimizer steps
PAPER_K_FRAC = 500 / 26_290


@dataclass(frozen=True)
class E2EPreset:
    """How big an E2E run is."""

    name: str
    limit_train: Optional[int]  # training rows, a fixed random sample of trainset.csv (None: all 42,061)
    eval_split: str  # "dev" or "test"
    eval_mrs: Optional[int]  # distinct MRs scored, a fixed random sample (None: all)
    epochs: int
    batch_size: int
    lr: float
    warmup_steps: Union[int, float]  # steps, or a fraction of all steps
    max_length: int
    num_beams: int
    max_new_tokens: int
    generate_kw: tuple = ()  # extra (name, value) pairs for model.generate
    full_lr: Optional[float] = None  # full fine-tuning's lr, where it differs from the adapters' ``lr``


E2E_PRESETS: dict[str, E2EPreset] = {
    "quick": E2EPreset("quick", limit_train=32, eval_split="dev", eval_mrs=4, epochs=1, batch_size=8, lr=1e-3,
                       warmup_steps=0.1, max_length=96, num_beams=1, max_new_tokens=16),
    # SmolLM2-135M, one thread of a loaded 2-core CPU: ~18 s per optimizer step of 8 rows (~85 tokens each),
    # ~2.5 s per 4 MRs × 10 greedy tokens: 160 rows seen once (20 steps, ~6 min), 50 dev MRs greedy (~3 min)
    # full FT at 1e-4: 1e-3 on every weight of a 135M model is far above the usual range (docs/e2e_protocol.md)
    "cpu": E2EPreset("cpu", limit_train=160, eval_split="dev", eval_mrs=50, epochs=1, batch_size=8, lr=1e-3,
                     warmup_steps=0.1, max_length=128, num_beams=1, max_new_tokens=64, full_lr=1e-4),
    # Delta-LoRA's recipe (docs/method_notes.md §4) with LoRA's E2E beam search, on all 630 test MRs
    "gpu": E2EPreset("gpu", limit_train=None, eval_split="test", eval_mrs=None, epochs=5, batch_size=8, lr=2e-4,
                     warmup_steps=500, max_length=512, num_beams=10, max_new_tokens=64,
                     generate_kw=(("length_penalty", 0.9), ("no_repeat_ngram_size", 4))),
}

#: Delta-LoRA's E2E settings for every E2E run (r 4, α 32, λ 2, on Wq and Wv; K from ``PAPER_K_FRAC``) ...
E2E_RUN_DEFAULTS: dict[str, Any] = dict(r=4, lora_alpha=32.0, target_modules=["query", "value"], update_ratio=2.0,
                                        start_steps=0)
#: ... and each method's own (DCFT keeps its r 1, α 16, k 8 and γ 0.1)
E2E_METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": dict(),
    "lora": dict(r=4, lora_alpha=32.0),
    "delta_lora": dict(r=4, lora_alpha=32.0, update_ratio=2.0),
    "dcft": dict(r=1, lora_alpha=16.0, kernel_size=8, orth_gamma=0.1),
}
# method defaults (the papers' settings, scaled to MiniLM)
METHOD_DEFAULTS: dict[str, dict[str, Any]] = {
    "full": dict(lr=1e-4),
    "head": dict(lr=1e-3),
    "lora": dict(r=8, lora_alpha=16.0, target_modules="all-linear"),
    # official DCFT: rank-1 subspace, scale α/r = 32/2 = 16, the six BERT matrices
    "dcft": dict(r=1, lora_alpha=16.0, kernel_size=8, target_modules="all-linear"),
    # Delta-LoRA paper: r 8, α 16, λ 0.5 (we adapt the same modules as LoRA r=8, so the two compare)
    "delta_lora": dict(r=8, lora_alpha=16.0, update_ratio=0.5, target_modules="all-linear"),
    # PEFT's LoKr as DCFT's control (``lokr``): r 1, W₁ k × k (decompose_factor = kernel_size), DCFT's scale and
    # modules, so its parameter count is DCFT k = 8's exactly; no orthogonal penalty
    "lokr": dict(r=1, lora_alpha=16.0, kernel_size=8, target_modules="all-linear"),
}



# ---- named grids (sweeps of many runs) ----------------------------------------------------------------------

Grid = Union[dict[str, Any], list[dict[str, Any]]]

#: the four small GLUE tasks of the papers' ablations
ABLATION_TASKS = ["cola", "mrpc", "stsb", "rte"]
#: the module whose learned ΔW the stride ablation keeps (heatmaps in 11_stride_ablation)
STRIDE_DELTA_MODULE = "layer.0.attention.self.query"

#: The DCFT question's learning-rate factors (× the task recipe's lr), tasks of its init study, and the A/C std
#: of its B = 0 init (1/k for k = 8: ‖C‖_F ≈ 1, ‖a‖ ≈ 0.9 on MiniLM's 384-wide inputs)
LR_FACTORS = [1 / 3, 1, 3, 10]
INIT_TASKS = ["mrpc", "rte"]
ZERO_INIT_STD = 0.125

#: Named grids for the papers' experiments (``seed`` lists give mean ± std). A run whose
#: exact config already finished in another sweep is copied, not retrained (e.g. DCFT k = 8
#: of ``main`` is also ``kernel``'s k = 8 and ``stride``'s s = 8).
GRIDS: dict[str, Grid] = {
    "smoke": {"task": ["rte"], "method": list(METHODS), "seed": [0]},
    # 07_glue_main_results (DCFT Table 1, Delta-LoRA Table 4); 08 and 09 read it too
    "main": [
        {"task": ["rte", "mrpc", "stsb", "cola", "sst2"], "method": ["head", "full", "delta_lora"], "seed": [0, 1, 2]},
        {"task": ["rte", "mrpc", "stsb", "cola", "sst2"], "method": ["lora"], "r": [1, 8], "seed": [0, 1, 2]},
        {"task": ["rte", "mrpc", "stsb", "cola", "sst2"], "method": ["dcft"], "kernel_size": [2, 8], "seed": [0, 1, 2]},
    ],
    # 10_kernel_ablation (DCFT Table 4)
    "kernel": {"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [2, 4, 6, 8, 12], "seed": [0, 1, 2]},
    # 11_stride_ablation (DCFT Table 5); seed 0 keeps one layer's learned ΔW
    "stride": [
        {"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "stride": [1, 2, 4, 6, 8], "seed": [0],
         "save_delta": [STRIDE_DELTA_MODULE]},
        {"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "stride": [1, 2, 4, 6, 8], "seed": [1, 2]},
    ],
    # 12_layer_ablation: which matrices, which blocks (MiniLM has blocks 0–5)
    "layers": [
        {"task": ["mrpc", "stsb"], "method": ["lora", "dcft"], "seed": [0, 1, 2],
         "target_modules": [["query", "value"], ["query", "key", "value", "attention.output.dense"], "all-linear"]},
        {"task": ["mrpc", "stsb"], "method": ["lora", "dcft"], "seed": [0, 1, 2], "target_modules": ["all-linear"],
         "layers": [[0, 1, 2], [3, 4, 5]]},
    ],
    # 13_delta_lora_lambda and 14_delta_lora_k_and_twin (Delta-LoRA Tables 7 and 8): λ at the task's K ...
    "delta_lambda": {"task": ABLATION_TASKS, "method": ["delta_lora"], "update_ratio": [0.0, 0.5, 1.0, 2.0, 3.0, 5.0],
                     "seed": [0, 1, 2]},
    # ... K as a fraction of all optimizer steps (run it with --set update_ratio=<best λ>) ...
    "delta_k": {"task": ABLATION_TASKS, "method": ["delta_lora"], "start_frac": [0.0, 0.1, 0.25, 0.5],
                "seed": [0, 1, 2]},
    # ... and LoRA whose scale jumps from s to (1+λ)·s at step K, Delta-LoRA's twin (docs/method_notes.md §4)
    "scale_jump": {"task": ABLATION_TASKS, "method": ["lora"], "lora_scale_jump": [True], "update_ratio": [0.5, 2.0],
                   "seed": [0, 1, 2]},
    # The DCFT question (docs/dcft_question_protocol.md, issue 18), on one device, into a results folder of its own.
    # dcft_ref: the budgeted reference cells (the main grid's DCFT k=8, LoRA r=1 and r=8), retrained on the study's device
    "dcft_ref": [{"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "seed": [0, 1, 2]},
                 {"task": ABLATION_TASKS, "method": ["lora"], "r": [1, 8], "seed": [0, 1, 2]}],
    # (a) budget: the same cells with --scale paper (the official scripts in full)
    "dcft_paper": [{"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "seed": [0, 1, 2]},
                   {"task": ABLATION_TASKS, "method": ["lora"], "r": [1, 8], "seed": [0, 1, 2]}],
    # (b) learning rate, budgeted scale: lr = factor × recipe, chosen on 10 % of train held out (not on dev)
    "dcft_lr": [{"task": ABLATION_TASKS, "method": ["dcft"], "kernel_size": [8], "lr_factor": LR_FACTORS,
                 "select_on": ["train_holdout"], "seed": [0, 1, 2]},
                {"task": ABLATION_TASKS, "method": ["lora"], "r": [1], "lr_factor": LR_FACTORS,
                 "select_on": ["train_holdout"], "seed": [0, 1, 2]}],
    # (c) init and penalty, budgeted scale: paper init (A, B, C ~ N(0, 0.02²)) vs B = 0 with A, C ~ N(0, 0.125²),
    # each with the recipe's γ and γ = 0; LoRA r=1 as the reference
    "dcft_init": [{"task": INIT_TASKS, "method": ["dcft"], "kernel_size": [8], "dcft_init": ["paper"], "seed": [0, 1, 2]},
                  {"task": INIT_TASKS, "method": ["dcft"], "kernel_size": [8], "dcft_init": ["paper"], "orth_gamma": [0.0],
                   "seed": [0, 1, 2]},
                  {"task": INIT_TASKS, "method": ["dcft"], "kernel_size": [8], "dcft_init": ["zero"],
                   "dcft_init_std": [ZERO_INIT_STD], "seed": [0, 1, 2]},
                  {"task": INIT_TASKS, "method": ["dcft"], "kernel_size": [8], "dcft_init": ["zero"],
                   "dcft_init_std": [ZERO_INIT_STD], "orth_gamma": [0.0], "seed": [0, 1, 2]},
                  {"task": INIT_TASKS, "method": ["lora"], "r": [1], "seed": [0, 1, 2]}],
}


# ---- the classroom lab (``lab``) ------------------------------------------------------

@dataclass(frozen=True)
class LabGrid:
    """One notebook's lab sweeps: for each committed sweep it shows, a sub-grid of ``GRIDS[sweep]``.

    ``gpu`` runs at scale ``lab``; ``cpu``, the reduced form (fewer runs), at scale ``lab_cpu``.
    The sweep names are the committed ones, so a config two notebooks share is trained once.
    """

    notebook: str
    gpu: dict[str, Grid]
    cpu: dict[str, Grid]


_QV, _QKVO = ["query", "value"], ["query", "key", "value", "attention.output.dense"]

#: Per experiment notebook, its lab grids (every point is a point of the committed ``GRIDS``; a test checks).
#: STS-B is the lab task: short pairs (cheap), and every method moves its Pearson r within a few hundred rows.
LAB_GRIDS: dict[str, LabGrid] = {
    "main": LabGrid("07_glue_main_results", gpu={"main": [
        {"task": ["stsb", "mrpc"], "method": ["head", "full", "delta_lora"], "seed": [0]},
        {"task": ["stsb", "mrpc"], "method": ["lora"], "r": [1, 8], "seed": [0]},
        {"task": ["stsb", "mrpc"], "method": ["dcft"], "kernel_size": [2, 8], "seed": [0]},
    ]}, cpu={"main": [
        {"task": ["stsb"], "method": ["head", "full", "delta_lora"], "seed": [0]},
        {"task": ["stsb"], "method": ["lora"], "r": [8], "seed": [0]},
        {"task": ["stsb"], "method": ["dcft"], "kernel_size": [8], "seed": [0]},
    ]}),
    "kernel": LabGrid("10_kernel_ablation", gpu={
        "kernel": {"task": ["stsb", "mrpc"], "method": ["dcft"], "kernel_size": [2, 4, 6, 8, 12], "seed": [0]},
    }, cpu={
        "kernel": {"task": ["stsb"], "method": ["dcft"], "kernel_size": [2, 4, 8, 12], "seed": [0]},
    }),
    "stride": LabGrid("11_stride_ablation", gpu={
        "stride": {"task": ["stsb", "mrpc"], "method": ["dcft"], "kernel_size": [8], "stride": [2, 4, 6, 8],
                   "seed": [0], "save_delta": [STRIDE_DELTA_MODULE]},
    }, cpu={
        "stride": {"task": ["stsb"], "method": ["dcft"], "kernel_size": [8], "stride": [2, 4, 8], "seed": [0],
                   "save_delta": [STRIDE_DELTA_MODULE]},
    }),
    "layers": LabGrid("12_layer_ablation", gpu={"layers": [
        {"task": ["stsb", "mrpc"], "method": ["lora", "dcft"], "seed": [0], "target_modules": [_QV, "all-linear"]},
        {"task": ["stsb"], "method": ["lora", "dcft"], "seed": [0], "target_modules": ["all-linear"],
         "layers": [[0, 1, 2], [3, 4, 5]]},
    ]}, cpu={"layers": [
        {"task": ["stsb"], "method": ["lora", "dcft"], "seed": [0], "target_modules": [_QV, "all-linear"]},
        {"task": ["stsb"], "method": ["lora"], "seed": [0], "target_modules": ["all-linear"],
         "layers": [[0, 1, 2], [3, 4, 5]]},
    ]}),
    "delta": LabGrid("13_delta_lora_lambda, 14_delta_lora_k_and_twin", gpu={
        "delta_lambda": {"task": ["stsb", "mrpc"], "method": ["delta_lora"], "update_ratio": [0.0, 0.5, 2.0, 5.0],
                         "seed": [0]},
        "delta_k": {"task": ["stsb", "mrpc"], "method": ["delta_lora"], "start_frac": [0.0, 0.25, 0.5], "seed": [0]},
    }, cpu={
        "delta_lambda": {"task": ["stsb"], "method": ["delta_lora"], "update_ratio": [0.0, 0.5, 2.0], "seed": [0]},
        "delta_k": {"task": ["stsb"], "method": ["delta_lora"], "start_frac": [0.0, 0.5], "seed": [0]},
    }),
    # the learning-rate part (b) of the DCFT question: both methods at 1× and 10× the recipe lr (CPU), or all four
    # factors (GPU), the epoch chosen on held-out training rows
    "dcft_question": LabGrid("15_does_dcft_match_lora", gpu={"dcft_lr": [
        {"task": ["stsb", "mrpc"], "method": ["dcft"], "kernel_size": [8], "lr_factor": LR_FACTORS,
         "select_on": ["train_holdout"], "seed": [0]},
        {"task": ["stsb", "mrpc"], "method": ["lora"], "r": [1], "lr_factor": LR_FACTORS,
         "select_on": ["train_holdout"], "seed": [0]},
    ]}, cpu={"dcft_lr": [
        {"task": ["stsb"], "method": ["dcft"], "kernel_size": [8], "lr_factor": [1, 10], "select_on": ["train_holdout"],
         "seed": [0]},
        {"task": ["stsb"], "method": ["lora"], "r": [1], "lr_factor": [1, 10], "select_on": ["train_holdout"],
         "seed": [0]},
    ]}),
}
