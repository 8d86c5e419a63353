"""A PDE and its initial/boundary conditions in the form a physics constraint needs.

A hard-constraint layer (Chalapathi, Du, Krishnapriyan, ICLR 2024) writes the solution on
a space-time grid ``(t, *space)`` as an expansion ``u = sum_i w_i b_i`` in basis functions
``b_i`` that a network outputs, and solves for the weights ``w`` so that the PDE and its
conditions hold at chosen points. Because every derivative is linear, the derivatives of
``u`` are the same expansion of the derivatives of the ``b_i``: a :class:`PDEConstraint`
therefore splits the residual into

* :meth:`~PDEConstraint.derivatives`, a **linear** map applied once to every basis
  function on the whole grid (finite differences, spectral derivatives), and
* :meth:`~PDEConstraint.pde_residual` and :meth:`~PDEConstraint.condition_residual`,
  **pointwise** (possibly nonlinear) functions of those derivative values at points.

The soft constraint (the residual in the loss) uses the same two methods on ``u`` itself.

Examples
--------
>>> import torch
>>> from sciml.datasets.pde_constraint import PDEConstraint
>>> class Transport(PDEConstraint):
...     derivative_names = ("u", "u_t", "u_x")
...     def derivatives(self, fields):
...         dt, dx = self.spacing
...         return {"u": fields, "u_t": torch.gradient(fields, spacing=dt, dim=-2)[0],
...                 "u_x": torch.gradient(fields, spacing=dx, dim=-1)[0]}
...     def pde_residual(self, values, data, index):
...         return values["u_t"] + values["u_x"]
...     def condition_mask(self):
...         mask = torch.zeros(self.grid_shape, dtype=torch.bool)
...         mask[0] = True
...         return mask
...     def condition_residual(self, values, data, index):
...         return values["u"] - data["initial"][:, index[:, 1]]
>>> c = Transport(grid_shape=(5, 8), spacing=(0.1, 0.125))
>>> c.condition_mask().sum().item()
8
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import torch

from sciml.errors import SciMLError


class PDEConstraint(ABC):
    """A PDE on a space-time grid ``(t, *space)``, split into linear derivatives and pointwise residuals.

    Parameters
    ----------
    grid_shape : sequence of int
        Points along ``(t, *space)``.
    spacing : sequence of float
        Grid spacing along the same axes.

    Notes
    -----
    Tensors of values at points have shape ``(B, ..., P)``: any leading batch axes, then
    the points. ``data`` holds the per-sample inputs the residuals need (an initial
    condition ``(B, *space)``, a forcing, ...), as the concrete constraint documents.
    """

    derivative_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, grid_shape: Sequence[int], spacing: Sequence[float]):
        self.grid_shape = tuple(int(n) for n in grid_shape)
        self.spacing = tuple(float(h) for h in spacing)
        if len(self.spacing) != len(self.grid_shape):
            raise SciMLError(f"spacing {list(self.spacing)} has {len(self.spacing)} entries but the grid "
                             f"{list(self.grid_shape)} has {len(self.grid_shape)} axes: give one spacing per axis")
        if min(self.grid_shape) < 2 or min(self.spacing) <= 0:
            raise SciMLError(f"grid {list(self.grid_shape)} with spacing {list(self.spacing)} is degenerate: "
                             "use at least 2 points and a positive spacing on every axis")

    @property
    def ndim(self) -> int:
        """Number of grid axes, time included."""
        return len(self.grid_shape)

    @abstractmethod
    def derivatives(self, fields: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every derivative in :attr:`derivative_names` of ``fields (..., *grid_shape)``, same shape.

        Must be linear in ``fields``: it is applied to each basis function separately.
        """

    @abstractmethod
    def pde_residual(self, values: dict[str, torch.Tensor], data: dict[str, torch.Tensor],
                     index: torch.Tensor) -> torch.Tensor:
        """The PDE residual at the points with grid indices ``index (P, ndim)`` from the derivative
        values there, ``(B, ..., P) -> (B, ..., P)`` (``index`` locates a forcing or a coefficient)."""

    @abstractmethod
    def condition_mask(self) -> torch.Tensor:
        """Boolean ``grid_shape`` mask of the points where an initial or boundary condition applies."""

    @abstractmethod
    def condition_residual(self, values: dict[str, torch.Tensor], data: dict[str, torch.Tensor],
                           index: torch.Tensor) -> torch.Tensor:
        """The condition residual at the points with grid indices ``index (Q, ndim)``: ``(B, ..., Q)``."""

    def condition_index(self) -> torch.Tensor:
        """Grid indices ``(Q, ndim)`` of the condition points."""
        return torch.nonzero(self.condition_mask())

    def residual_on_grid(self, u: torch.Tensor, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """The PDE residual of a solution ``u (B, *grid_shape)`` at every grid point, ``(B, *grid_shape)``.

        This is what a soft constraint puts in the loss.
        """
        if tuple(u.shape[1:]) != self.grid_shape:
            raise SciMLError(f"solution of shape {tuple(u.shape)} does not match the constraint grid "
                             f"{list(self.grid_shape)}: pass (batch, *grid_shape)")
        values = {k: v.flatten(1) for k, v in self.derivatives(u).items()}
        index = torch.nonzero(torch.ones(self.grid_shape, dtype=torch.bool, device=u.device))
        return self.pde_residual(values, data, index).reshape(u.shape)
