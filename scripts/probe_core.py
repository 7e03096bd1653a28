"""Probe the teaching core as a careless or unlucky user would: does bad input get a clear error?

    PYTHONPATH=$PWD python scripts/probe_core.py            # one line per case, then the counts
    PYTHONPATH=$PWD python scripts/probe_core.py --verbose  # with each message

Each case tries one thing on tiny random models and is put in one class:

- ``bad`` cases (input that must be refused, or a repeat that must not count twice):
  OK (refused, the message names the expected words; or a repeat that was a no-op),
  SILENT (no error, no warning: a wrong result or lost work), UNCLEAR (an error whose message does
  not name the problem, e.g. a raw KeyError).
- ``good`` cases (what must keep working next to the new checks): OK, or BROKEN (it raised).

Used for issue 29's before/after counts (run it against an older checkout with PYTHONPATH pointing there;
the ``good`` cases that use keywords added since count as BROKEN on the old code).
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import warnings
from pathlib import Path

import torch
from torch import nn

from dcft_edu import (
    DCFTConfig,
    DeltaLoRAConfig,
    LoRAConfig,
    adapter_layers,
    apply_exported_lora,
    export_delta_lora,
    export_peft,
    inject_adapters,
    load_adapters,
    merge_adapters,
    original_weights,
    register_delta_lora_hook,
    save_adapters,
)
from dcft_edu.delta_lora import delta_lora_layers
from dcft_edu.lora import LoRALinear
from dcft_edu.experiments.models import tiny_config, tiny_model

CASES: list[tuple[str, str, tuple[str, ...], object]] = []  # (kind, name, expected words, function)


def case(kind: str, name: str, *expect: str):
    def register(fn):
        CASES.append((kind, name, expect, fn))
        return fn

    return register


def bert(seed: int = 0, **kw) -> nn.Module:
    torch.manual_seed(seed)
    return tiny_model("bert", **kw).eval()


def perturb(model, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            for p in layer.adapter_parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))


def batch() -> dict:
    ids = torch.randint(3, 90, (3, 7), generator=torch.Generator().manual_seed(1))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch()).logits


def saved(tmp: Path, config=None, name: str = "ad") -> Path:
    model = inject_adapters(bert(), config or LoRAConfig(r=2, lora_alpha=8))
    perturb(model)
    save_adapters(model, tmp / name)
    return tmp / name


def edit_json(folder: Path, edit) -> None:
    path = folder / "adapter_config.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def corrupt_finite(path: Path) -> None:
    """Overwrite tensor bytes with 0x3C: finite float32 values (≈0.0115), not a NaN pattern."""
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    raw[start + 64: start + 512] = b"\x3c" * 448
    path.write_bytes(bytes(raw))


def trained_delta_lora(steps: int = 3, K: int = 1):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2, lora_alpha=8, update_ratio=0.5, start_steps=K))
    for t in range(steps):
        perturb(model, seed=10 + t)
        for _, layer in delta_lora_layers(model):
            layer.delta_step()
    return model


def one_step(model, opt) -> None:
    model.train()
    loss = model(**batch(), labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    opt.step()
    opt.zero_grad()


# ------------------------------------------------------------------------ names that match nothing
@case("bad", "target_modules partly misspelt", "valeu")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(target_modules=("query", "valeu")))


@case("bad", "target_modules ['all-linear', 'key']", "all-linear")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(target_modules=["all-linear", "key"]))


@case("bad", "target_modules regex that matches nothing", "re:.*nomatch")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(target_modules=("query", "re:.*nomatch")))


@case("bad", "target_modules entry only inside a head", "pooler.dense", "modules_to_save")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(target_modules=("query", "pooler.dense")))


@case("bad", "target_modules entry names a non-linear module", "'attention'")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(target_modules=("query", "attention")))


@case("bad", "target_modules entry outside the chosen layers", "encoder.layer.0.attention.self.value", "layers")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(target_modules=("query", "encoder.layer.0.attention.self.value"), layers=[1]))


@case("bad", "modules_to_save partly misspelt", "poolr")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(modules_to_save=("classifier", "poolr")))


@case("bad", "modules_to_save all misspelt (head stays random and frozen)", "clasifier")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(modules_to_save=("clasifier",)))


@case("bad", "modules_to_save given as one string", "classifier")
def _(tmp):
    model = inject_adapters(bert(), LoRAConfig(modules_to_save="classifier"))
    return "safe" if model.classifier.weight.requires_grad else None


@case("bad", "default modules_to_save misses the head (BertForQuestionAnswering)", "qa_outputs", "modules_to_save")
def _(tmp):
    from transformers import AutoModelForQuestionAnswering

    torch.manual_seed(0)
    inject_adapters(AutoModelForQuestionAnswering.from_config(tiny_config("bert")), LoRAConfig())


@case("bad", "layers=[] selects no block", "layers")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(layers=[]))


@case("bad", "layers beyond the model", "layers", "2 blocks")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(layers=[0, 5]))


# ------------------------------------------------------------------------ sizes against the layer
@case("bad", "LoRA r=1000 on 32-wide layers", "r=1000", "attention.self.query", "32")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(r=1000))


@case("bad", "Delta-LoRA r=64 on 32-wide layers", "r=64", "32")
def _(tmp):
    inject_adapters(bert(), DeltaLoRAConfig(r=64))


@case("bad", "DCFT r=100 on 32-wide layers (k=8: a 4x4 subspace)", "r=100", "4")
def _(tmp):
    inject_adapters(bert(), DCFTConfig(r=100, kernel_size=8))


@case("bad", "LoRALinear built by hand with r > min(in, out)", "r=9", "8")
def _(tmp):
    LoRALinear(nn.Linear(8, 8), LoRAConfig(r=9))


# ------------------------------------------------------------------------ hooks and state added twice
@case("bad", "Delta-LoRA hook registered twice on one optimizer")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    register_delta_lora_hook(opt, model)
    register_delta_lora_hook(opt, model)
    one_step(model, opt)
    return "safe" if all(layer._n == 1 for _, layer in delta_lora_layers(model)) else None


@case("bad", "Delta-LoRA hook on a second optimizer while the first one's is live", "already")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2))
    params = [p for p in model.parameters() if p.requires_grad]
    opt1, opt2 = torch.optim.SGD(params, lr=0.1), torch.optim.SGD(params, lr=0.1)
    register_delta_lora_hook(opt1, model)
    register_delta_lora_hook(opt2, model)
    return opt1  # keep it alive until the call above has been judged


@case("bad", "Delta-LoRA hook on an optimizer that does not train A and B", "lora_A", "optimizer")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2))
    register_delta_lora_hook(torch.optim.SGD(model.classifier.parameters(), lr=0.1), model)


@case("bad", "register_delta_lora_hook(model, optimizer): arguments swapped", "optimizer")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2))
    register_delta_lora_hook(model, torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1))


@case("bad", "Delta-LoRA hook on a merged model", "merged", "unmerge_adapters")
def _(tmp):
    model = merge_adapters(inject_adapters(bert(), DeltaLoRAConfig(r=2)))
    register_delta_lora_hook(torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1), model)


@case("bad", "training a merged model (the adapters get no gradient)", "merged", "unmerge_adapters")
def _(tmp):
    model = merge_adapters(inject_adapters(bert(), LoRAConfig(r=2)))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    one_step(model, opt)


# ------------------------------------------------------------------------ loading checks
@case("bad", "load onto a base with other weights", "weights", "verify=False")
def _(tmp):
    load_adapters(bert(seed=1), saved(tmp))


@case("bad", "load onto a base with another vocabulary", "word_embeddings", "(120, 32)")
def _(tmp):
    load_adapters(bert(vocab_size=120), saved(tmp))


@case("bad", "load onto a base with another head (num_labels)", "classifier.weight", "(3, 32)")
def _(tmp):
    load_adapters(bert(num_labels=3), saved(tmp))


@case("bad", "load after lora_alpha was edited in adapter_config.json", "lora_alpha", "adapter_config.json")
def _(tmp):
    folder = saved(tmp)
    edit_json(folder, lambda m: m["config"].update(lora_alpha=64.0))
    load_adapters(bert(), folder)


@case("bad", "load after Delta-LoRA's update_ratio was edited", "update_ratio", "adapter_config.json")
def _(tmp):
    model = trained_delta_lora()
    save_adapters(model, tmp / "d")
    edit_json(tmp / "d", lambda m: m["config"].update(update_ratio=2.0))
    load_adapters(bert(), tmp / "d")


@case("bad", "load with the checksum dropped and the weights corrupted (finite values)", "sha256")
def _(tmp):
    folder = saved(tmp, LoRAConfig(r=4, target_modules="all-linear"))
    edit_json(folder, lambda m: m.pop("sha256"))
    corrupt_finite(folder / "adapter_model.safetensors")
    load_adapters(bert(), folder)


@case("bad", "load with the checksum dropped", "sha256", "verify=False")
def _(tmp):
    folder = saved(tmp)
    edit_json(folder, lambda m: m.pop("sha256"))
    load_adapters(bert(), folder)


@case("bad", "load an adapter_config.json that is not JSON", "adapter_config.json", "JSON")
def _(tmp):
    folder = saved(tmp)
    (folder / "adapter_config.json").write_text("{not json")
    load_adapters(bert(), folder)


@case("bad", "load an adapter_config.json without its config", "adapter_config.json", "config")
def _(tmp):
    folder = saved(tmp)
    edit_json(folder, lambda m: m.pop("config"))
    load_adapters(bert(), folder)


@case("bad", "load a folder whose weights file is missing", "adapter_model.safetensors", "save_adapters")
def _(tmp):
    folder = saved(tmp)
    (folder / "adapter_model.safetensors").unlink()
    load_adapters(bert(), folder)


# ------------------------------------------------------------------------ lost work
@case("bad", "export_peft into a folder holding a save_adapters adapter", "overwrite=True")
def _(tmp):
    model = trained_delta_lora()
    save_adapters(model, tmp / "ad")
    export_peft(model, tmp / "ad")


@case("bad", "export_peft into a folder holding another model's export", "overwrite=True")
def _(tmp):
    a = inject_adapters(bert(), LoRAConfig(r=2))
    perturb(a, seed=3)
    export_peft(a, tmp / "ex")
    b = inject_adapters(bert(), LoRAConfig(r=2))
    perturb(b, seed=4)
    export_peft(b, tmp / "ex")


@case("bad", "save_adapters into a folder holding a PEFT export", "overwrite=True")
def _(tmp):
    model = inject_adapters(bert(), LoRAConfig(r=2))
    export_peft(model, tmp / "ex")
    save_adapters(model, tmp / "ex")


# ------------------------------------------------------------------------ what must keep working
@case("good", "BERT names on DeBERTa ('query', 'value' -> query_proj, value_proj)")
def _(tmp):
    torch.manual_seed(0)
    names = [n for n, _ in adapter_layers(inject_adapters(tiny_model("deberta-v2"), LoRAConfig()))]
    assert names and all(n.endswith(("query_proj", "value_proj")) for n in names)


@case("good", "default targets and heads on GPT-2 and Llama (c_attn / q_proj, score)")
def _(tmp):
    for arch in ("gpt2", "llama"):
        torch.manual_seed(0)
        model = inject_adapters(tiny_model(arch), LoRAConfig())
        assert model.score.weight.requires_grad


@case("good", "all-linear and the default heads on a causal LM (no classification head)")
def _(tmp):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    inject_adapters(AutoModelForCausalLM.from_config(tiny_config("gpt2")), LoRAConfig(target_modules="all-linear"))


@case("good", "LoRA r = min(in, out) (full rank) is allowed")
def _(tmp):
    inject_adapters(bert(), LoRAConfig(r=32))


@case("good", "LoRA and DCFT save -> load on the same base give the same logits")
def _(tmp):
    for i, cfg in enumerate((LoRAConfig(r=2, lora_alpha=8), DCFTConfig(kernel_size=4))):
        model = inject_adapters(bert(), cfg)
        perturb(model)
        save_adapters(model, tmp / f"m{i}")
        torch.testing.assert_close(logits(load_adapters(bert(), tmp / f"m{i}")), logits(model), atol=1e-6, rtol=0)


@case("good", "Delta-LoRA save -> load (W moved) on a fresh base gives the same logits and W_0")
def _(tmp):
    model = trained_delta_lora()
    save_adapters(model, tmp / "d")
    loaded = load_adapters(bert(), tmp / "d")
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-6, rtol=0)
    w0, w0_loaded = original_weights(model), original_weights(loaded)
    assert all(torch.allclose(w0[k], w0_loaded[k], atol=1e-6) for k in w0)


@case("good", "load onto the same base in bfloat16")
def _(tmp):
    load_adapters(bert().to(torch.bfloat16), saved(tmp))


@case("good", "load without checksum when asked (verify=False)")
def _(tmp):
    folder = saved(tmp)
    edit_json(folder, lambda m: m.pop("sha256"))
    load_adapters(bert(), folder, verify=False)


@case("good", "save_adapters twice into one folder (a checkpoint)")
def _(tmp):
    model = inject_adapters(bert(), LoRAConfig(r=2))
    save_adapters(model, tmp / "ck")
    perturb(model)
    save_adapters(model, tmp / "ck")
    torch.testing.assert_close(logits(load_adapters(bert(), tmp / "ck")), logits(model), atol=1e-6, rtol=0)


@case("good", "re-export of the identical adapter")
def _(tmp):
    model = inject_adapters(bert(), LoRAConfig(r=2))
    export_peft(model, tmp / "ex")
    export_peft(model, tmp / "ex")


@case("good", "export_peft over a save_adapters adapter with overwrite=True")
def _(tmp):
    model = inject_adapters(bert(), LoRAConfig(r=2))
    save_adapters(model, tmp / "ad")
    export_peft(model, tmp / "ad", overwrite=True)


@case("good", "hook removed, then registered again: one W update per step")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    register_delta_lora_hook(opt, model).remove()
    register_delta_lora_hook(opt, model)
    one_step(model, opt)
    assert all(layer._n == 1 for _, layer in delta_lora_layers(model))


@case("good", "a new optimizer after the old one is gone (a re-run notebook cell)")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=2))
    for _ in range(2):
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        register_delta_lora_hook(opt, model)
    one_step(model, opt)
    assert all(layer._n == 1 for _, layer in delta_lora_layers(model))


@case("good", "a merged model in eval mode / under no_grad (inference)")
def _(tmp):
    model = merge_adapters(inject_adapters(bert(), LoRAConfig(r=2)))
    logits(model.train())
    model.eval()(**batch())


@case("good", "Delta-LoRA r=24 on 32-wide layers: the exported rank-48 LoRA applies exactly")
def _(tmp):
    model = inject_adapters(bert(), DeltaLoRAConfig(r=24, lora_alpha=8, update_ratio=0.5))
    for t in range(2):
        perturb(model, seed=10 + t)
        for _, layer in delta_lora_layers(model):
            layer.delta_step()
    factors, cfg = export_delta_lora(model)
    restored = apply_exported_lora(bert(), factors, cfg, heads_from=model)  # bert(): W_0
    torch.testing.assert_close(logits(restored), logits(model), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------ runner
def run(verbose: bool) -> dict[str, int]:
    counts: dict[str, int] = {}
    for kind, name, expect, fn in CASES:
        with tempfile.TemporaryDirectory() as d, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            message = ""
            try:
                result = fn(Path(d))
                raised = None
            except Exception as e:  # noqa: BLE001 - a probe classifies every outcome
                raised, message = e, f"{type(e).__name__}: {e}"
            warned = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        if kind == "good":
            cls = "OK" if raised is None else "BROKEN"
        elif raised is not None or warned:
            text = (message or " ".join(warned)).lower()
            cls = "OK" if all(e.lower() in text for e in expect) else "UNCLEAR"
            message = message or "warning: " + " ".join(warned)
        else:
            cls = "OK" if result == "safe" else "SILENT"
        counts[cls] = counts.get(cls, 0) + 1
        print(f"{cls:8s} [{kind}] {name}")
        if verbose and message:
            print("         " + message.replace("\n", "\n         ")[:1500])
    return counts


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--verbose", action="store_true", help="print each error message")
    counts = run(ap.parse_args().verbose)
    print("counts:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), f"(of {len(CASES)} cases)")
    sys.exit(0)
