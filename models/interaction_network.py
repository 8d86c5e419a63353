"""The message-passing layers shared by the particle models (:mod:`~sciml.models.gns`, :mod:`~sciml.models.giorom`).

An interaction network (Battaglia et al., "Interaction networks for learning about
objects, relations and physics", NeurIPS 2016) in the residual form of the GNS processor
(Sanchez-Gonzalez et al., "Learning to simulate complex physics with graph networks",
ICML 2020, and DeepMind's ``learning_to_simulate``): on a graph with node latents
``v_i`` and edge latents ``e_ij`` (edge ``j -> i``),

.. math::

    e'_{ij} = e_{ij} + \\phi_e([e_{ij}, v_i, v_j]), \\qquad
    v'_i = v_i + \\phi_v([v_i, \\textstyle\\sum_j \\phi_e(\\cdot)_{ij}]),

where the node update aggregates the *new* edge messages (before their residual) and
both MLPs end in a LayerNorm. Aggregation is a sum (GNS) or a mean over the received
edges (GIOROM's processor uses a mean); it is an ``index_add_``, so isolated nodes get
zero.

Examples
--------
>>> import torch
>>> from sciml.models.interaction_network import Processor
>>> proc = Processor(hidden=8, n_layers=2)
>>> nodes, edges = torch.randn(3, 8), torch.randn(2, 8)
>>> out_nodes, out_edges = proc(nodes, edges, torch.tensor([[1, 0], [0, 1]]))
>>> tuple(out_nodes.shape), tuple(out_edges.shape)
((3, 8), (2, 8))
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from sciml.models.base import choice, positive_int

AGGREGATIONS = ("sum", "mean")
CSR_MAX_CHANNELS = 32
"""Widest messages that :func:`aggregate` sums as a sparse product when their receivers are sorted:
on one CPU thread that is 1.4 to 4 times faster than ``index_add_`` up to 32 channels (the
query decoder's 16), and slower from 64 (the interaction blocks' latents)."""


def mlp(in_features: int, hidden: int, out_features: int, n_hidden_layers: int = 2,
        layer_norm: bool = True) -> nn.Sequential:
    """The GNS MLP: ``n_hidden_layers`` ReLU layers of width ``hidden``, a linear output,
    and (optionally) a LayerNorm on the output.

    Examples
    --------
    >>> net = mlp(3, 16, 4, n_hidden_layers=2)
    >>> [type(m).__name__ for m in net]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear', 'LayerNorm']
    """
    layers: list[nn.Module] = []
    width = in_features
    for _ in range(n_hidden_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    layers.append(nn.Linear(width, out_features))
    if layer_norm:
        layers.append(nn.LayerNorm(out_features))
    return nn.Sequential(*layers)


def aggregate(messages: torch.Tensor, receivers: torch.Tensor, n_nodes: int, how: str = "sum") -> torch.Tensor:
    """Sum (or mean) of ``messages`` ``(E, C)`` per receiver: ``(n_nodes, C)``, zero where none arrive.

    By ``index_add_``; on the CPU, narrow messages (at most :data:`CSR_MAX_CHANNELS`
    channels) whose receivers come in ascending order (as
    :func:`~sciml.models.neighbours.RadiusIndex` gives them) are summed instead as one
    sparse CSR matrix-matrix product, rows of ones over contiguous runs: the same sums,
    up to round-off.

    Examples
    --------
    >>> import torch
    >>> m = torch.tensor([[1.0], [3.0], [5.0]])
    >>> aggregate(m, torch.tensor([0, 0, 2]), 3, "mean").flatten().tolist()
    [2.0, 0.0, 5.0]
    >>> aggregate(m, torch.tensor([2, 0, 0]), 3).flatten().tolist()
    [8.0, 0.0, 1.0]
    """
    count = torch.bincount(receivers, minlength=n_nodes)
    if messages.device.type == "cpu" and messages.shape[1] <= CSR_MAX_CHANNELS and len(receivers) > 1 \
            and bool((receivers[1:] >= receivers[:-1]).all()):
        out = _segment_sum(messages, count)
    else:
        out = messages.new_zeros(n_nodes, messages.shape[1]).index_add_(0, receivers, messages)
    if how == "mean":
        out = out / count.clamp(min=1).to(out.dtype)[:, None]
    return out


def _segment_sum(messages: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Sums of consecutive runs of ``count[i]`` rows of ``messages``: a CSR matrix of ones times ``messages``."""
    rows = torch.cat([count.new_zeros(1), torch.cumsum(count, 0)])
    ones = messages.new_ones(len(messages))
    with warnings.catch_warnings():  # torch warns once per process that CSR support is in beta
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta", category=UserWarning)
        matrix = torch.sparse_csr_tensor(rows, torch.arange(len(messages), device=messages.device), ones,
                                         size=(len(count), len(messages)), check_invariants=False)
    return matrix @ messages


class InteractionNetwork(nn.Module):
    """One residual interaction-network block (edge update, then node update).

    Parameters
    ----------
    hidden : int
        Width of the node and edge latents and of the MLPs.
    mlp_layers : int
        Hidden layers of each MLP (GNS: 2).
    aggregation : {"sum", "mean"}
        How received messages are combined.

    Examples
    --------
    >>> import torch
    >>> block = InteractionNetwork(hidden=4)
    >>> v, e = block(torch.zeros(2, 4), torch.zeros(1, 4), torch.tensor([[0], [1]]))
    >>> tuple(v.shape), tuple(e.shape)
    ((2, 4), (1, 4))
    """

    def __init__(self, hidden: int, mlp_layers: int = 2, aggregation: str = "sum"):
        super().__init__()
        self.aggregation = choice("aggregation", aggregation, AGGREGATIONS)
        self.edge_mlp = mlp(3 * hidden, hidden, hidden, mlp_layers)
        self.node_mlp = mlp(2 * hidden, hidden, hidden, mlp_layers)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor,
                edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(nodes (N, h), edges (E, h), edge_index (2, E) senders/receivers) -> (nodes', edges')``."""
        senders, receivers = edge_index
        messages = self.edge_mlp(torch.cat([edges, nodes[receivers], nodes[senders]], dim=1))
        received = aggregate(messages, receivers, len(nodes), self.aggregation)
        nodes = nodes + self.node_mlp(torch.cat([nodes, received], dim=1))
        return nodes, edges + messages


class Processor(nn.Module):
    """``n_layers`` interaction-network blocks with unshared weights (the GNS processor).

    Parameters
    ----------
    hidden : int
        Latent width.
    n_layers : int
        Message-passing steps ``M``.
    mlp_layers : int
        Hidden layers of each MLP.
    aggregation : {"sum", "mean"}
        How received messages are combined.

    Examples
    --------
    >>> proc = Processor(hidden=4, n_layers=3)
    >>> len(proc.blocks)
    3
    """

    def __init__(self, hidden: int, n_layers: int, mlp_layers: int = 2, aggregation: str = "sum"):
        super().__init__()
        positive_int("n_message_passing", n_layers)
        self.blocks = nn.ModuleList(InteractionNetwork(hidden, mlp_layers, aggregation) for _ in range(n_layers))

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor,
                edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            nodes, edges = block(nodes, edges, edge_index)
        return nodes, edges
