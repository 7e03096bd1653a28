"""Nothing silent in the teaching core (issue 29): each class of bad input is refused with a message that names
it and the fix, before anything changes; what must keep working next to the checks still works.

Classes: names that select nothing (target_modules, modules_to_save, layers); ranks larger than a layer;
hooks registered twice; training a merged model; loading that checks too little (other base, edited config,
no checksum); export/save over another artifact. ``scripts/probe_core.py`` runs the same classes as a table.
"""
from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForQuestionAnswering

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
    unmerge_adapters,
)
from dcft_edu.adapter_io import CONFIG_NAME, WEIGHTS_NAME, _fingerprint, _sha256, adapter_state_dict
from dcft_edu.dcft import DCFTLinear
from dcft_edu.delta_lora import delta_lora_layers
from dcft_edu.experiments.models import tiny_config, tiny_model
from dcft_edu.lora import LoRALinear


def build(seed: int = 0, arch: str = "bert", dtype: torch.dtype = torch.float32, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return tiny_model(arch, **overrides).to(dtype).eval()


def batch(seed: int = 1) -> dict:
    ids = torch.randint(3, 90, (3, 7), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(**batch()).logits


def perturb(model, seed: int = 2) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in adapter_layers(model):
            for p in layer.adapter_parameters():
                p.add_(0.2 * torch.randn(p.shape, generator=g))


def trainable(model) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def train_steps(model, opt, n: int) -> None:
    torch.manual_seed(0)  # the same dropout masks for every model trained so
    model.train()
    for i in range(n):
        model(**batch(seed=10 + i), labels=torch.tensor([0, 1, 1])).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()


def snapshot(model) -> dict:
    return {
        "modules": [(n, type(m).__name__) for n, m in model.named_modules()],
        "grad": {n: p.requires_grad for n, p in model.named_parameters()},
        "state": {k: v.clone() for k, v in model.state_dict().items()},
    }


def assert_unchanged(model, before: dict) -> None:
    after = snapshot(model)
    assert after["modules"] == before["modules"] and after["grad"] == before["grad"]
    assert after["state"].keys() == before["state"].keys()
    for k, v in before["state"].items():
        assert after["state"][k].dtype == v.dtype and torch.equal(after["state"][k], v), k


def edit_json(folder: Path, edit) -> None:
    path = folder / CONFIG_NAME
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def saved_lora(tmp_path: Path, config=None, name: str = "ad") -> tuple[nn.Module, Path]:
    model = inject_adapters(build(), config or LoRAConfig(r=2, lora_alpha=8))
    perturb(model)
    save_adapters(model, tmp_path / name)
    return model, tmp_path / name


# ======================================================= 1. names that select nothing
def test_a_partly_misspelt_target_list_names_the_unmatched_entries_and_the_candidates():
    model = build()
    before = snapshot(model)
    with pytest.raises(ValueError) as e:
        inject_adapters(model, LoRAConfig(target_modules=("query", "valeu", "re:.*nomatch")))
    msg = str(e.value)
    assert "'valeu' matches no linear layer" in msg and "'re:.*nomatch' matches no linear layer" in msg
    assert "nothing is selected by 2 of its entries" in msg and "'query'" not in msg.split("\n", 1)[1].split("Candidate")[0]
    assert "bert.encoder.layer.*.attention.self.value" in msg  # the candidates, as find_target_modules lists them
    assert_unchanged(model, before)


@pytest.mark.parametrize(
    "targets, layers, says",
    [
        (("query", "pooler.dense"), None, r"'pooler\.dense' matches only layers inside modules_to_save \['pooler'\]"),
        (("query", "attention"), None, r"'attention' matches no linear layer \(it names BertAttention modules"),
        (("query", "encoder.layer.0.attention.self.value"), [1], r"matches no layer in the blocks layers=\[1\]"),
    ],
)
def test_an_entry_that_selects_nothing_says_why(targets, layers, says):
    with pytest.raises(ValueError, match=says):
        inject_adapters(build(), LoRAConfig(target_modules=targets, layers=layers))


def test_all_linear_stands_alone():
    with pytest.raises(ValueError, match=r"\['all-linear', 'key'\]: 'all-linear' stands alone"):
        LoRAConfig(target_modules=["all-linear", "key"])
    assert LoRAConfig(target_modules=["all-linear"]).target_modules == "all-linear"  # a grid's one-element list


@pytest.mark.parametrize("arch, ends, n", [("deberta-v2", ("query_proj", "value_proj"), 4), ("gpt2", ("c_attn",), 2),
                                           ("llama", ("q_proj", "v_proj"), 4)])
def test_bert_names_still_count_through_their_aliases(arch, ends, n):
    names = [n for n, _ in adapter_layers(inject_adapters(build(arch=arch), LoRAConfig(target_modules=("query", "value"))))]
    assert len(names) == n and all(name.endswith(ends) for name in names)  # two blocks


def test_a_misspelt_modules_to_save_entry_is_an_error():
    model = build()
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"\['poolr'\] name no module of BertForSequenceClassification") as e:
        inject_adapters(model, LoRAConfig(modules_to_save=("classifier", "poolr")))
    assert "classifier" in str(e.value).split("near the top:")[1]  # the candidates
    assert_unchanged(model, before)


def test_modules_to_save_as_one_string_is_one_name():
    cfg = LoRAConfig(modules_to_save="classifier")
    assert cfg.modules_to_save == ("classifier",)  # not ('c', 'l', 'a', …)
    model = inject_adapters(build(), cfg)
    assert model.classifier.weight.requires_grad and not model.bert.pooler.dense.weight.requires_grad


def test_the_default_modules_to_save_must_cover_a_task_head():
    torch.manual_seed(0)
    qa = AutoModelForQuestionAnswering.from_config(tiny_config("bert"))
    before = snapshot(qa)
    with pytest.raises(ValueError, match=r"\['qa_outputs'\] would stay frozen.*Pass modules_to_save=\('qa_outputs',\)"):
        inject_adapters(qa, LoRAConfig())
    assert_unchanged(qa, before)
    inject_adapters(qa, LoRAConfig(modules_to_save=("qa_outputs",)))
    assert qa.qa_outputs.weight.requires_grad
    # a head frozen on purpose, and a model with no task head (a causal LM: the default matches nothing), are fine
    torch.manual_seed(0)
    inject_adapters(AutoModelForQuestionAnswering.from_config(tiny_config("bert")), LoRAConfig(modules_to_save=()))
    inject_adapters(AutoModelForCausalLM.from_config(tiny_config("gpt2")), LoRAConfig(target_modules="all-linear"))


def test_layers_that_select_nothing_are_refused():
    with pytest.raises(ValueError, match=r"layers=\[\] selects no block: leave layers=None"):
        LoRAConfig(layers=[])
    with pytest.raises(ValueError, match=r"has 2 blocks \(0\.\.1\), so \[5\] do not exist"):
        inject_adapters(build(), LoRAConfig(layers=[0, 5]))


# ======================================================= 2. sizes against the layer
@pytest.mark.parametrize(
    "config, says",
    [
        (LoRAConfig(r=33), r"query: r=33 is larger than this 32 → 32 layer allows: .* choose r ≤ 32"),
        (DeltaLoRAConfig(r=64), r"query: r=64 is larger than this 32 → 32 layer allows"),
        (DCFTConfig(r=5, kernel_size=8), r"query: r=5 is larger .* M = B A is 4 × 4, of rank at most 4; choose r ≤ 4"),
    ],
)
def test_a_rank_larger_than_the_layer_is_refused_naming_layer_and_fix(config, says):
    model = build(dtype=torch.bfloat16)  # Delta-LoRA upcasts W before its check: the refusal puts bf16 back
    before = snapshot(model)
    with pytest.raises(ValueError, match=says):
        inject_adapters(model, config)
    assert_unchanged(model, before)


def test_the_rank_check_runs_before_any_layer_is_replaced():
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 8))  # r = 16 fits the first, not the second
    before = snapshot(model)
    with pytest.raises(ValueError, match=r"^1: r=16 is larger than this 64 → 8 layer"):
        inject_adapters(model, LoRAConfig(r=16, target_modules=("0", "1")))
    assert_unchanged(model, before)
    with pytest.raises(ValueError, match="r=9"):
        LoRALinear(nn.Linear(8, 8), LoRAConfig(r=9))  # built by hand too
    with pytest.raises(ValueError, match="r=3"):
        DCFTLinear(nn.Linear(8, 8), DCFTConfig(r=3, kernel_size=4))  # a 2 × 2 subspace
    LoRALinear(nn.Linear(8, 8), LoRAConfig(r=8))  # full rank is allowed


