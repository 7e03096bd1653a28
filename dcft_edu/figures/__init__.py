"""The figures room: the drawing code of every committed figure, apart from the core and the experiments.

- ``plotting``: the shared theme and a ``savefig`` that never clobbers committed figures by accident;
- ``registry``: ``FIGURES`` (name -> draw function), ``register`` and ``render``;
- one module per notebook group: ``concepts`` (03, 05), ``main_results`` (07–09),
  ``ablations`` (10–12), ``delta_lora`` (13, 14), ``dcft_question`` (15).

``python -m dcft_edu.figures`` redraws them all (``__main__``). Importing this package
imports every figure module, so ``FIGURES`` is complete.
"""
# each figure module registers its figures on import, in this order (the order of `python -m dcft_edu.figures`)
from . import concepts, main_results, ablations, delta_lora, dcft_question  # noqa: F401,I001
from .plotting import figures_dir, savefig, set_theme
from .registry import FIGURES, register, render

__all__ = ["FIGURES", "register", "render", "figures_dir", "savefig", "set_theme"]
