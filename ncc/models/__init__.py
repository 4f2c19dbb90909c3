"""Graph and sequence models over program graphs: pure torch / torch_geometric modules.

Every model takes a ``torch_geometric.data.Batch`` of :func:`ncc.graph.to_pyg` outputs (``x`` long ``[N]``
feature ids, ``edge_index`` long ``[2, E]``, ``edge_flow`` long ``[E]`` with 0 control, 1 data, 2 call,
``edge_position`` long ``[E]``, ``node_type`` long ``[N]``, ``batch`` long ``[N]`` and, for models built
with ``aux_dim > 0``, ``aux`` float ``[B, aux_dim]``; with ``selector=True``, ``selector`` long ``[N]``)
and returns logits, ``[B, C]`` for
``readout="graph"`` and ``[N, C]`` for ``readout="node"``. Models never read or write files.

    >>> from ncc.graph import to_pyg
    >>> from ncc.models import build_model
    >>> model = build_model("ggnn", vocab_size=len(vocabulary), num_classes=104)
    >>> logits = model(Batch.from_data_list([to_pyg(g, vocabulary) for g in graphs]))
"""

from __future__ import annotations

from typing import Any

from ncc.models.common import from_config
from ncc.models.gine import RelationalGINE
from ncc.models.ggnn import GGNN
from ncc.models.lstm import Inst2vecLSTM
from ncc.models.nodes import NodeMLP

#: Model name (as ``ncc train --model`` takes it) -> class.
MODELS: dict[str, type] = {"ggnn": GGNN, "lstm": Inst2vecLSTM, "mlp": NodeMLP, "rgine": RelationalGINE}


def build_model(name: str, **kwargs: Any):
    """A model of :data:`MODELS` by name, built from keyword arguments.

    Raises:
        ValueError: the name is unknown, an argument is unknown, or a value is impossible.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(sorted(MODELS))}")
    return from_config(MODELS[name], kwargs)


__all__ = ["MODELS", "build_model", "GGNN", "Inst2vecLSTM", "NodeMLP", "RelationalGINE"]