def test_the_exact_rank_2r_export_may_exceed_the_layer():
    """Delta-LoRA r = 24 on 32-wide layers is a legal choice; its exact export is a rank-48 LoRA."""
    model = inject_adapters(build(), DeltaLoRAConfig(r=24, lora_alpha=8, update_ratio=0.5))
    for t in range(2):
        perturb(model, seed=10 + t)
        for _, layer in delta_lora_layers(model):
            layer.delta_step()
    factors, cfg = export_delta_lora(model)
    assert cfg.r == 48
    restored = apply_exported_lora(build(), factors, cfg, heads_from=model)
    torch.testing.assert_close(logits(restored), logits(model), atol=1e-5, rtol=0)


# ======================================================= 3. the Delta-LoRA hook, registered twice
def delta_model():
    return inject_adapters(build(), DeltaLoRAConfig(r=2, lora_alpha=8, update_ratio=0.5))


def test_registering_the_hook_twice_is_a_no_op_and_w_moves_once():
    once, twice = delta_model(), delta_model()
    opts = [torch.optim.SGD(trainable(m), lr=0.5) for m in (once, twice)]
    register_delta_lora_hook(opts[0], once)
    first = register_delta_lora_hook(opts[1], twice)
    assert register_delta_lora_hook(opts[1], twice) is first  # a re-run notebook cell
    for m, o in zip((once, twice), opts):
        train_steps(m, o, 3)
    assert all(layer._n == 3 for _, layer in delta_lora_layers(twice))
    for (_, a), (_, b) in zip(delta_lora_layers(once), delta_lora_layers(twice)):
        assert torch.equal(a.base_weight(), b.base_weight())
    first.remove()  # the one handle detaches the one hook
    w = {n: layer.base_weight().clone() for n, layer in delta_lora_layers(twice)}
    train_steps(twice, opts[1], 1)
    assert all(torch.equal(layer.base_weight(), w[n]) for n, layer in delta_lora_layers(twice))


