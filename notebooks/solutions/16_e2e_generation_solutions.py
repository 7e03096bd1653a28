# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Solutions · 16 · E2E NLG with a causal LM
#
# The exercises of `16_e2e_generation`. Each cell runs in seconds (SmolLM2 when installed, else the tiny
# stand-in) and asserts the prediction.

# %%
import os, subprocess, sys
if "google.colab" in sys.modules:  # Colab: fetch the repository; bootstrap() does the rest
    if not os.path.isdir("/content/dcft_edu"):
        subprocess.run(["git", "clone", "-q", "--depth", "1", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), "/content/dcft_edu"], check=True)
    sys.path.insert(0, "/content/dcft_edu")
from dcft_edu.experiments.colab import bootstrap
bootstrap()

# %%
import json
from pathlib import Path

from dcft_edu.experiments import e2e
from dcft_edu.experiments.causal_lm import causal_lm_available, encode_pair, generate, load_causal_lm, tiny_causal_lm
from dcft_edu.experiments.runinfo import notebook_setup

DEVICE, QUICK = notebook_setup()
model, tok = load_causal_lm() if causal_lm_available() and not QUICK else tiny_causal_lm()
runs = e2e.load_e2e_results()
first = json.loads(Path(runs["file"].iloc[0]).read_text())["generations"]

# %% [markdown]
# ## 1. Where is the loss?
#
# The labelled positions are the target's tokens plus the EOS after it. If the example is longer than
# `max_length`, the *end* of the target is cut (the prompt is kept whole): fewer labelled positions, and the EOS
# is gone — the model is then never taught to stop there.

# %%
mr, ref = first[0]["mr"], first[0]["refs"][0]
prompt = e2e.e2e_prompt(mr)
n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
n_target = len(tok(" " + ref, add_special_tokens=False)["input_ids"])
ex = encode_pair(tok, prompt, " " + ref, max_length=512)
assert sum(l != -100 for l in ex["labels"]) == n_target + 1 and ex["labels"][-1] == tok.eos_token_id
cut = encode_pair(tok, prompt, " " + ref, max_length=n_prompt + n_target + 1 - 10)
assert sum(l != -100 for l in cut["labels"]) == n_target + 1 - 10 and cut["labels"][-1] != tok.eos_token_id
print(f"prompt {n_prompt} tokens, target {n_target} + EOS; cut by 10: {n_target + 1 - 10} labelled, no EOS")

# %% [markdown]
# ## 2. All references vs the first only
#
# Our ROUGE-L is the **max over an MR's references**: adding references can only raise it. BLEU pools n-gram
# matches over all references (clipped by the largest count in any one), so matches can only grow too — but its
# brevity penalty uses the reference length *closest* to the text's, which more references can move either way.
# So BLEU is usually, not necessarily, higher with all references.

# %%
hyps, refs = [g["hyp"] for g in first], [g["refs"] for g in first]
multi, single = e2e.e2e_scores(hyps, refs, meteor=False), e2e.e2e_scores(hyps, [r[:1] for r in refs], meteor=False)
assert multi["rouge_l"] >= single["rouge_l"] - 1e-9
print({k: (round(multi[k], 2), round(single[k], 2)) for k in ("bleu", "rouge_l")})

# %% [markdown]
# ## 3. Beam search
#
# `num_beams=1` is greedy decoding, token for token. With 4 beams the search keeps the 4 best partial texts by
# total log-probability; without a length penalty a finished short text often wins (every extra token lowers the
# sum), so beam texts tend to be *shorter* — a tendency, not a rule, so only the first claim is asserted.

# %%
prompts = [e2e.e2e_prompt(g["mr"]) for g in first[:3]]
greedy = generate(model, tok, prompts, max_new_tokens=24)
assert generate(model, tok, prompts, max_new_tokens=24, num_beams=1) == greedy
beam = generate(model, tok, prompts, max_new_tokens=24, num_beams=4)
print([(len(g.split()), len(b.split())) for g, b in zip(greedy, beam)], "(words: greedy, beam 4)")
