"""Circuit analysis on any TransformerBridge (our native models or a Hugging Face architecture booted from a
folder), on SearchDatasets or plain tokens ``[n, seq]``; built on :mod:`toolkit.interventions` and
:mod:`toolkit.activations`.

    from toolkit import circuits
    dla = circuits.direct_logit_attribution(model, tokens, token=good, minus=bad, positions=-1)
    dla.table()                                              # which head / MLP writes the answer directly
    lens = circuits.logit_lens(model, tokens, token=good)    # the answer's probability after every block
    circuits.ov_readout(model, layer=1, head=0)              # [d_vocab, d_vocab]: what the head copies
    circuits.path_patching(model, clean, corrupt, sender=(0, 1), receivers=[(1, 0, "v"), "logits"])
    circuits.patching_agreement(model, clean, corrupt)       # attribution patching vs real patching
    with circuits.ablate_components(model, ["L0H1", "MLP1"], method="mean", reference=data):
        ...
    circuits.faithfulness(model, ["L0H1", "L1H0"], data, metric="token_acc", n_random=20)
    circuits.Circuit.from_json("docs/circuits/tree-8.json")

Components are ``(layer, head)`` / ``"L1H0"`` for a head, ``(layer, None)`` / ``"MLP1"`` for an MLP, or a dict
``{"layer", "head", "role", "positions"}`` (see :mod:`toolkit.circuits.components`).
"""

from toolkit.circuits.ablation import ablate_components, reference_activations
from toolkit.circuits.attribution import DLAResult, LogitLensResult, direct_logit_attribution, logit_lens
from toolkit.circuits.attribution_patching import (
           AttributionPatchingResult,
           agreement,
           attribution_patching,
           patching_agreement,
           real_patching_effects,
)
from toolkit.circuits.components import Component, all_components, component, components
from toolkit.circuits.metrics import CircuitScore, completeness, faithfulness, random_circuits
from toolkit.circuits.path_patching import PathPatchingResult, path_patching
from toolkit.circuits.readouts import ov_readout, qk_readout
from toolkit.circuits.spec import Circuit

__all__ = ["AttributionPatchingResult", "Circuit", "CircuitScore", "Component", "DLAResult", "LogitLensResult",
           "PathPatchingResult", "ablate_components", "agreement", "all_components", "attribution_patching",
           "completeness", "component", "components", "direct_logit_attribution", "faithfulness", "logit_lens",
           "ov_readout", "patching_agreement", "path_patching", "qk_readout", "random_circuits",
           "real_patching_effects", "reference_activations"]