def test_a_second_optimizer_with_a_live_hook_is_refused_until_the_first_is_gone():
    model = delta_model()
    old = torch.optim.SGD(trainable(model), lr=0.1)
    register_delta_lora_hook(old, model)
    new = torch.optim.SGD(trainable(model), lr=0.1)
    with pytest.raises(ValueError, match="another optimizer that still exists.*handle.remove"):
        register_delta_lora_hook(new, model)
    del old
    gc.collect()
    register_delta_lora_hook(new, model)
    train_steps(model, new, 1)
    assert all(layer._n == 1 for _, layer in delta_lora_layers(model))


def test_hook_arguments_are_checked():
    model = delta_model()
    opt = torch.optim.SGD(trainable(model), lr=0.1)
    with pytest.raises(TypeError, match="got a BertForSequenceClassification and a SGD: the two are swapped"):
        register_delta_lora_hook(model, opt)
    with pytest.raises(ValueError, match=r"does not hold lora_A and lora_B of 4 Delta-LoRA layers .*query"):
        register_delta_lora_hook(torch.optim.SGD(model.classifier.parameters(), lr=0.1), model)
    merge_adapters(model)
    with pytest.raises(ValueError, match=r"4 Delta-LoRA layers are merged .*unmerge_adapters\(model\)"):
        register_delta_lora_hook(opt, model)


# ======================================================= 4. training a merged model
@pytest.mark.parametrize("config", [LoRAConfig(r=2), DCFTConfig(kernel_size=4), DeltaLoRAConfig(r=2)],
                         ids=["lora", "dcft", "delta_lora"])
def test_a_merged_model_refuses_to_train_but_runs_inference(config):
    model = merge_adapters(inject_adapters(build(), config))
    model.train()
    with pytest.raises(RuntimeError, match=r"merged .*get no gradient.*unmerge_adapters\(model\) before training"):
        model(**batch(), labels=torch.tensor([0, 1, 1]))
    with torch.no_grad():
        model(**batch())  # inference in train mode without gradients
    model.eval()(**batch())  # or in eval mode
    for _, layer in adapter_layers(model):  # adapters frozen on purpose: training the rest is allowed
        for p in layer.adapter_parameters():
            p.requires_grad_(False)
    model.train()(**batch(), labels=torch.tensor([0, 1, 1])).loss.backward()
    unmerge_adapters(model)


# ======================================================= 5. loading verifies what it loads
@pytest.mark.parametrize("config", [LoRAConfig(r=2, lora_alpha=8), DCFTConfig(kernel_size=4)], ids=["lora", "dcft"])
def test_load_onto_other_base_weights_is_refused_and_verify_false_loads_anyway(tmp_path, config):
    model, folder = saved_lora(tmp_path, config)
    other = build(seed=1)
    before = snapshot(other)
    with pytest.raises(ValueError, match=r"(?s)trained on other base weights .*tensors differ.*verify=False") as e:
        load_adapters(other, folder)
    assert "bert.embeddings.word_embeddings.weight" in str(e.value)
    assert_unchanged(other, before)
    load_adapters(other, folder, verify=False)
    assert len(adapter_layers(other)) == len(adapter_layers(model))


