"""dcft_edu: annotated, tested DCFT and Delta-LoRA for teaching and reproduction.

The public API, by concept (each module is readable in one sitting):

- configs (``config``): LoRAConfig, DCFTConfig, DeltaLoRAConfig
- layers: LoRALinear (``lora``), DCFTLinear (``dcft``), DeltaLoRALinear (``delta_lora``)
- models (``inject``): inject_adapters, merge_adapters, unmerge_adapters,
  merge_and_unload, disable_adapters, count_adapter_parameters, count_for_config
- files (``adapter_io``): save_adapters, load_adapters
- training helpers: orthogonal_penalty (``regularizers``), DeltaLoRAUpdater,
  DeltaLoRAOptimizer, export_delta_lora, apply_exported_lora, original_weights
  (``delta_lora``), dropout_gradient_gap (``dropout_gradient``)
- experiments: ``data``, ``models``, ``metrics``, ``trainer``, ``sweep``, ``plotting``,
  ``figures`` (the committed figures: ``python -m dcft_edu.figures``)
"""
from .adapter_io import load_adapter_config, load_adapters, save_adapters
from .config import DCFTConfig, DeltaLoRAConfig, LoRAConfig, config_from_dict
from .dcft import DCFTLinear
from .delta_lora import (
    DeltaLoRALinear,
    DeltaLoRAOptimizer,
    DeltaLoRAUpdater,
    apply_exported_lora,
    export_delta_lora,
    original_weights,
)
from .dropout_gradient import dropout_gradient_gap
from .inject import (
    adapter_layers,
    count_adapter_parameters,
    count_for_config,
    count_trainable_parameters,
    disable_adapters,
    inject_adapters,
    merge_adapters,
    merge_and_unload,
    set_dcft_impl,
    unmerge_adapters,
)
from .lora import LoRALinear
from .regularizers import orthogonal_penalty

__version__ = "0.1.0"
