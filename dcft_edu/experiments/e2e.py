"""E2E NLG (Delta-LoRA's Tables 1, 7, 8): meaning representation → restaurant description, with a causal LM.

The task: given ``name[The Eagle], eatType[coffee shop], food[French], …``
write a sentence that says it. Training pairs are one (MR, reference) row of
``trainset.csv`` each (42,061 rows, 4,862 MRs); evaluation generates ONE text
per distinct MR and scores it against ALL the references of that MR (on
average 8.5 on dev), as the E2E challenge does.

Metrics (``e2e_scores``), in the units of the papers' tables:

- BLEU (0–100): ``sacrebleu.corpus_bleu``, multi-reference, 13a tokenization,
  case-sensitive (the challenge uses mteval-v13a with a variable number of references);
- NIST: ``nltk``'s ``corpus_nist`` (n = 5) on the same 13a tokens;
- ROUGE-L (×100): ``rouge-score``'s F1, the max over the MR's references,
  averaged over MRs. The challenge uses the MS-COCO ROUGE-L (β = 1.2, max
  precision and max recall taken separately), so ours reads a little differently;
- CIDEr: ``pycocoevalcap``'s CIDEr (as the challenge), on lower-cased 13a tokens,
  when ``pycocoevalcap`` is installed (the ``e2e`` extra);
- METEOR (×100): ``pycocoevalcap``'s METEOR 1.5 (as the challenge), which ships its
  jar and paraphrase table but runs in Java: only where ``java`` is on the PATH.
  (``nltk``'s METEOR needs WordNet, a separate download, so it is not used.)

An E2E run is a ``RunConfig`` of task ``"e2e"`` (``make_run("e2e", method, scale)``; the E2E scales and method
settings are data in ``recipes``): ``trainer.train`` hands it to ``train_e2e`` (the GLUE loop and wiring of ``fit``,
then generation and scores), and its result goes through the one result store (``store``), so a sweep grid may
hold ``"task": "e2e"`` like any GLUE task.

Scales (``E2E_PRESETS``): ``quick`` for CI, ``cpu`` (minutes per run on 2
cores, SmolLM2-135M), and ``gpu``: Delta-LoRA's recipe (GPT-2 Medium, r 4, α 32,
λ 2, K 500, lr 2e-4, batch 8, 5 epochs, wd 0.01, warmup 500, linear schedule;
docs/method_notes.md §4) with LoRA's E2E decoding (beam 10, length penalty 0.9, no repeated 4-grams) on the test MRs.

CLI: ``python -m dcft_edu.experiments.e2e --scale cpu --methods lora delta_lora dcft --seeds 0`` (into
``results/e2e``; ``--out figures/data/e2e`` regenerates the committed results).

Used by: ``tests/test_e2e.py``; its committed results are ``figures/data/e2e/``.
"""
from __future__ import annotations

import argparse
import copy
import functools
import math
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch
from torch.utils.data import DataLoader
from transformers import set_seed

from .causal_lm import (PACKAGED_CAUSAL_LM, RightPadCollator, encode_pair, generate, load_causal_lm,
                        resolve_causal_lm_name)
# an E2E run is a RunConfig of task "e2e"; its scales and method settings are data, with the GLUE recipes
# (make_e2e_run is make_run("e2e", ...): an E2E run is built where every run is)
from .presets import E2E_TASK, RESULT_SCHEMA, RunConfig, make_e2e_run
from .recipes import E2E_METHOD_DEFAULTS, E2E_METHODS, E2E_PRESETS
from .runinfo import RESULTS_ENV, peak_memory_mb, provenance, resolve_device, user_results_dir, writable_dir
from .fit import autocast_for, fit_epoch, prepare, prepare_model
#: the scores of a result, in the papers' order and units (BLEU, METEOR and ROUGE-L ×100; NIST and CIDEr as they are)
E2E_METRICS = ("bleu", "nist", "meteor", "rouge_l", "cider")


def e2e_prompt(mr: str) -> str:
    """The prompt for one meaning representation (LoRA's E2E format: ``mr || ref``)."""
    return f"{mr} ||"