def test_load_onto_the_same_base_in_bfloat16_passes(tmp_path):
    model, folder = saved_lora(tmp_path)
    loaded = load_adapters(build(dtype=torch.bfloat16), folder)
    torch.testing.assert_close(logits(loaded).float(), logits(model), atol=0.1, rtol=0)


@pytest.mark.parametrize(
    "overrides, says",
    [
        (dict(vocab_size=120), r"(?s)other tensors or shapes .*word_embeddings\.weight: saved \(100, 32\), this model \(120, 32\)"),
        (dict(num_labels=3), r"(?s)does not fit this model \(another number of labels.*classifier\.weight: saved \(2, 32\), "
                             r"this model \(3, 32\)"),
    ],
)
def test_load_onto_other_vocabulary_or_head_shapes_is_refused(tmp_path, overrides, says):
    _, folder = saved_lora(tmp_path)
    other = build(**overrides)
    before = snapshot(other)
    with pytest.raises(ValueError, match=says):
        load_adapters(other, folder)
    assert_unchanged(other, before)


def test_delta_lora_round_trip_after_real_training_checks_the_base(tmp_path):
    """The file carries the moved W_T, so the base's adapted W are not part of the fingerprint; the rest is."""
    model = delta_model()
    opt = torch.optim.AdamW(trainable(model), lr=2e-2)
    register_delta_lora_hook(opt, model)
    train_steps(model, opt, 4)
    assert any((l.base_weight() - l.original_weight()).abs().max() > 1e-4 for _, l in delta_lora_layers(model))
    save_adapters(model, tmp_path / "d")
    loaded = load_adapters(build(), tmp_path / "d")
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-6, rtol=0)
    w0, w0_loaded = original_weights(model), original_weights(loaded)
    assert all(torch.allclose(w0[k], w0_loaded[k], atol=1e-6) for k in w0)
    # a base whose adapted W differ still loads (they are replaced by W_T) ...
    base = build()
    with torch.no_grad():
        base.bert.encoder.layer[0].attention.self.query.weight.normal_()
    torch.testing.assert_close(logits(load_adapters(base, tmp_path / "d")), logits(model), atol=1e-6, rtol=0)
    # ... but other embeddings do not
    with pytest.raises(ValueError, match="other base weights"):
        load_adapters(build(seed=3), tmp_path / "d")


@pytest.mark.parametrize("field, value", [("lora_alpha", 64.0), ("target_modules", ["query"]), ("r", 4)])
def test_an_edited_config_is_refused_by_name(tmp_path, field, value):
    _, folder = saved_lora(tmp_path)
    edit_json(folder, lambda m: m["config"].update({field: value}))
    model = build()
    before = snapshot(model)
    with pytest.raises(ValueError, match=rf"(?s)adapter_config\.json was edited after saving.*\n  {field}: saved .*verify=False"):
        load_adapters(model, folder)
    assert_unchanged(model, before)


def test_an_edited_config_loads_as_edited_with_verify_false(tmp_path):
    _, folder = saved_lora(tmp_path)  # r = 2, α = 8: scaling 4
    edit_json(folder, lambda m: m["config"].update(lora_alpha=64.0))
    loaded = load_adapters(build(), folder, verify=False)
    assert all(layer.scaling == 32.0 for _, layer in adapter_layers(loaded))


def test_no_checksum_and_finite_corruption_is_refused(tmp_path):
    _, folder = saved_lora(tmp_path, LoRAConfig(r=4, target_modules="all-linear"))
    edit_json(folder, lambda m: m.pop("sha256"))
    path = folder / WEIGHTS_NAME
    raw = bytearray(path.read_bytes())
    start = 8 + int.from_bytes(raw[:8], "little")
    raw[start + 64: start + 512] = b"\x3c" * 448  # finite float32 values: no NaN to catch
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"has no sha256 of adapter_model\.safetensors.*verify=False"):
        load_adapters(build(), folder)


