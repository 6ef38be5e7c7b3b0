"""Cache a model's activations over a dataset, in memory or on disk, with labels aligned to every row.

    from toolkit import activations
    acts = activations.cache(model, data, hooks="resid_post", positions="loss")
    acts["blocks.1.hook_resid_post"]          # [n_rows, d_model]
    acts.example_index, acts.position, acts.token
    values, valid = acts.labels("parent")      # [n_rows, ...], [n_rows] bool
    activations.hook_names(model)              # every hook you can ask for
    logits, hooks = activations.trace(model, tokens[:8], ("attn.hook_pattern",))  # a few examples, hook shapes
"""

from toolkit.activations.cache import cache, load
from toolkit.activations.full import trace
from toolkit.activations.hooks import hook_names, layer_of, resolve
from toolkit.activations.positions import position_mask
from toolkit.activations.result import Activations, LazyRows

__all__ = ["Activations", "LazyRows", "cache", "hook_names", "layer_of", "load", "position_mask", "resolve",
           "trace"]