def group_by_mr(mrs: Sequence[str], refs: Sequence[str]) -> tuple[list[str], list[list[str]]]:
    """``(distinct MRs in first-seen order, their references)``: the unit the challenge scores."""
    groups: dict[str, list[str]] = {}
    for mr, ref in zip(mrs, refs):
        groups.setdefault(mr, []).append(ref)
    return list(groups), list(groups.values())


# ---- metrics -------------------------------------------------------------------

def _tokens(text: str, lower: bool = False) -> list[str]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()(text.lower() if lower else text).split()


def e2e_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]], meteor: Optional[bool] = None) -> dict[str, Any]:
    """BLEU, NIST, ROUGE-L, CIDEr and METEOR of one hypothesis per MR against that MR's references.

    ``meteor=None`` runs METEOR when Java is found; metrics that cannot run are
    listed with the reason under ``"missing"``. Units as in the papers' tables.
    """
    import sacrebleu
    from nltk.translate.nist_score import corpus_nist
    from rouge_score import rouge_scorer

    if len(hyps) != len(refs) or any(len(r) == 0 for r in refs):
        raise ValueError(f"e2e_scores: {len(hyps)} hypotheses for {len(refs)} reference lists (each non-empty); "
                         "pass one hypothesis per MR and that MR's references (group_by_mr)")
    n_refs = max(map(len, refs))
    # sacrebleu takes reference streams: stream j holds every MR's j-th reference (None where an MR has fewer)
    streams = [[r[j] if j < len(r) else None for r in refs] for j in range(n_refs)]
    out: dict[str, Any] = {"bleu": sacrebleu.corpus_bleu(list(hyps), streams).score}
    try:
        out["nist"] = corpus_nist([[_tokens(x) for x in r] for r in refs], [_tokens(h) for h in hyps], n=5)
    except ZeroDivisionError:  # nltk divides by the count of hypothesis 5-grams: none when every text is short
        out["nist"] = 0.0
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    # ROUGE-L_F = max over references of the LCS F1, averaged over MRs
    out["rouge_l"] = 100 * sum(scorer.score_multi(list(r), h)["rougeL"].fmeasure for h, r in zip(hyps, refs)) / len(hyps)
    missing = {}
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        Cider = None
        missing["cider"] = missing["meteor"] = "pycocoevalcap not installed (pip install -e '.[e2e]')"
    if Cider is not None:
        gts = {i: [" ".join(_tokens(x, lower=True)) for x in r] for i, r in enumerate(refs)}
        res = {i: [" ".join(_tokens(h, lower=True))] for i, h in enumerate(hyps)}
        out["cider"] = float(Cider().compute_score(gts, res)[0])
        java = shutil.which("java") is not None
        if meteor is None:
            meteor = java
        if meteor and java:
            from pycocoevalcap.meteor.meteor import Meteor

            out["meteor"] = 100 * float(Meteor().compute_score(gts, res)[0])
        else:
            missing["meteor"] = "no java on the PATH (METEOR 1.5 is a Java program)" if not java else "meteor=False"
    out["missing"] = missing
    out["num_mrs"] = len(hyps)
    return out


# ---- runs ------------------------------------------------------------------------

def _sample(n: int, k: Optional[int]) -> list[int]:
    """A fixed random sample of ``k`` of ``range(n)`` (seed 0, whatever the run's seed), in order."""
    if k is None or k >= n:
        return list(range(n))
    return sorted(random.Random(0).sample(range(n), k))


def e2e_data(run: RunConfig, root=None) -> tuple[list[tuple[str, str]], list[str], list[list[str]]]:
    """``(train (mr, ref) pairs, eval MRs, their references)``: fixed samples, the same for every method and seed."""
    from .data import load_e2e

    train = load_e2e("train", root=root)
    pairs = [(train[i]["mr"], train[i]["ref"]) for i in _sample(len(train), run.limit_train)]
    ev = load_e2e(run.eval_split, root=root)
    mrs, refs = group_by_mr(ev["mr"], ev["ref"])
    keep = _sample(len(mrs), run.eval_mrs)
    return pairs, [mrs[i] for i in keep], [refs[i] for i in keep]


