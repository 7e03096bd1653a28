"""Feeding a GPU without host work per step: the loader's batches collated once and kept on the device.

A MiniLM training step needs about a millisecond of GPU arithmetic; the rest of a step's time on a GPU is
the host's. Part of that is the input pipeline of ``data.make_dataloaders``: for every batch the
``DataLoader`` fetches rows one by one from a ``datasets.Dataset``, ``DataCollatorWithPadding`` pads them in
Python, and the training loop copies four tensors to the device. ``DeviceBatches`` does that work once per
split instead:

- every row is collated ONCE, by the loader's own collator, padded to the split's longest row, and the
  tensors are moved to the device once (pinned first, on a GPU);
- each batch is then one row gather per tensor on the device, cut to the batch's longest row (kept on the
  host: no device sync), in the loader's own order: the indices come from a twin of the loader that shares
  its batch sampler and generator, so the random draws, the order and the batches are exactly those of
  iterating the loader itself (``tests/test_gpu_feed.py`` checks them tensor by tensor, and the losses);
- ``bucket=m`` pads every batch to a multiple of m tokens (at most the split's longest row), so that an
  epoch has a handful of shapes: what ``torch.compile(mode="reduce-overhead")`` (CUDA graphs) needs to
  replay instead of recapturing. The extra positions are padding, masked out by the attention mask, so the
  model computes the same function (its outputs agree to float rounding, not bit for bit: the attention's
  products get longer).

Where it plugs into a training loop (``trainer.train`` today, a ``fit`` loop later), on a GPU::

    train_loader, dev_loader, *holdout = make_dataloaders(...)            # as now
    train_batches = DeviceBatches(train_loader, device)                   # once per run, before the epochs
    dev_batches = DeviceBatches(dev_loader, device)                       # and once per evaluated split
    for epoch in ...:
        for i, batch in enumerate(train_batches):                         # in place of ``train_loader``
            batch = {k: v.to(device) for k, v in batch.items()}           # now a no-op: already there
    evaluate(model, dev_batches, ...)                                     # in place of ``dev_loader``

``len(train_batches) == len(train_loader)``, so accumulation boundaries and the scheduler's step count
are unchanged. With ``torch.compile(mode="reduce-overhead")``, pass ``bucket=32`` (or 64) as well.

Not used by the training loop yet: the helpers are ready for it (above), and tested on their own.
"""
from __future__ import annotations

from typing import Iterator, Optional, Union

import torch
from torch.utils.data import DataLoader


def bucket_length(length: int, multiple: int, cap: int) -> int:
    """``length`` rounded up to a multiple of ``multiple``, but never past ``cap`` (the longest row there is)."""
    if multiple < 1:
        raise ValueError(f"bucket multiple {multiple}: must be >= 1 (1 keeps every batch at its longest row)")
    return min(cap, -(-length // multiple) * multiple)


class DeviceBatches:
    """The batches of ``loader`` (a ``make_dataloaders`` loader), collated once and kept on ``device``.

    Iterating yields the same dicts of tensors as iterating ``loader`` (same keys, dtypes, order and values),
    already on ``device``; with ``bucket`` the token dimension is padded up to a multiple of it.
    """

    def __init__(self, loader: DataLoader, device: Union[str, torch.device], bucket: Optional[int] = None):
        self.loader, self.device, self.bucket = loader, torch.device(device), bucket
        n = len(loader.dataset)
        if n == 0:
            raise ValueError("DeviceBatches: the loader's dataset is empty; there is nothing to feed")
        # every row through the loader's own collator at once: padded to the longest row of the split
        full = loader.collate_fn([loader.dataset[i] for i in range(n)])
        self.keys = list(full.keys())
        # each row's length (its attention mask's ones), on the host: a batch's length costs no device sync
        self.lengths = full["attention_mask"].sum(dim=1).tolist()
        self.max_length = full["attention_mask"].shape[1]
        pin = self.device.type == "cuda"
        self.tensors = {k: (v.pin_memory() if pin else v).to(self.device, non_blocking=pin) for k, v in full.items()}
        # a twin of the loader that yields row indices: the same batch sampler and generator, so iterating it
        # makes the very random draws (and in the same order) as iterating the loader would
        self._indices = DataLoader(range(n), batch_sampler=loader.batch_sampler, generator=loader.generator,
                                   collate_fn=torch.tensor)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for idx in self._indices:  # (b,) row indices, on the host
            length = max(self.lengths[i] for i in idx.tolist())
            if self.bucket:
                length = bucket_length(length, self.bucket, self.max_length)
            rows = idx.to(self.device, non_blocking=True)
            # the batch's rows, cut to its (bucketed) length: (n, L_max) -> (b, length); labels (n,) -> (b,)
            yield {k: (v[rows, :length] if v.dim() == 2 else v[rows]) for k, v in self.tensors.items()}

    def token_lengths(self) -> set[int]:
        """The token lengths a batch can have (each is some row's length, or its bucket): with ``bucket``, a
        handful, so a compiled model sees that many shapes (and the last, smaller batch's)."""
        if not self.bucket:
            return set(self.lengths)
        return {bucket_length(L, self.bucket, self.max_length) for L in self.lengths}
