"""dcft_edu: annotated, tested DCFT and Delta-LoRA for teaching and reproduction.

Three rooms, each importing only the rooms below it:

- ``dcft_edu`` (this folder): the teaching core, readable in one sitting. It imports
  torch, transformers (for GPT-2's Conv1D type), safetensors and einops, and nothing
  of the two rooms below.

  - configs (``config``): LoRAConfig, DCFTConfig, DeltaLoRAConfig
  - layers: AdapterLayer (``adapter_layer``), LoRALinear (``lora``), DCFTLinear
    (``dcft``), DeltaLoRALinear (``delta_lora``)
  - models (``inject``): inject_adapters, merge_adapters, unmerge_adapters,
    merge_and_unload, disable_adapters, count_adapter_parameters, count_for_config,
    apply_exported_lora
  - files (``adapter_io``): save_adapters, load_adapters, export_peft (an HF PEFT LoRA folder)
  - training helpers: orthogonal_penalty (``regularizers``),
    register_delta_lora_hook, export_delta_lora, original_weights (``delta_lora``),
    dropout_gradient_gap (``dropout_gradient``)
- ``dcft_edu.experiments``: the experiment engine (data, models, metrics, presets,
  trainer, sweep, analysis, benchmarks and their command lines).
- ``dcft_edu.figures``: the drawing code of every committed figure
  (``python -m dcft_edu.figures``).
"""
from .adapter_io import export_peft, load_adapter_config, load_adapters, save_adapters
from .config import DCFTConfig, DeltaLoRAConfig, LoRAConfig, config_from_dict
from .dcft import DCFTLinear
from .delta_lora import (
    DeltaLoRALinear,
    export_delta_lora,
    original_weights,
    register_delta_lora_hook,
)
from .dropout_gradient import dropout_gradient_gap
from .inject import (
    adapter_layers,
    apply_exported_lora,
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
