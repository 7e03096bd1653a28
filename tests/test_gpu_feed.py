"""``DeviceBatches`` yields exactly the batches (and losses) of today's loader; bucketing only pads."""
from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from dcft_edu import LoRAConfig, inject_adapters
from dcft_edu.experiments import data as D
from dcft_edu.experiments.gpu_feed import DeviceBatches, bucket_length
from dcft_edu.experiments.models import default_model_path, tiny_model


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(default_model_path(), local_files_only=True)


def _loaders(task, tokenizer, seed=3):
    return D.make_dataloaders(task, tokenizer, batch_size=8, limit_train=37, limit_dev=20, seed=seed, max_length=64)


@pytest.mark.parametrize("task", ["stsb", "rte"])
def test_same_batches_in_the_same_order_as_the_loader(task, tokenizer):
    expected, fed = _loaders(task, tokenizer), _loaders(task, tokenizer)
    feeds = [DeviceBatches(loader, "cpu") for loader in fed]
    torch.manual_seed(0)
    want = [[b for b in loader] for _ in range(3) for loader in expected]  # 3 epochs of train, then dev
    after_loader = torch.rand(1)  # iterating draws from the global generator too (the dev loader's seed)
    torch.manual_seed(0)
    got = [[b for b in feed] for _ in range(3) for feed in feeds]
    assert torch.equal(torch.rand(1), after_loader)  # the same draws, in the same number
    assert [len(e) for e in want] == [len(g) for g in got] and len(feeds[0]) == len(fed[0])
    for epoch_want, epoch_got in zip(want, got):
        for w, g in zip(epoch_want, epoch_got):
            assert list(w) == list(g)
            for k in w:
                assert w[k].dtype == g[k].dtype and torch.equal(w[k], g[k]), k


def test_same_losses_as_the_loader(tokenizer):
    def losses(batches):
        torch.manual_seed(0)
        model = inject_adapters(tiny_model("bert", "stsb", vocab_size=tokenizer.vocab_size), LoRAConfig(r=2))
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        out = []
        for _ in range(2):
            for b in batches:
                loss = model(**b).loss
                loss.backward()
                opt.step()
                opt.zero_grad()
                out.append(loss.item())
        return out

    train = _loaders("stsb", tokenizer)[0]
    assert losses(DeviceBatches(_loaders("stsb", tokenizer)[0], "cpu")) == losses(train)  # bit for bit


def test_bucketing_pads_to_a_few_lengths_and_keeps_the_function(tokenizer):
    feed = DeviceBatches(_loaders("rte", tokenizer)[1], "cpu", bucket=16)
    plain = DeviceBatches(_loaders("rte", tokenizer)[1], "cpu")
    assert feed.token_lengths() <= {16, 32, 48, 64} and len(feed.token_lengths()) < len(plain.token_lengths())
    torch.manual_seed(0)
    model = tiny_model("bert", "rte", vocab_size=tokenizer.vocab_size).eval()
    for b, p in zip(feed, plain):
        L = p["input_ids"].shape[1]
        assert b["input_ids"].shape[1] == bucket_length(L, 16, feed.max_length)
        assert torch.equal(b["input_ids"][:, :L], p["input_ids"]) and not b["attention_mask"][:, L:].any()
        assert torch.equal(b["labels"], p["labels"])
        with torch.no_grad():  # masked padding: the same outputs, to float rounding
            torch.testing.assert_close(model(**b).logits, model(**p).logits, rtol=1e-5, atol=1e-6)


def test_bucket_length():
    assert [bucket_length(L, 32, 100) for L in (1, 32, 33, 99)] == [32, 32, 64, 100]
    assert bucket_length(7, 1, 64) == 7
    with pytest.raises(ValueError, match="bucket multiple 0: must be >= 1"):
        bucket_length(7, 0, 64)