def test_an_older_format_loads_with_verify_false_and_upgrades_by_saving(tmp_path):
    """A dcft_edu-1 folder (no record in the header) is migrated by one unchecked load and a save."""
    model = inject_adapters(build(), LoRAConfig(r=2, lora_alpha=8))
    perturb(model)
    folder = tmp_path / "v1"
    folder.mkdir()
    save_file(adapter_state_dict(model), str(folder / WEIGHTS_NAME), metadata={"format": "pt"})
    meta = {"config": model.adapter_config.to_dict(), "fingerprint": _fingerprint(model), "format": "dcft_edu-1",
            "sha256": _sha256(folder / WEIGHTS_NAME)}
    (folder / CONFIG_NAME).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"older dcft_edu \(format 'dcft_edu-1'\).*verify=False.*save_adapters"):
        load_adapters(build(), folder)
    loaded = load_adapters(build(), folder, verify=False)
    torch.testing.assert_close(logits(loaded), logits(model), atol=1e-6, rtol=0)
    save_adapters(loaded, folder)  # the same config and model: replaced in place
    assert json.loads((folder / CONFIG_NAME).read_text())["format"] == "dcft_edu-2"
    torch.testing.assert_close(logits(load_adapters(build(), folder)), logits(model), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    "damage, says",
    [
        (lambda f: (f / CONFIG_NAME).write_text("{not json"), r"adapter_config\.json is not readable JSON"),
        (lambda f: (f / CONFIG_NAME).write_bytes(b"\xff\xfe{"), r"adapter_config\.json is not readable JSON"),
        (lambda f: edit_json(f, lambda m: m.pop("config")), r"adapter_config\.json lacks what save_adapters writes"),
        (lambda f: (f / WEIGHTS_NAME).unlink(), r"no adapter_model\.safetensors in .*copy the whole folder"),
    ],
    ids=["not-json", "not-utf8", "no-config", "no-weights"],
)
def test_unreadable_folders_get_a_message_naming_the_file(tmp_path, damage, says):
    _, folder = saved_lora(tmp_path)
    damage(folder)
    with pytest.raises((ValueError, FileNotFoundError), match=says):
        load_adapters(build(), folder)


# ======================================================= 6. never replace another artifact
def test_export_peft_does_not_overwrite_a_saved_delta_lora(tmp_path):
    model = delta_model()
    perturb(model)
    save_adapters(model, tmp_path / "ad")
    files = {p.name: p.read_bytes() for p in (tmp_path / "ad").iterdir()}
    with pytest.raises(FileExistsError, match=r"holds an adapter written by save_adapters \(of a Delta-LoRA: its moved W"
                                              r".*overwrite=True"):
        export_peft(model, tmp_path / "ad")
    assert {p.name: p.read_bytes() for p in (tmp_path / "ad").iterdir()} == files
    export_peft(model, tmp_path / "ad", overwrite=True)
    assert "peft_type" in json.loads((tmp_path / "ad" / CONFIG_NAME).read_text())


def test_export_peft_refuses_another_export_and_skips_the_same_one(tmp_path):
    a = inject_adapters(build(), LoRAConfig(r=2))
    perturb(a, seed=3)
    export_peft(a, tmp_path / "ex")
    files = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "ex").iterdir()}
    export_peft(a, tmp_path / "ex")  # the same export again: nothing is written
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in (tmp_path / "ex").iterdir()} == files
    b = inject_adapters(build(), LoRAConfig(r=2))
    perturb(b, seed=4)
    with pytest.raises(FileExistsError, match="holds a PEFT export of another adapter"):
        export_peft(b, tmp_path / "ex")


def test_save_adapters_replaces_its_own_checkpoint_but_not_another_artifact(tmp_path):
    model = inject_adapters(build(), LoRAConfig(r=2))
    save_adapters(model, tmp_path / "ck")
    perturb(model)
    save_adapters(model, tmp_path / "ck")  # a later checkpoint of the same run
    torch.testing.assert_close(logits(load_adapters(build(), tmp_path / "ck")), logits(model), atol=1e-6, rtol=0)
    other = inject_adapters(build(), LoRAConfig(r=4))
    with pytest.raises(FileExistsError, match=r"holds an adapter written by save_adapters \(r: there 2, this model 4"):
        save_adapters(other, tmp_path / "ck")
    export_peft(model, tmp_path / "ex")
    with pytest.raises(FileExistsError, match="holds a PEFT export"):
        save_adapters(model, tmp_path / "ex")
    save_adapters(other, tmp_path / "ck", overwrite=True)
    assert json.loads((tmp_path / "ck" / CONFIG_NAME).read_text())["config"]["r"] == 4


def test_probe_script_finds_nothing_silent():
    """scripts/probe_core.py: every bad input refused clearly, every good one working."""
    import runpy

    probe = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "probe_core.py"))
    counts = probe["run"](verbose=False)
    assert counts == {"OK": len(probe["CASES"])}, counts
