"""Run configurations: one plain dataclass per run (``RunConfig``), its key, and how a run is built from the data
of ``recipes`` (``make_run``: a scale preset, the task recipe and the method's defaults; ``make_e2e_run`` for the
E2E task). The data (scales, task recipes, method defaults, E2E's presets) lives in ``recipes`` and is re-exported
here under the same names.

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

# the data of a run (methods, scales, task recipes, presets, method defaults, E2E's): in ``recipes``, re-exported here
from .recipes import (E2E_METHOD_DEFAULTS, E2E_METHODS, E2E_PRESETS, E2E_RUN_DEFAULTS, E2E_TASK,  # noqa: F401
                      E2E_TRAIN_ROWS, GPU_DEVIATIONS, METHOD_DEFAULTS, METHODS, PAPER_K_FRAC, PRESETS, SCALES,
                      TASK_RECIPES, E2EPreset, Preset, TaskRecipe)

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

        self.task = E2E_TASK if str(self.task).strip().lower() == E2E_TASK else canonical_task(self.task)
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
        if self.task == E2E_TASK:
            if self.eval_split not in ("dev", "test"):
                raise ValueError(f"eval_split={self.eval_split!r}: E2E scores the 'dev' or the 'test' MRs "
                                 "(make_run('e2e', ...) takes its scale's)")
            _check_generate_kw(self.generate_kw)

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
        d = self._schema1_fields(_SCHEMA1_FIELDS, model=None)
        return None if d is None else _sha12(d)

    def _e2e_legacy_key(self) -> Optional[str]:
        """The key of the E2E result files written before E2E was a task of RunConfig (``figures/data/e2e``).

        They hashed the ``_E2E_SCHEMA1_FIELDS`` as spelled, ``model`` null for the default model, and
        ``dcft_init_std`` only when set away from 0.02. None if such a file could not have held this run.
        """
        from .causal_lm import PACKAGED_CAUSAL_LM

        d = self._schema1_fields(_E2E_SCHEMA1_FIELDS, model=None if self.model == PACKAGED_CAUSAL_LM else self.model)
        if d is None:
            return None
        if d["dcft_init_std"] == self.__dataclass_fields__["dcft_init_std"].default:
            del d["dcft_init_std"]
        return _sha12(d)

    def _schema1_fields(self, schema_fields: Sequence[str], model: Optional[str]) -> Optional[dict[str, Any]]:
        """What an older writer hashed for this run: ``schema_fields`` as spelled (no canonicalisation, as then), with
        ``model`` as it named it; None if a field it did not have is set away from its default (no such run then)."""
        d = self.to_dict()
        fields = self.__dataclass_fields__
        if any(d[k] != _default(fields[k]) for k in d if k not in schema_fields and k not in ("task", "model_fingerprint")):
            return None
        d = {k: d[k] for k in schema_fields if k not in KEY_EXCLUDED}
        d["model"] = model
        return d


#: what ``causal_lm.generate`` passes to ``model.generate`` itself (or the run's own fields set): not for ``generate_kw``
_GENERATE_OWN = ("input_ids", "attention_mask", "do_sample", "num_beams", "max_new_tokens", "pad_token_id",
                 "eos_token_id")


def _check_generate_kw(kw: Any) -> None:
    """``generate_kw``: a dict of ``transformers.GenerationConfig`` settings the run does not set already (checked
    now, not after training, when the generation would fail)."""
    if not isinstance(kw, dict) or not all(isinstance(k, str) for k in kw):
        raise ValueError(f"generate_kw={kw!r}: must be a dict of model.generate settings, e.g. "
                         "{'length_penalty': 0.9, 'no_repeat_ngram_size': 4}")
    own = sorted(set(kw) & set(_GENERATE_OWN))
    if own:
        raise ValueError(f"generate_kw sets {', '.join(own)}: the run sets these itself (num_beams and max_new_tokens "
                         "are its fields; decoding is greedy or beam search, never sampled)")
    from transformers import GenerationConfig

    settings = GenerationConfig()
    unknown = sorted(k for k in kw if not hasattr(settings, k))
    if unknown:
        raise ValueError(f"generate_kw: {', '.join(unknown)} is not a transformers.GenerationConfig setting "
                         "(e.g. length_penalty, no_repeat_ngram_size, repetition_penalty)")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def make_run(task: str, method: str, scale: str = "quick", seed: int = 0, **overrides: Any) -> RunConfig:
    """A RunConfig from a scale preset, the task recipe and the method's defaults; ``overrides`` win.

    Used in: notebooks 04, 07, 08, 10, 11, ``python -m dcft_edu.experiments.train``.
    """
    from .data import GLUE_TASKS, canonical_task

    if str(task).strip().lower() == E2E_TASK:
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
    start_frac, lr_factor = _pop_fractions(overrides)  # K as a fraction of all steps; lr × the recipe's (or override's)
    kw.update(overrides)
    if lr_factor is not None:
        kw["lr"] = kw["lr"] * lr_factor
    run = RunConfig(task=task, method=method, seed=seed, scale=scale, **kw)
    if start_frac is not None:
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
    start_frac, lr_factor = _pop_fractions(overrides)  # as make_run: K as a fraction of the steps, lr × a factor
    kw.update(overrides)
    if lr_factor is not None:
        kw["lr"] = kw["lr"] * lr_factor
    run = RunConfig(task=E2E_TASK, method=method, seed=seed, scale=scale, **kw)
    steps = total_optimizer_steps(run)
    if "warmup_steps" not in overrides:
        w = p.warmup_steps
        run.warmup_steps = int(round(w * steps)) if isinstance(w, float) else min(w, steps // 2)
    if start_frac is not None:
        run.start_steps = int(round(start_frac * steps))
    elif "start_steps" not in overrides:
        run.start_steps = int(round(PAPER_K_FRAC * steps)) if scale != "gpu" else 500
    return run


def _pop_fractions(overrides: dict[str, Any]) -> tuple[Optional[float], Optional[float]]:
    """``start_frac`` (Delta-LoRA's K as a fraction of all optimizer steps) and ``lr_factor`` (the learning rate
    as a multiple of the recipe's), taken out of ``overrides`` and checked."""
    start_frac, lr_factor = overrides.pop("start_frac", None), overrides.pop("lr_factor", None)
    if lr_factor is not None and not (isinstance(lr_factor, (int, float)) and lr_factor > 0):
        raise ValueError(f"lr_factor={lr_factor!r}: the learning rate's multiple must be a number > 0")
    if start_frac is not None and not (isinstance(start_frac, (int, float)) and 0.0 <= start_frac <= 1.0):
        raise ValueError(f"start_frac={start_frac}: K as a fraction of all optimizer steps must be in [0, 1]")
    return start_frac, lr_factor


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
