"""Recipes as data: the named sweep grids of the papers' experiments and of the DCFT question.

- ``GRIDS``: the named sweep grids (``python -m dcft_edu.experiments.sweep GRID`` runs them);
- ``LAB_GRIDS``: each experiment notebook's lab sub-grids (``lab.run_lab``).

How one run is built from a scale stays in ``presets`` beside ``RunConfig`` (whose keys it shapes): the GLUE scale
presets and task recipes, and the E2E scales and method settings (``E2E_PRESETS``, ``E2E_METHOD_DEFAULTS``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from .presets import METHODS

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