def evaluate_e2e(model, tokenizer, run: RunConfig, mrs: Sequence[str], refs: Sequence[Sequence[str]],
                 meteor: Optional[bool] = None) -> tuple[dict[str, Any], list[str]]:
    """``(scores, generations)``: one generation per MR (``run``'s decoding), scored with ``e2e_scores``."""
    t0 = time.perf_counter()
    hyps = generate(model, tokenizer, [e2e_prompt(m) for m in mrs], num_beams=run.num_beams,
                    max_new_tokens=run.max_new_tokens, **run.generate_kw)
    gen_s = time.perf_counter() - t0
    scores = e2e_scores(hyps, refs, meteor=meteor)
    scores["generate_time_s"] = gen_s
    return scores, hyps


def train_e2e(run: RunConfig, model_and_tokenizer=None, root=None, log: Callable[[str], Any] = print,
              eval_at_start: bool = False, meteor: Optional[bool] = None,
              model_name: Optional[str] = None, data=None, progress: Optional[Callable[[int], Any]] = None
              ) -> dict[str, Any]:
    """Fine-tune a causal LM on E2E as ``run`` (task ``"e2e"``) says, generate for the eval MRs, score; return the
    record. ``trainer.train`` calls it for an E2E run, so sweeps and the CLIs train E2E like any task.

    ``model_and_tokenizer``: an already-loaded pair (it is changed in place;
    pass a ``copy.deepcopy`` to keep the original), recorded as ``model_name``. The loop is the GLUE
    trainer's (``fit.prepare`` and ``fit.fit_epoch``): AdamW (no decay on biases and norms), linear warmup and
    decay, gradient accumulation and clipping, the divergence guard, Delta-LoRA's W update after each optimizer
    step, DCFT's γ · orthogonal penalty. ``data``: ``(train pairs, eval MRs, their references)`` to use instead
    of ``e2e_data(run, root)`` (e.g. rows taken from a committed result, where the E2E files are absent).
    ``progress``: called with 1 after every training batch.
    """
    if run.task != E2E_TASK:
        raise ValueError(f"train_e2e: a run of task {run.task!r}; an E2E run is make_run('e2e', method, scale)")
    t_start = time.perf_counter()
    if model_name is None:  # what the record names: the file or hub id loaded (an already-loaded model: the run's id)
        model_name = run.model if model_and_tokenizer is not None else resolve_causal_lm_name(run.model)
    set_seed(run.seed)
    device = resolve_device(run.device)
    model, tokenizer = model_and_tokenizer or load_causal_lm(run.model)
    pairs, mrs, refs = data if data is not None else e2e_data(run, root)
    initial = evaluate_e2e(model.to(device), tokenizer, run, mrs, refs, meteor)[0] if eval_at_start else None
    model = prepare_model(model, run).to(device)
    rows = [encode_pair(tokenizer, e2e_prompt(mr), " " + ref, run.max_length) for mr, ref in pairs]
    loader = DataLoader(rows, batch_size=run.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(run.seed), collate_fn=RightPadCollator(tokenizer.pad_token_id))
    total = -(-len(loader) // run.grad_accum) * run.epochs  # optimizer steps (the loader's, so ``data=`` too)
    wiring = prepare(model, run, total)  # the GLUE trainer's: optimizer, schedule, γ·R, Delta-LoRA's W update
    autocast = autocast_for(device)

    def on_step(step: int, task_loss: float) -> None:
        if step % 50 == 0:
            log(f"[e2e {run.method} seed={run.seed}] step {step}/{total}  task loss={task_loss:.4f}  "
                f"({time.perf_counter() - t0:.0f} s)")

    # the task loss alone, per optimizer step, for every method (the penalty is not in it)
    losses, step, diverged, t0 = [], 0, None, time.perf_counter()
    for epoch in range(run.epochs):
        model.train()
        ep = fit_epoch(model, model, loader, wiring, epoch=epoch + 1, step=step, grad_accum=run.grad_accum,
                       max_grad_norm=run.max_grad_norm, device=device, autocast=autocast, on_step=on_step,
                       on_batch=progress)
        step, diverged = ep.step, ep.diverged
        losses += ep.batch_losses
        if diverged:
            log(f"[e2e {run.method} seed={run.seed}] diverged at epoch {epoch + 1}, optimizer step "
                f"{diverged['step']}: {diverged['what']}; stopped (lower the learning rate, now {run.lr:g})")
            break
        log(f"[e2e {run.method} seed={run.seed}] epoch {epoch + 1}/{run.epochs}  step {step}/{total}  "
            f"train_loss(last 20)={sum(losses[-20:]) / len(losses[-20:]):.4f}")
    train_s = time.perf_counter() - t0
    scores, hyps = (None, []) if diverged else evaluate_e2e(model, tokenizer, run, mrs, refs, meteor)
    if scores is not None:
        log(f"[e2e {run.method} seed={run.seed}] " + "  ".join(
            f"{k}={scores[k]:.2f}" for k in ("bleu", "nist", "meteor", "rouge_l", "cider") if k in scores))
    from ..inject import count_adapter_parameters, count_trainable_parameters

    peak, peak_kind = peak_memory_mb(device)
    return {
        "schema": RESULT_SCHEMA,
        "key": run.key(),
        "config": run.to_dict(),
        "task": "e2e",
        "method": run.method,
        "model_name": model_name,
        "main_metric": "bleu",
        "best_metric": None if scores is None else scores["bleu"],
        "scores": scores,  # None for a diverged run: no generation from NaN weights, not a result
        "initial": initial,
        "train_loss_curve": losses,
        "status": "diverged" if diverged else "ok",
        "diverged_at": diverged,  # {"epoch", "step" (from 1), "what"}: the first non-finite loss or gradient norm
        "optimizer_steps": step,
        "train_examples": len(rows),
        "adapter_params": count_adapter_parameters(model) if run.method != "full" else 0,
        "trainable_params": count_trainable_parameters(model),
        "train_time_s": train_s,
        "samples_per_s": len(rows) * run.epochs / train_s if train_s > 0 else math.nan,
        "wall_time_s": time.perf_counter() - t_start,
        "peak_memory_mb": peak,
        "peak_memory_kind": peak_kind,
        "generations": [{"mr": m, "hyp": h, "refs": r} for m, h, r in zip(mrs, hyps, refs)],
        **provenance(device, run.scale, run.seed),
    }


def load_e2e_results(folder: Union[str, Path, None] = None) -> "pd.DataFrame":  # noqa: F821
    """The E2E result files of ``folder`` (default: the committed ``figures/data/e2e``), one row per run:
    ``method``, ``seed``, ``scale``, ``λ`` (Delta-LoRA's ``update_ratio``, NaN otherwise), ``K``
    (``start_steps``), the scores (``bleu``, ``nist``, ``meteor``, ``rouge_l``, ``cider``; NaN where not
    computed), the base model's before fine-tuning (``initial_*``, where recorded), ``adapter_params``,
    ``train_time_s``, ``device`` and ``file``; ``lora_alpha`` and ``lr`` as run, and ``recipe``: True
    where every setting but λ and K is the method's default at its scale (``make_e2e_run``), False for a
    variant such as LoRA with a larger α. A file that is not valid JSON stops with its path.

    Taught in: ``16_e2e_generation``.
    """
    import pandas as pd

    from .runinfo import committed_results_dir
    from .store import read_result

    folder = Path(folder) if folder is not None else committed_results_dir() / "e2e"
    rows = []
    for f in sorted(folder.glob("*.json")):
        try:
            r = read_result(f)
        except ValueError as e:
            raise ValueError(f"{e}; move it aside and rerun its run") from e
        if r.get("task") != E2E_TASK:  # a GLUE run's result in the same folder (a sweep may hold both)
            continue
        if r.get("status") == "diverged":  # its failure is on record, but it has no scores: not a result
            continue
        c = r["config"]
        lk = {k: c[k] for k in ("update_ratio", "start_steps") if r["method"] == "delta_lora"}
        # a config without a model is a legacy file's, trained on the packaged SmolLM2
        default = make_e2e_run(r["method"], c["scale"], c["seed"], model=c["model"] or PACKAGED_CAUSAL_LM, **lk)
        recipe = r["key"] in (default.key(), default.legacy_key())
        row = {"method": r["method"], "seed": c["seed"], "scale": c["scale"], "recipe": recipe,
               "lora_alpha": c["lora_alpha"] if r["method"] != "full" else float("nan"), "lr": c["lr"],
               "λ": c["update_ratio"] if r["method"] == "delta_lora" else float("nan"),
               "K": c["start_steps"] if r["method"] == "delta_lora" else float("nan"),
               "adapter_params": r["adapter_params"], "train_time_s": r["train_time_s"], "device": r["device"],
               "num_mrs": r["scores"]["num_mrs"], "file": str(f)}
        for m in E2E_METRICS:
            row[m] = r["scores"].get(m, float("nan"))
            row[f"initial_{m}"] = (r.get("initial") or {}).get(m, float("nan"))
        rows.append(row)
    return pd.DataFrame(rows)


def split_e2e_runs(runs: "pd.DataFrame") -> dict[str, "pd.DataFrame"]:  # noqa: F821
    """The rows of ``load_e2e_results`` by the question they answer:

    - ``table1``: every method at its recipe (Delta-LoRA at λ 2 and the scale's default K): Table 1's analogue;
    - ``lambda``: recipe Delta-LoRA at the scale's default K, every λ (Table 7);
    - ``twins``: LoRA with α × (1 + λ), the forward of Delta-LoRA with λ at K = 0 (docs/e2e_protocol.md),
      with ``λ`` filled in from α;
    - ``start_step``: recipe Delta-LoRA at the λ that has runs with another K, every K (Table 8).

    Taught in: ``16_e2e_generation``.
    """
    import pandas as pd

    rec = runs[runs["recipe"]]
    delta = rec[rec["method"] == "delta_lora"]
    default_k = delta["scale"].map({s: make_e2e_run("delta_lora", s).start_steps for s in set(delta["scale"])})
    at_k = delta[delta["K"] == default_k]
    other_k = delta[delta["K"] != default_k]
    lora_alpha = E2E_METHOD_DEFAULTS["lora"]["lora_alpha"]
    twins = runs[(runs["method"] == "lora") & ~runs["recipe"]].copy()
    # a twin has α′ = (1 + λ)·α  ⇒  λ = α′ / α − 1
    twins["λ"] = twins["lora_alpha"] / lora_alpha - 1
    return {
        "table1": pd.concat([rec[rec["method"] != "delta_lora"],
                             at_k[at_k["λ"] == E2E_METHOD_DEFAULTS["delta_lora"]["update_ratio"]]]),
        "lambda": at_k,
        "twins": twins,
        "start_step": delta[delta["λ"].isin(set(other_k["λ"]))],
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Train and score E2E runs; one JSON per run under ``--out`` (skipped if it exists). Returns the exit status:
    1 if a run diverged (its record is kept, marked), 0 otherwise."""
    from .helptext import DefaultsHelpFormatter

    ap = argparse.ArgumentParser(prog="python -m dcft_edu.experiments.e2e", description=__doc__.split("\n")[0],
                                 formatter_class=DefaultsHelpFormatter)
    ap.add_argument("--scale", default="cpu", choices=list(E2E_PRESETS),
                    help="quick: CI, 32 training rows, 4 dev MRs; cpu: 160 training rows once, 50 dev MRs greedy, "
                         "minutes per run on a CPU; gpu: Delta-LoRA's E2E recipe (all training rows, 5 epochs) with "
                         "LoRA's beam search on the 630 test MRs")
    ap.add_argument("--methods", nargs="+", default=["lora", "delta_lora", "dcft"], choices=list(E2E_METHODS),
                    help="methods to train")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0], help="random seeds")
    ap.add_argument("--model", default=None, help="hub id, folder or .gguf (default: $DCFT_EDU_CAUSAL_LM or SmolLM2-135M)")
    ap.add_argument("--update-ratios", nargs="+", type=float, default=None, help="Delta-LoRA λ values (default 2)")
    ap.add_argument("--start-steps", nargs="+", type=int, default=None, help="Delta-LoRA K values (default: paper's fraction)")
    ap.add_argument("--lr", type=float, default=None, help="learning rate for every run (default: the scale's)")
    ap.add_argument("--lora-alpha", type=float, default=None, help="α for every adapter run (default: the method's)")
    ap.add_argument("--no-meteor", action="store_true", help="skip METEOR (Java)")
    ap.add_argument("--eval-at-start", action="store_true", help="also score the model before fine-tuning")
    ap.add_argument("--out", type=Path, default=user_results_dir() / "e2e",
                    help=f"where each run's JSON goes: ${RESULTS_ENV}/e2e or results/e2e, git-ignored "
                         "(the committed results: --out figures/data/e2e)")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    args = ap.parse_args(argv)
    from .cli import RunFailed
    from .validate import check_device

    try:
        check_device(args.device)
        out = writable_dir(args.out, "--out")  # now, not after the first run
        common = {k: v for k, v in (("lr", args.lr), ("lora_alpha", args.lora_alpha)) if v is not None}
        runs = []
        for seed in args.seeds:
            for method in args.methods:
                if method == "delta_lora":
                    for lam in args.update_ratios or [None]:
                        for k in args.start_steps or [None]:
                            extra = {k_: v for k_, v in (("update_ratio", lam), ("start_steps", k)) if v is not None}
                            runs.append(make_e2e_run(method, args.scale, seed, model=args.model, device=args.device,
                                                     **extra, **common))
                else:
                    runs.append(make_e2e_run(method, args.scale, seed, model=args.model, device=args.device, **common))
    except ValueError as e:
        ap.error(str(e))
    base = functools.lru_cache(maxsize=1)(lambda: load_causal_lm(args.model))  # loaded once, if a run trains
    failed = []
    for run in runs:
        try:
            train_and_save(run, out, base, meteor=False if args.no_meteor else None, eval_at_start=args.eval_at_start)
        except RunFailed as e:  # one diverged run does not stop the others; listed at the end
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed.append(run)
    if failed:
        print(f"{len(failed)} of {len(runs)} E2E runs failed (above); the others are in {out}", file=sys.stderr)
        return 1
    return 0


def train_and_save(run: RunConfig, out: Union[str, Path], base=None, log: Callable[[str], Any] = print,
                   **kwargs: Any) -> Path:
    """Train ``run`` (``train_e2e``) on a copy of ``base`` = ``(model, tokenizer)``, or of what ``base()`` returns
    (a callable: loaded only if the run is not done yet), default ``load_causal_lm(run.model)``,
    and write its record through the result store (``store.save_result``: ``out/e2e-<method>-s<seed>-<key>.json``,
    atomically); a finished result already there (under its key or its legacy key) is kept and not retrained, a
    bad one moved aside. ``kwargs`` go to ``train_e2e`` (``data``, ``meteor``, ``eval_at_start``, ...).
    Returns the path. (A sweep of task ``"e2e"`` does the same through ``trainer.train``.)

    Taught in: ``16_e2e_generation``.
    """
    from .store import find_done, read_result, save_result

    out = Path(out)
    done = find_done(out.parent, out.name, run, log)
    if done is not None:
        rec = read_result(done)
        if rec.get("status") == "diverged":
            raise _diverged(run, done, rec["diverged_at"])
        log(f"skip {done} (exists)")
        return done
    if base is None or callable(base):  # the run's own model, loaded only now that it trains (a callable: shared)
        base = base() if callable(base) else load_causal_lm(run.model)
        kwargs.setdefault("model_name", resolve_causal_lm_name(run.model))
    result = train_e2e(run, model_and_tokenizer=(copy.deepcopy(base[0]), base[1]), log=log, **kwargs)
    path = save_result(out.parent, out.name, run, result)  # a diverged run too, marked: its failure is on record
    if result["status"] == "diverged":
        raise _diverged(run, path, result["diverged_at"])
    log(f"wrote {path}  ({result['wall_time_s']:.0f} s)")
    return path


def _diverged(run: RunConfig, path: Path, at: dict) -> Exception:
    from .cli import RunFailed

    return RunFailed(f"E2E {run.method} seed={run.seed} diverged at epoch {at['epoch']}, step {at['step']} "
                     f"({at['what']}) with lr={run.lr:g}: no scores; marked diverged in {path} (delete it to retry). "
                     f"Lower the learning rate (e.g. --lr {run.lr / 10:g})")


if __name__ == "__main__":
    from .cli import run_cli

    raise SystemExit(run_cli(main))
