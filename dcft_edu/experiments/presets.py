"""Run configurations: one plain dataclass per run, built from a scale preset.

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

Used by: ``dcft_edu.experiments.trainer``, ``dcft_edu.experiments.sweep`` and notebooks 07–14.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

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
#: fields that only the E2E task reads (generation), and fields only the GLUE tasks read: set on the other, an error
E2E_ONLY_FIELDS = ("eval_split", "eval_mrs", "num_beams", "max_new_tokens", "generate_kw")
GLUE_ONLY_FIELDS = ("limit_dev", "lora_scale_jump", "save_delta", "classifier_dropout", "select_on")
#: the fields the E2E result files of schema 1 (before E2E was a task of RunConfig) hashed: ``legacy_key``
_E2E_SCHEMA1_FIELDS = (
    "method", "seed", "scale", "model", "lr", "epochs", "batch_size", "warmup_steps", "weight_decay", "max_grad_norm",
    "max_length", "limit_train", "eval_split", "eval_mrs", "num_beams", "max_new_tokens", "generate_kw", "r",
    "lora_alpha", "lora_dropout", "target_modules", "layers", "kernel_size", "stride", "dcft_init", "dcft_init_std",
    "impl", "orth_gamma", "update_ratio", "start_steps", "device",
)


#: RunConfig fields that record what to keep, not what to train: not part of a run's key
KEY_EXCLUDED = ("save_delta",)
#: ``select_on`` values: pick the epoch (and a sweep's learning rate) on the reported dev set, or on a fixed
#: ``data.HOLDOUT_FRACTION`` of the training data held out from training (the dev set stays untouched)
SELECT_ON = ("dev", "train_holdout")

#: The result-file format (``"schema"`` in every result). Schema 1 (files with no ``schema``): ``config.model``
#: null, meaning the packaged MiniLM, and a key hashing the RunConfig fields as spelled. Schema 2: the
#: resolved model and its fingerprint in the config, and ``RunConfig.key``'s recipe below.
RESULT_SCHEMA = 2

#: what the key calls the packaged MiniLM, wherever the package is installed (its path differs per machine)
PACKAGED_MODEL = "packaged:all-MiniLM-L6-v2"

#: RunConfig's fields in schema 1: ``legacy_key`` hashes exactly these, as the schema-1 key did
_SCHEMA1_FIELDS = (
    "task", "method", "seed", "scale", "model", "lr", "epochs", "batch_size", "grad_accum", "warmup_steps",
    "weight_decay", "max_grad_norm", "max_length", "limit_train", "limit_dev", "r", "lora_alpha", "lora_dropout",
    "target_modules", "layers", "kernel_size", "stride", "dcft_init", "impl", "orth_gamma", "update_ratio",
    "start_steps", "lora_scale_jump", "save_delta", "device",
)


def _canonical(v: Any) -> Any:
    """One spelling per value before hashing: 16.0 → 16 (bools stay bools), tuples → lists."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, (list, tuple)):
        return [_canonical(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _canonical(x) for k, x in v.items()}
    return v


def _sha12(d: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=None)
def model_fingerprint(model: str) -> Optional[str]:
    """A local model folder's fingerprint: 12 hex digits of the sha1 of its ``config.json`` (canonical JSON,
    without the ``_name_or_path`` / ``transformers_version`` bookkeeping). None for a hub id: its name is
    its identity (a fingerprint from the local cache would appear once the cache has it and change the key).
    """
    cfg = Path(model).expanduser() / "config.json"
    if not cfg.is_file():
        return None
    d = {k: v for k, v in json.loads(cfg.read_text()).items() if k not in ("_name_or_path", "transformers_version")}
    return _sha12(_canonical(d))


@dataclass
class RunConfig:
    """Everything that defines one training run (its hash keys the result file)."""

    task: str
    method: str
    seed: int = 0
    scale: str = "quick"
    model: Optional[str] = None  # None: $DCFT_EDU_MODEL or the packaged MiniLM; resolved when the config is made
    # optimisation
    lr: float = 1e-3
    epochs: int = 1
    batch_size: int = 16
    grad_accum: int = 1
    warmup_steps: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    max_length: int = 128
    limit_train: Optional[int] = None
    limit_dev: Optional[int] = None
    # adapters (PEFT names); which ones matter depends on the method
    r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    target_modules: Union[str, Sequence[str]] = "all-linear"
    layers: Optional[Sequence[int]] = None
    kernel_size: int = 8
    stride: Optional[int] = None
    dcft_init: str = "paper"
    dcft_init_std: float = 0.02  # std of DCFT's random factors (A, C; B too unless dcft_init="zero")
    impl: str = "fast"
    orth_gamma: float = 0.0
    update_ratio: float = 0.5
    start_steps: Optional[int] = None  # None: the task's K fraction × total optimizer steps
    lora_scale_jump: bool = False  # LoRA whose scale jumps to (1+λ)·s at step K (the Delta-LoRA twin, docs/method_notes.md §4)
    save_delta: Optional[str] = None  # a module-name suffix (e.g. "layer.0.attention.self.query"): keep its learned ΔW
    device: str = "auto"
    model_fingerprint: Optional[str] = None  # set from ``model`` (see ``model_fingerprint``)
    classifier_dropout: Optional[float] = None  # None: the model's own (MiniLM: 0.1)
    select_on: str = "dev"  # see SELECT_ON
    # generation (task "e2e" only): which MRs are scored, and how the text is decoded
    eval_split: Optional[str] = None  # "dev" or "test" (make_run: the E2E preset's)
    eval_mrs: Optional[int] = None  # distinct MRs scored, a fixed random sample (None: all)
    num_beams: int = 1  # 1: greedy
    max_new_tokens: int = 64
    generate_kw: dict = dataclasses.field(default_factory=dict)  # more model.generate arguments

    def __post_init__(self) -> None:
        from .data import canonical_task

        self.task = E2E_TASK if str(self.task).lower() == E2E_TASK else canonical_task(self.task)
        # the model actually trained, fixed now (a later $DCFT_EDU_MODEL / $DCFT_EDU_CAUSAL_LM cannot change it)
        self.model = self._resolved_model()
        self.model_fingerprint = model_fingerprint(self.model)
        for f in ("lr", "weight_decay", "max_grad_norm", "lora_alpha", "lora_dropout", "orth_gamma", "update_ratio"):
            if type(getattr(self, f)) is int:  # --set lora_alpha=16 is the 16.0 of the defaults
                setattr(self, f, float(getattr(self, f)))
        methods, scales = (E2E_METHODS, tuple(E2E_PRESETS)) if self.task == E2E_TASK else (METHODS, SCALES)
        if self.method not in methods:
            raise ValueError(f"unknown method {self.method!r} for task {self.task}: expected one of {', '.join(methods)}")
        if self.scale not in scales:
            raise ValueError(f"unknown scale {self.scale!r} for task {self.task}: expected one of {', '.join(scales)}")
        self._check_task_fields()
        if not isinstance(self.target_modules, str):
            self.target_modules = list(self.target_modules)
        if self.layers is not None:
            self.layers = list(self.layers)
        if self.stride is not None and self.stride == self.kernel_size:
            self.stride = None  # s = k is the default: one spelling, one key
        # every numeric field and the device checked here, once, before anything loads: the field, the value, the fix
        from .validate import check_fields, check_save_delta

        check_fields(self.to_dict())
        if self.select_on not in SELECT_ON:
            raise ValueError(f"select_on={self.select_on!r}: expected one of {', '.join(SELECT_ON)}")
        if self.classifier_dropout is not None and not 0.0 <= self.classifier_dropout < 1.0:
            raise ValueError(f"classifier_dropout={self.classifier_dropout}: must be in [0, 1), or None for the "
                             "model's own")
        self.adapter_config()  # validates the adapter fields now, with the config's clear messages
        check_save_delta(self.model, self.save_delta)  # the layer it names exists, once (read from the config)
        if self.method == "lokr":  # PEFT's LoKr has no config of ours: check its fields the same way
            from ..config import AdapterConfig

            AdapterConfig(r=self.r, lora_alpha=self.lora_alpha, target_modules=self.target_modules, layers=self.layers)
            if not (isinstance(self.kernel_size, int) and self.kernel_size >= 1):
                raise ValueError(f"kernel_size={self.kernel_size!r}: LoKr's decompose_factor must be an integer >= 1")

    def _resolved_model(self) -> str:
        """The model this run trains: a local path made absolute, the packaged model's id, or a hub id."""
        if self.task == E2E_TASK:
            from .causal_lm import causal_lm_id

            model = causal_lm_id(self.model)  # None: $DCFT_EDU_CAUSAL_LM, else the packaged SmolLM2's id
        else:
            from .models import resolve_model_name

            model = resolve_model_name(self.model)
        local = Path(model).expanduser()
        return str(local.resolve()) if local.exists() and not model.startswith("packaged:") else model

    def _check_task_fields(self) -> None:
        """A field only the other kind of task reads, set away from its default: an error, not silently unused."""
        fields = self.__dataclass_fields__
        other = GLUE_ONLY_FIELDS if self.task == E2E_TASK else E2E_ONLY_FIELDS
        set_ = [f for f in other if getattr(self, f) != _default(fields[f])]
        if set_:
            kind = "GLUE tasks" if self.task == E2E_TASK else "the e2e task (generation)"
            raise ValueError(f"task {self.task}: {', '.join(f'{f}={getattr(self, f)!r}' for f in set_)} "
                             f"applies to {kind} only and would be ignored; leave it at its default")
        if self.task == E2E_TASK and self.eval_split not in ("dev", "test"):
            raise ValueError(f"eval_split={self.eval_split!r}: E2E scores the 'dev' or the 'test' MRs "
                             "(make_run('e2e', ...) takes its scale's)")

    def adapter_config(self):
        """The adapter config this run asks for (None for full fine-tuning / head-only)."""
        from ..config import DCFTConfig, DeltaLoRAConfig, LoRAConfig

        common = dict(r=self.r, lora_alpha=self.lora_alpha, target_modules=self.target_modules, layers=self.layers)
        if self.method == "lora":
            return LoRAConfig(lora_dropout=self.lora_dropout, **common)
        if self.method == "dcft":
            return DCFTConfig(kernel_size=self.kernel_size, stride=self.stride, init=self.dcft_init,
                              init_std=self.dcft_init_std, impl=self.impl, **common)
        if self.method == "delta_lora":
            return DeltaLoRAConfig(update_ratio=self.update_ratio, start_steps=self.start_steps or 0,
                                   lora_dropout=self.lora_dropout, **common)
        return None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_id(self) -> str:
        """The model as the key names it: ``PACKAGED_MODEL`` for the packaged MiniLM (its path is per machine)."""
        if self.task == E2E_TASK:
            return self.model  # already machine-independent (``causal_lm.PACKAGED_CAUSAL_LM`` for the packaged one)
        from .models import default_model_path

        return PACKAGED_MODEL if self.model == str(Path(default_model_path()).resolve()) else self.model

    def key(self) -> str:
        """A short, stable hash of what is trained: one result file per key (schema 2).

        It hashes every RunConfig field but ``KEY_EXCLUDED`` (keeping a ΔW snapshot does not
        make a run look new), the model (``model_id``) and its ``model_fingerprint``, and the
        adapter config this run builds with all its defaults (``adapter_config().to_dict()``,
        e.g. DCFT's ``init_std``), numbers canonicalised (16 and 16.0 are one key).
        """
        d = {k: v for k, v in self.to_dict().items() if k not in KEY_EXCLUDED}
        if self.task != E2E_TASK:  # the generation fields (at their defaults) leave the GLUE keys as they were
            d = {k: v for k, v in d.items() if k not in E2E_ONLY_FIELDS}
        d["model"] = self.model_id()
        cfg = self.adapter_config()
        d["adapter"] = cfg.to_dict() if cfg is not None else None
        return _sha12(_canonical(d))

    def legacy_key(self) -> Optional[str]:
        """This run's key in schema-1 result files, or None if schema 1 could not have written it.

        Schema-1 files (the first committed results) were all trained on the packaged MiniLM
        and hashed the RunConfig fields of their time, with ``model`` null. Sweeps look for a
        result under both keys, so those files keep their identity without being rewritten
        (no churn in the committed results, and the figures read the very same files).
        """
        if self.task == E2E_TASK:
            return self._e2e_legacy_key()
        if self.model_id() != PACKAGED_MODEL:
            return None
        d = self.to_dict()
        fields = self.__dataclass_fields__
        if any(d[k] != _default(fields[k]) for k in d if k not in _SCHEMA1_FIELDS and k != "model_fingerprint"):
            return None  # a field added since schema 1, set: no schema-1 run had it
        d = {k: v for k, v in d.items() if k in _SCHEMA1_FIELDS and k not in KEY_EXCLUDED}
        d["model"] = None
        return _sha12(d)

    def _e2e_legacy_key(self) -> Optional[str]:
        """The key of the E2E result files written before E2E was a task of RunConfig (``figures/data/e2e``).

        They hashed the ``_E2E_SCHEMA1_FIELDS`` as spelled, ``model`` null for the default model, and
        ``dcft_init_std`` only when set away from 0.02. None if such a file could not have held this run.
        """
        from .causal_lm import PACKAGED_CAUSAL_LM

        d = self.to_dict()
        fields = self.__dataclass_fields__
        if any(d[k] != _default(fields[k]) for k in d
               if k not in _E2E_SCHEMA1_FIELDS and k not in ("task", "model_fingerprint")):
            return None  # a field E2E runs did not have then (grad_accum ...), set
        d = {k: d[k] for k in _E2E_SCHEMA1_FIELDS}
        d["model"] = None if self.model == PACKAGED_CAUSAL_LM else self.model
        if d["dcft_init_std"] == fields["dcft_init_std"].default:
            del d["dcft_init_std"]
        return _sha12(d)  # no canonicalisation, as then


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


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


def make_run(task: str, method: str, scale: str = "quick", seed: int = 0, **overrides: Any) -> RunConfig:
    """A RunConfig from a scale preset, the task recipe and the method's defaults; ``overrides`` win.

    Used in: notebooks 04, 07, 08, 10, 11, ``python -m dcft_edu.experiments.train``.
    """
    from .data import GLUE_TASKS, canonical_task

    if str(task).lower() == E2E_TASK:
        return make_e2e_run(method, scale, seed, **overrides)
    task = canonical_task(task)
    if scale not in PRESETS:
        raise ValueError(f"unknown scale {scale!r}: expected one of {', '.join(PRESETS)}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: expected one of {', '.join(METHODS)}")
    p, rec = PRESETS[scale], TASK_RECIPES[task]
    epochs, limit_train = p.epochs or rec.epochs, p.limit_train
    if p.sample_budget:
        n = GLUE_TASKS[task].num_rows["train"] if limit_train is None else min(limit_train, GLUE_TASKS[task].num_rows["train"])
        # epochs = min(recipe epochs, max(min_epochs, budget // n)); truncate n if even min_epochs overflow the budget
        epochs = min(epochs, max(p.min_epochs, p.sample_budget // n))
        if n * p.min_epochs > p.sample_budget:
            limit_train = p.sample_budget // p.min_epochs
    kw: dict[str, Any] = dict(
        lr=rec.lr,
        epochs=epochs,
        batch_size=p.batch_size,
        max_length=p.max_length or GLUE_TASKS[task].max_length,
        limit_train=limit_train,
        limit_dev=p.limit_dev,
        weight_decay=rec.weight_decay,
        orth_gamma=rec.orth_gamma if method == "dcft" else 0.0,
    )
    kw.update(METHOD_DEFAULTS[method])
    if p.official_task_settings:
        kw.update(max_length=rec.max_length, classifier_dropout=rec.classifier_dropout)
        if method in ("dcft", "lokr"):
            # official scale α/r with the subspace rank r = 1: lora_alpha = α_official / r_official
            kw.update(r=1, lora_alpha=rec.dcft_alpha / rec.dcft_r)
    start_frac = overrides.pop("start_frac", None)  # Delta-LoRA's K as a fraction of all optimizer steps
    lr_factor = overrides.pop("lr_factor", None)  # the learning rate as a multiple of the recipe's (or override's)
    kw.update(overrides)
    if lr_factor is not None:
        if not (isinstance(lr_factor, (int, float)) and lr_factor > 0):
            raise ValueError(f"lr_factor={lr_factor!r}: the learning rate's multiple must be a number > 0")
        kw["lr"] = kw["lr"] * lr_factor
    run = RunConfig(task=task, method=method, seed=seed, scale=scale, **kw)
    if start_frac is not None:
        if not 0.0 <= start_frac <= 1.0:
            raise ValueError(f"start_frac={start_frac}: K as a fraction of all optimizer steps must be in [0, 1]")
        run.start_steps = int(round(start_frac * total_optimizer_steps(run)))
    if "warmup_steps" not in overrides:
        steps = total_optimizer_steps(run)
        warm = rec.warmup if p.warmup_ratio is None else p.warmup_ratio
        if p.sample_budget and not isinstance(warm, float):
            # the recipe's warmup steps as a fraction of the recipe's own total steps (batch 32, full data)
            warm = warm / recipe_steps(task)
        run.warmup_steps = int(round(warm * steps)) if isinstance(warm, float) else min(int(warm), steps // 2)
    if method == "delta_lora" or run.lora_scale_jump:
        if run.start_steps is None:
            run.start_steps = int(round(rec.delta_start_frac * total_optimizer_steps(run)))
    return run


def make_e2e_run(method: str, scale: str = "quick", seed: int = 0, **overrides: Any) -> RunConfig:
    """An E2E run (``RunConfig(task="e2e")``) from an E2E scale preset, Delta-LoRA's E2E settings and the method's
    defaults; ``overrides`` win. ``make_run("e2e", ...)`` calls it.

    Warmup given as a fraction and Delta-LoRA's K (default: the paper's 500 of 26,290 steps, as a fraction, at
    the ``quick`` and ``cpu`` scales; 500 at ``gpu``; ``start_steps=`` overrides) scale with the run's steps.
    """
    if scale not in E2E_PRESETS:
        raise ValueError(f"unknown E2E scale {scale!r}: expected one of {', '.join(E2E_PRESETS)}")
    if method not in E2E_METHODS:
        raise ValueError(f"unknown E2E method {method!r}: expected one of {', '.join(E2E_METHODS)}")
    p = E2E_PRESETS[scale]
    kw: dict[str, Any] = dict(lr=p.lr, epochs=p.epochs, batch_size=p.batch_size, max_length=p.max_length,
                              limit_train=p.limit_train, eval_split=p.eval_split, eval_mrs=p.eval_mrs,
                              num_beams=p.num_beams, max_new_tokens=p.max_new_tokens, generate_kw=dict(p.generate_kw),
                              **E2E_RUN_DEFAULTS)
    if method == "full" and p.full_lr is not None:
        kw["lr"] = p.full_lr
    kw.update(E2E_METHOD_DEFAULTS[method])
    kw.update(overrides)
    run = RunConfig(task=E2E_TASK, method=method, seed=seed, scale=scale, **kw)
    steps = total_optimizer_steps(run)
    if "warmup_steps" not in overrides:
        w = p.warmup_steps
        run.warmup_steps = int(round(w * steps)) if isinstance(w, float) else min(w, steps // 2)
    if "start_steps" not in overrides:
        run.start_steps = int(round(PAPER_K_FRAC * steps)) if scale != "gpu" else 500
    return run


def gpu_deviations(method: str = "dcft") -> list[dict[str, Any]]:
    """Every RunConfig field where the ``gpu`` preset's run differs from the ``paper`` preset's, per task:
    ``{"task", "field", "gpu", "paper"}`` rows (the fields ``GPU_DEVIATIONS`` explains).
    """
    rows = []
    for task in TASK_RECIPES:
        gpu, paper = make_run(task, method, "gpu").to_dict(), make_run(task, method, "paper").to_dict()
        rows += [{"task": task, "field": k, "gpu": gpu[k], "paper": paper[k]}
                 for k in gpu if k != "scale" and gpu[k] != paper[k]]
    return rows


def recipe_steps(task: str, batch_size: int = 32) -> int:
    """Optimizer steps of the full official recipe (all training data, the recipe's epochs)."""
    from .data import GLUE_TASKS

    n = GLUE_TASKS[task].num_rows["train"]
    return -(-n // batch_size) * TASK_RECIPES[task].epochs


def train_size(run: RunConfig) -> int:
    """Training rows the run trains on (its ``limit_train``, less the held-out rows of ``select_on="train_holdout"``)."""
    from .data import GLUE_TASKS, holdout_size

    n = E2E_TRAIN_ROWS if run.task == E2E_TASK else GLUE_TASKS[run.task].num_rows["train"]
    n = min(n, run.limit_train) if run.limit_train else n
    return n - holdout_size(n) if run.select_on == "train_holdout" else n


def total_optimizer_steps(run: RunConfig) -> int:
    """Optimizer steps of the whole run (batches per epoch / grad_accum, rounded up, × epochs)."""
    batches = -(-train_size(run) // run.batch_size)
    return -(-batches // run.grad_accum) * run.epochs
