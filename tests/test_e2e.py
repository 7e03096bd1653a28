"""E2E NLG with a causal LM: loss mask, right/left padding, generation, metrics, adapters on a tiny Llama."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from dcft_edu.experiments import e2e
from dcft_edu.experiments.presets import RunConfig, make_run
from dcft_edu.experiments.store import find_done, result_path
from dcft_edu.experiments.causal_lm import RightPadCollator, encode_pair, generate, tiny_causal_lm
from dcft_edu.inject import adapter_layers


@pytest.fixture(scope="module")
def tokenizer():
    # the packaged MiniLM WordPiece tokenizer stands in for a causal LM's; [SEP] plays EOS
    return tiny_causal_lm()[1]


def tiny_lm(tokenizer):
    return tiny_causal_lm()[0]


def test_loss_mask_covers_only_the_target(tokenizer):
    row = encode_pair(tokenizer, "name[Aromi] ||", " Aromi is a pub.", max_length=64)
    n_prompt = len(tokenizer("name[Aromi] ||", add_special_tokens=False)["input_ids"])
    target = tokenizer(" Aromi is a pub.", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert row["labels"][:n_prompt] == [-100] * n_prompt
    assert row["labels"][n_prompt:] == target == row["input_ids"][n_prompt:]
    short = encode_pair(tokenizer, "name[Aromi] ||", " Aromi is a pub.", max_length=n_prompt + 2)
    assert len(short["input_ids"]) == len(short["labels"]) == n_prompt + 2


def test_collator_pads_on_the_right(tokenizer):
    rows = [encode_pair(tokenizer, "a ||", " b c d", 64), encode_pair(tokenizer, "a b c ||", " d", 64)]
    batch = RightPadCollator(tokenizer.pad_token_id)(rows)
    n0 = len(rows[0]["input_ids"])
    assert batch["input_ids"].shape == batch["labels"].shape == (2, max(n0, len(rows[1]["input_ids"])))
    for i, r in enumerate(rows):
        k = len(r["input_ids"])
        assert batch["attention_mask"][i].tolist() == [1] * k + [0] * (batch["input_ids"].shape[1] - k)
        assert (batch["labels"][i, k:] == -100).all() and batch["labels"][i, :k].tolist() == r["labels"]
        assert (batch["input_ids"][i, k:] == tokenizer.pad_token_id).all()


def test_loss_ignores_prompt_and_padding(tokenizer):
    model = tiny_lm(tokenizer)
    rows = [encode_pair(tokenizer, "name[x] ||", " x is good", 64), encode_pair(tokenizer, "name[y] area[z] ||", " y", 64)]
    batch = RightPadCollator(tokenizer.pad_token_id)(rows)
    loss = model(**batch).loss
    # by hand: next-token cross-entropy on the positions whose (shifted) label is not -100
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:]  # (batch, n-1): token t+1 predicted at position t
    keep = labels != -100
    ref = torch.nn.functional.cross_entropy(logits[:, :-1][keep], labels[keep])
    assert keep.sum() == sum(sum(l != -100 for l in r["labels"]) for r in rows)
    torch.testing.assert_close(loss, ref)


def test_generate_left_pads_and_returns_strings(tokenizer):
    model = tiny_lm(tokenizer).eval()
    prompts = ["name[x] ||", "name[y] area[city centre] food[French] ||"]
    both = generate(model, tokenizer, prompts, batch_size=2, max_new_tokens=5)
    alone = [generate(model, tokenizer, [p], max_new_tokens=5)[0] for p in prompts]
    assert all(isinstance(s, str) for s in both) and len(both) == 2
    assert both == alone  # left padding does not change a row's continuation
    assert len(generate(model, tokenizer, prompts, num_beams=2, max_new_tokens=5)) == 2


def test_group_by_mr():
    mrs, refs = e2e.group_by_mr(["a", "b", "a", "c", "b"], ["1", "2", "3", "4", "5"])
    assert mrs == ["a", "b", "c"] and refs == [["1", "3"], ["2", "5"], ["4"]]


def test_scores_identical_and_multi_reference():
    hyps = ["The Eagle is a coffee shop near Burger King .", "Aromi serves French food in the city centre ."]
    refs = [[hyps[0], "Near Burger King there is a coffee shop ."], ["Something else entirely .", hyps[1]]]
    s = e2e.e2e_scores(hyps, refs, meteor=False)
    assert s["bleu"] == pytest.approx(100.0) and s["rouge_l"] == pytest.approx(100.0)
    assert s["nist"] > 3 and s["num_mrs"] == 2
    if "cider" in s:  # pycocoevalcap installed (the e2e extra): an exact match on distinct texts scores 10
        single = e2e.e2e_scores(hyps, [[h] for h in hyps], meteor=False)
        assert single["cider"] == pytest.approx(10.0)
    # a hypothesis that matches only its own MR's second reference still scores 100: references are per MR
    worse = e2e.e2e_scores(hyps[::-1], refs, meteor=False)
    assert worse["bleu"] < 50 and worse["rouge_l"] < 60
    with pytest.raises(ValueError, match="one hypothesis per MR"):
        e2e.e2e_scores(hyps, refs[:1])


def test_rouge_l_is_the_max_over_references():
    s = e2e.e2e_scores(["a b c d"], [["a b", "a b c d e f"]], meteor=False)
    # LCS F1 with "a b": P 2/4, R 1 -> 2/3;  with "a b c d e f": P 1, R 4/6 -> 0.8
    assert s["rouge_l"] == pytest.approx(80.0)


@pytest.mark.skipif(shutil.which("java") is None, reason="METEOR 1.5 needs java")
def test_meteor_when_java():
    pytest.importorskip("pycocoevalcap")
    s = e2e.e2e_scores(["the cat sat on the mat"], [["the cat sat on the mat"]], meteor=True)
    assert s["meteor"] == pytest.approx(100.0)


@pytest.mark.parametrize("method", ["lora", "delta_lora", "dcft", "full"])
def test_adapters_train_on_a_causal_lm(tokenizer, method, tmp_path, monkeypatch):
    pairs = [("name[x], food[French] ||", " x serves French food."), ("name[y] ||", " y is a pub.")] * 4
    mrs, refs = ["name[x], food[French]", "name[y]"], [["x serves French food."], ["y is a pub.", "A pub: y."]]
    monkeypatch.setattr(e2e, "e2e_data", lambda run, root=None: (pairs, mrs, refs))
    run = e2e.make_e2e_run(method, "quick", 0, max_new_tokens=4, lr=1e-2, start_steps=0,
                           **({"kernel_size": 4} if method == "dcft" else {}))
    model = tiny_lm(tokenizer)
    q0 = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    k0 = model.model.layers[0].self_attn.k_proj.weight.detach().clone()
    res = e2e.train_e2e(run, model_and_tokenizer=(model, tokenizer), log=lambda s: None, meteor=False, model_name="tiny")
    assert res["optimizer_steps"] == 1 and len(res["generations"]) == 2
    assert all(isinstance(g["hyp"], str) for g in res["generations"])
    assert {"bleu", "nist", "rouge_l", "seed", "git_commit", "versions"} <= set(res["scores"]) | set(res)
    if method == "full":
        assert not adapter_layers(model)
        return
    names = [n for n, _ in adapter_layers(model)]
    assert names and all(n.endswith(("q_proj", "v_proj")) for n in names)  # Wq, Wv as in Delta-LoRA
    q = adapter_layers(model)[0][1]
    moved = not torch.equal(q.base_weight().detach(), q0)
    assert moved == (method == "delta_lora")  # only Delta-LoRA moves the frozen W
    assert torch.equal(model.model.layers[0].self_attn.k_proj.weight, k0)  # not targeted: untouched


@pytest.fixture
def packaged_lm(monkeypatch):
    """No $DCFT_EDU_CAUSAL_LM (the README's Colab recipe sets it): a run's model=None is the packaged SmolLM2."""
    monkeypatch.delenv("DCFT_EDU_CAUSAL_LM", raising=False)


def test_committed_e2e_results_keep_their_key(packaged_lm):
    """Each committed E2E result is found again: its stored config rebuilds to the key in its name."""
    files = sorted((Path(__file__).resolve().parents[1] / "figures" / "data" / "e2e").glob("*.json"))
    assert files, "no committed E2E results found"
    for f in files:
        cfg = json.loads(f.read_text())["config"]
        run = RunConfig(task="e2e", **cfg)  # a legacy file: its config has no task, model null = the packaged LM
        assert f.stem.endswith(run.legacy_key()), f"{f.name}: its config now hashes to {run.legacy_key()}"
        assert find_done(f.parent.parent, f.parent.name, run, log=pytest.fail) == f  # the store finds it
    # a field set away from its default makes a new key; at its default it leaves the key alone
    run = e2e.make_e2e_run("dcft", "cpu", 0)
    assert e2e.make_e2e_run("dcft", "cpu", 0, dcft_init_std=0.02).key() == run.key()
    assert e2e.make_e2e_run("dcft", "cpu", 0, dcft_init_std=0.05).key() != run.key()


def test_train_and_save_writes_once_and_loads_back(tmp_path):
    model, tok = tiny_causal_lm()
    pairs = [("name[x], food[French] ||", " x serves French food."), ("name[y] ||", " y is a pub.")] * 4
    data = (pairs, ["name[x], food[French]", "name[y]"], [["x serves French food."], ["y is a pub."]])
    run = e2e.make_e2e_run("delta_lora", "quick", 0, max_new_tokens=4, start_steps=0)
    logs = []
    path = e2e.train_and_save(run, tmp_path, (model, tok), log=logs.append, data=data, meteor=False,
                              model_name="tiny")
    assert path.name == f"e2e-delta_lora-s0-{run.key()}.json" and path.exists()
    assert path == result_path(tmp_path.parent, tmp_path.name, run)  # the one result store's name
    assert not adapter_layers(model)  # the base model was copied, not changed
    mtime = path.stat().st_mtime_ns
    assert e2e.train_and_save(run, tmp_path, (model, tok), log=logs.append, data=data) == path
    assert path.stat().st_mtime_ns == mtime and logs[-1].startswith("skip")  # found, not retrained
    df = e2e.load_e2e_results(tmp_path)
    assert len(df) == 1 and df.loc[0, "λ"] == 2.0 and df.loc[0, "K"] == 0 and df.loc[0, "num_mrs"] == 2
    assert df.loc[0, "bleu"] >= 0 and df.loc[0, "file"] == str(path)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json"):
        e2e.load_e2e_results(tmp_path)


def test_committed_e2e_results_load():
    df = e2e.load_e2e_results()
    assert set(df["method"]) >= {"lora", "delta_lora", "dcft"} and df["bleu"].between(0, 100).all()


def test_e2e_is_a_task_of_run_config(packaged_lm):
    run = make_run("e2e", "delta_lora", "cpu", 0)
    assert isinstance(run, RunConfig) and run.task == "e2e" and run.model == "packaged:SmolLM2-135M-Instruct"
    assert (run.r, run.lora_alpha, run.update_ratio, run.target_modules) == (4, 32.0, 2.0, ["query", "value"])
    assert (run.eval_split, run.eval_mrs, run.limit_train) == ("dev", 50, 160)
    assert e2e.make_e2e_run("delta_lora", "cpu", 0) == run
    assert run.key() != run.legacy_key()  # a new file gets the schema-2 key; the store also looks under the old one
    # a field the other kind of task reads is refused, not silently unused
    with pytest.raises(ValueError, match="select_on='train_holdout' applies to GLUE tasks only"):
        make_run("e2e", "lora", "quick", select_on="train_holdout")
    with pytest.raises(ValueError, match="eval_mrs=5 applies to the e2e task"):
        make_run("rte", "lora", "quick", eval_mrs=5)
    with pytest.raises(ValueError, match="unknown method 'head' for task e2e"):
        RunConfig(task="e2e", method="head", eval_split="dev")
    with pytest.raises(ValueError, match="eval_split=None"):
        RunConfig(task="e2e", method="lora")


def test_a_sweep_trains_e2e_like_any_task(tmp_path, monkeypatch):
    """An E2E run in a sweep: trained through ``trainer.train``, saved and found again by the one result store."""
    from dcft_edu.experiments.causal_lm import tiny_causal_lm
    from dcft_edu.experiments.sweep import run_sweep

    model, tok = tiny_causal_lm()
    model.save_pretrained(tmp_path / "lm")
    tok.save_pretrained(tmp_path / "lm")
    pairs = [("name[x] ||", " x is a pub."), ("name[y] ||", " y serves food.")] * 4
    monkeypatch.setattr(e2e, "e2e_data", lambda run, root=None: (pairs, ["name[x]", "name[y]"],
                                                                  [["x is a pub."], ["y serves food."]]))
    monkeypatch.setattr(e2e, "e2e_scores", lambda hyps, refs, meteor=None: {"bleu": 1.0, "num_mrs": len(hyps)})
    runs = [make_run("e2e", m, "quick", 0, model=str(tmp_path / "lm"), max_new_tokens=2) for m in ("lora", "dcft")]
    logs = []
    (p_lora, p_dcft) = run_sweep("e2e", runs, tmp_path / "results", log=logs.append)
    rec = json.loads(p_lora.read_text())
    assert rec["task"] == "e2e" and rec["key"] == runs[0].key() and rec["sweep"] == "e2e" and rec["schema"] == 2
    assert rec["optimizer_steps"] == 1 and rec["best_metric"] == 1.0
    assert [p.name for p in run_sweep("e2e", runs, tmp_path / "results", log=logs.append)] == [p_lora.name, p_dcft.name]
    assert not any(line.startswith("done") for line in logs[len(logs) // 2:])  # the second pass trains nothing
    assert len(e2e.load_e2e_results(tmp_path / "results" / "e2e")) == 2


def test_a_sweep_finds_the_committed_e2e_results(packaged_lm):
    """Table 1's E2E grid at the cpu scale, as a sweep of task "e2e": every run is found done in
    figures/data/e2e under its legacy key, so a sweep would retrain none of them."""
    from dcft_edu.experiments.runinfo import committed_results_dir
    from dcft_edu.experiments.store import done_path
    from dcft_edu.experiments.sweep import grid_runs

    runs = grid_runs({"task": "e2e", "method": ["full", "lora", "dcft", "delta_lora"], "seed": [0, 1, 2]}, scale="cpu")
    found = [done_path(committed_results_dir(), "e2e", run) for run in runs]
    assert all(p is not None and p.name.startswith("cpu_") for p in found), [r.method for r, p in zip(runs, found) if p is None]


def test_e2e_run_fields_fail_early(packaged_lm):
    """What would only fail after training (the generation's settings) is refused when the run is made."""
    for kw, msg in (({"num_beams": 3}, "sets num_beams: the run sets these itself"),
                    ({"do_sample": True}, "sets do_sample"),
                    ({"bogus": 1}, "bogus is not a transformers.GenerationConfig setting"),
                    ([["length_penalty", 0.9]], "must be a dict")):
        with pytest.raises(ValueError, match=msg):
            make_run("e2e", "lora", "quick", generate_kw=kw)
    assert make_run("e2e", "lora", "gpu").generate_kw == {"length_penalty": 0.9, "no_repeat_ngram_size": 4}
    # the grid extras of the GLUE runs work on E2E too
    run = make_run("e2e", "delta_lora", "cpu", start_frac=0.5, lr_factor=3)
    assert run.start_steps == 10 and run.lr == pytest.approx(3e-3)  # 20 steps at the cpu scale; its lr 1e-3
    with pytest.raises(ValueError, match="start_frac=2"):
        make_run("e2e", "delta_lora", "cpu", start_frac=2)
    assert make_run(" E2E ", "lora").task == "e2e"


def test_a_legacy_stand_in_result_is_not_taken_for_smollm2(tmp_path, packaged_lm):
    """Old E2E files keyed every model as null: one trained on a stand-in (old lesson 16 without SmolLM2, or
    $DCFT_EDU_CAUSAL_LM) must not pass for the packaged model's run; the committed ones name SmolLM2's file."""
    src = sorted((Path(__file__).resolve().parents[1] / "figures" / "data" / "e2e").glob("cpu_lora_s0_*.json"))[0]
    rec = json.loads(src.read_text())
    run = RunConfig(task="e2e", **rec["config"])
    (tmp_path / "e2e").mkdir()
    assert find_done(tmp_path, "e2e", run) is None
    shutil.copy(src, tmp_path / "e2e" / src.name)
    assert find_done(tmp_path, "e2e", run) == tmp_path / "e2e" / src.name
    rec["model_name"] = "tiny random Llama (stand-in)"
    (tmp_path / "e2e" / src.name).write_text(json.dumps(rec))
    assert find_done(tmp_path, "e2e", run) is None and (tmp_path / "e2e" / src.name).exists()  # not done, kept


def test_load_results_reads_a_folder_with_e2e_and_glue_results(tmp_path):
    """A sweep folder may hold both kinds: the GLUE reader gives E2E rows their BLEU as best_metric, and the E2E
    reader passes over GLUE records."""
    from dcft_edu.experiments.store import load_results

    committed = Path(__file__).resolve().parents[1] / "figures" / "data"
    (tmp_path / "mixed").mkdir()
    e2e_file = sorted((committed / "e2e").glob("cpu_lora_s0_*.json"))[0]
    glue_file = sorted((committed / "main").rglob("*.json"))[0]
    shutil.copy(e2e_file, tmp_path / "mixed" / e2e_file.name)
    shutil.copy(glue_file, tmp_path / "mixed" / glue_file.name)
    df = load_results(tmp_path / "mixed")
    e2e_row = df[df["task"] == "e2e"].iloc[0]
    assert len(df) == 2 and e2e_row["best_metric"] == json.loads(e2e_file.read_text())["scores"]["bleu"]
    assert e2e_row["best_bleu"] == e2e_row["best_metric"] and e2e_row["main_metric"] == "bleu"
    assert len(e2e.load_e2e_results(tmp_path / "mixed")) == 1
