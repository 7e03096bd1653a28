"""Bit-identity check for engine refactors: one short run per method, every number recorded exactly.

``python scripts/bit_identity.py record OUT.json`` writes the baseline; ``python scripts/bit_identity.py check
OUT.json`` reruns and compares (exit 1 on any difference, naming the run and the field). What is recorded:

- GLUE (RTE, the shipped sample ``tests/data/glue_sample``, 24 training rows, batch 8): full, head, lora, dcft
  (γ > 0), delta_lora (K = 1), lokr, the LoRA twin (``lora_scale_jump``, K = 1) and delta_lora with
  ``grad_accum=2``: every epoch record, the best/final metrics, the weight similarity, parameter counts, and a
  sha1 of the trained model's state dict (bytes);
- E2E (the tiny random Llama of the tests, 8 pairs, batch 8): full, lora, dcft, delta_lora: the loss curve,
  the scores, the generations and a state-dict sha1;
- bench train (two steps on the first RTE batches): a state-dict sha1 per method (lora, dcft_fast, delta_lora);
- probe (``first_step_probe`` on RTE, dcft and lora): its row.

Timings, dates and provenance are left out (they differ run to run). Compare on the same machine and torch.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("DCFT_EDU_DATA", str(ROOT / "tests" / "data" / "glue_sample"))
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

torch.set_num_threads(1)  # one thread: sums in one order, the same bits every time

GLUE_RUNS = {
    "full": ("full", {}),
    "head": ("head", {}),
    "lora": ("lora", {}),
    "dcft": ("dcft", {"orth_gamma": 0.1}),
    "delta_lora": ("delta_lora", {"start_steps": 1}),
    "lokr": ("lokr", {}),
    "twin": ("lora", {"lora_scale_jump": True, "start_steps": 1, "update_ratio": 0.5}),
    "delta_lora_accum": ("delta_lora", {"start_steps": 0, "grad_accum": 2}),
}
DROP = {"train_time_s", "samples_per_s", "wall_time_s", "peak_memory_mb", "peak_memory_kind", "date", "git_commit",
        "git_dirty", "versions", "device", "host", "hostname", "python", "platform", "generate_time_s", "config",
        "timing_env", "cpu", "torch_threads", "timestamp"}


def state_sha(model: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def exact(v):
    """JSON-ready with exact floats (float.hex), NaN/inf spelled."""
    if isinstance(v, float):
        return v.hex() if math.isfinite(v) else repr(v)
    if isinstance(v, dict):
        return {str(k): exact(x) for k, x in v.items() if k not in DROP}
    if isinstance(v, (list, tuple)):
        return [exact(x) for x in v]
    if isinstance(v, torch.Tensor):
        return exact(v.tolist())
    return v


def glue() -> dict:
    from dcft_edu.experiments.presets import make_run
    from dcft_edu.experiments.trainer import train

    out = {}
    for name, (method, kw) in GLUE_RUNS.items():
        run = make_run("rte", method, scale="quick", limit_train=24, limit_dev=16, batch_size=8, epochs=2, **kw)
        res = train(run, progress=False, log=lambda m: None)
        model = res.pop("_model")
        rec = {k: v for k, v in res.items() if not k.startswith("_")}
        rec["state_sha1"] = state_sha(model)
        out[name] = exact(rec)
        print(f"glue {name}: {res['status']} best={res['best_metric']}", flush=True)
    return out


def e2e() -> dict:
    from dcft_edu.experiments import e2e as e2e_mod
    from dcft_edu.experiments.causal_lm import tiny_causal_lm

    pairs = [("name[x], food[French] ||", " x serves French food."), ("name[y] ||", " y is a pub.")] * 4
    data = (pairs, ["name[x], food[French]", "name[y]"], [["x serves French food."], ["y is a pub.", "A pub: y."]])
    out = {}
    for method in ("full", "lora", "dcft", "delta_lora"):
        run = e2e_mod.make_e2e_run(method, "quick", 0, max_new_tokens=4, lr=1e-2, start_steps=0, epochs=2,
                                   **({"kernel_size": 4} if method == "dcft" else {}))
        model, tok = tiny_causal_lm()
        res = e2e_mod.train_e2e(run, model_and_tokenizer=(model, tok), log=lambda s: None, meteor=False,
                                model_name="tiny", data=data)
        rec = dict(res)
        # E2E runs are RunConfigs since issue 27: the key recorded before is now their legacy_key (the committed
        # E2E files keep it); the schema-2 key is a new field
        rec["key"], rec["key_schema2"] = run.legacy_key(), run.key()
        rec["state_sha1"] = state_sha(model)
        out[method] = exact(rec)
        print(f"e2e {method}: loss {res['train_loss_curve']}", flush=True)
    return out


def bench() -> dict:
    from dcft_edu.experiments import bench_train

    device = torch.device("cpu")
    data = bench_train.batches("rte", 2, 4, 32, device)
    out = {}
    for m in ("lora", "dcft_fast", "delta_lora"):
        model, opt = bench_train.build(m, "rte", 0, device)
        bench_train.train_steps(model, opt, data)
        out[m] = state_sha(model)
        print(f"bench {m}: {out[m]}", flush=True)
    return out


def probe() -> dict:
    from dcft_edu.experiments.probe import first_step_probe

    return {m: exact(first_step_probe("rte", m, scale="quick", batch_size=8)) for m in ("dcft", "lora")}


def collect() -> dict:
    return {"glue": glue(), "e2e": e2e(), "bench": bench(), "probe": probe()}


ADDED: list = []


def diff(a, b, where=""):
    if type(a) is not type(b):
        return [f"{where}: {a!r} != {b!r}"]
    if isinstance(a, dict):
        # a key only in this run is a new field (reported, not a difference); one the baseline has must stay
        ADDED.extend(f"{where}.{k}" for k in set(b) - set(a))
        out = [f"{where}.{k}: only in the baseline" for k in set(a) - set(b)]
        for k in sorted(set(a) & set(b)):
            out += diff(a[k], b[k], f"{where}.{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} != {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} != {b!r}"]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("record", "check"):
        print("usage: python scripts/bit_identity.py record|check BASELINE.json", file=sys.stderr)
        return 2
    mode, path = argv[0], Path(argv[1])
    got = collect()
    if mode == "record":
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(got, indent=1, sort_keys=True))
        tmp.replace(path)
        print(f"wrote {path}")
        return 0
    base = json.loads(path.read_text())
    got = json.loads(json.dumps(got, sort_keys=True))
    bad = diff(base, got)
    if ADDED:
        print(f"new fields (not in the baseline, not compared): {', '.join(sorted(ADDED))}")
    for line in bad[:60]:
        print("DIFF", line)
    print("BIT-IDENTICAL" if not bad else f"{len(bad)} differences")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
