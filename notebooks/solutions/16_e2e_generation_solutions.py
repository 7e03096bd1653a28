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
    clone = os.environ.get("DCFT_EDU_CLONE", "/content/dcft_edu")
    if not os.path.isdir(clone):
        subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "main", os.environ.get("DCFT_EDU_REPO_URL", "https://github.com/dcft-edu/dcft_edu"), clone], check=True)
    sys.path.insert(0, clone)
from dcft_edu.experiments.colab import bootstrap
bootstrap("16_e2e_generation_solutions")

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
# %% [markdown]
# ## 4. Delta-LoRA's twin
#
# With $B_0 = 0$ and $K = 0$, $W_n = W_0 + \lambda s B_n A_n$, so Delta-LoRA's forward is
# $W_0 + (1+\lambda)\,s\,B_nA_n$: LoRA's with $\alpha' = (1+\lambda)\alpha$. Its gradients on $A, B$ are $(1+\lambda)\times$
# smaller, which Adam's update does not see (up to ε), so **the logits match**. With $K = 2$ the two runs share
# the first two steps; then $W$ starts at $W_0$ with $P_K \neq 0$ and the forward is
# $W_0 + s((1+\lambda)P_n - \lambda P_K)$: no fixed-α LoRA computes that, and the logits part.

# %%
import copy

import torch

from dcft_edu import DeltaLoRAConfig, LoRAConfig, inject_adapters, register_delta_lora_hook


def train(model, steps=5, hook=False):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    if hook:
        register_delta_lora_hook(opt, model)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(5, len(tok), (4, 12), generator=g)
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        return model(input_ids=torch.arange(5, 17)[None]).logits


base, _ = tiny_causal_lm()
gaps = {}
for K in (0, 2):
    torch.manual_seed(1)
    twin = train(inject_adapters(copy.deepcopy(base), LoRAConfig(r=4, lora_alpha=96, target_modules=["q_proj", "v_proj"])))
    torch.manual_seed(1)
    delta = train(inject_adapters(copy.deepcopy(base), DeltaLoRAConfig(r=4, lora_alpha=32, update_ratio=2.0, start_steps=K,
                                                                       target_modules=["q_proj", "v_proj"])), hook=True)
    gaps[K] = float((twin - delta).abs().max())
print({f"K={K}": f"max |logit gap| {v:.1e}" for K, v in gaps.items()})
assert gaps[0] < 1e-3 < gaps[2]
