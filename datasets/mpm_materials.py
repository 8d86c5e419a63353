"""Constitutive models of the material point method: stress and plastic return mapping.

Every material maps the trial deformation gradient ``F`` of its particles (after the
update ``F <- (I + dt C) F``) to the projected ``F``, the updated plastic state and the
Kirchhoff stress ``tau = P F^T``, which is what the MLS-MPM momentum transfer needs
(:mod:`sciml.datasets.mpm`). All act on batches ``(n, d, d)`` with ``d = 2`` or ``3``;
two-dimensional runs are plane strain. Lame parameters come from Young's modulus ``E``
and Poisson's ratio ``nu`` as ``mu = E / (2 (1 + nu))``, ``lambda = E nu / ((1 + nu)(1 - 2 nu))``.

- ``"fluid"`` (:class:`WeaklyCompressibleFluid`): Tait equation of state in ``J = det F``,
  ``F`` reset to ``J^(1/d) I`` every step as in taichi's mpm99 fluid;
- ``"elastic"`` (:class:`NeoHookean`): compressible neo-Hookean solid;
- ``"sand"`` (:class:`DruckerPragerSand`): Drucker-Prager plasticity in Hencky strain
  with the hardening of Klar et al. (2016);
- ``"plastic"`` (:class:`VonMisesPlastic`): perfectly plastic von Mises return mapping
  on the deviatoric Hencky strain (the metal/plasticine model of NCLaw and PhysGaussian).

Sand and plastic use the St. Venant-Kirchhoff model in Hencky strain for their elastic
part: with ``F = U diag(s) V^T`` and ``eps = log s``, ``tau = U diag(2 mu eps + lambda tr(eps)) U^T``.

References
----------
Klar, Gast, Pradhana, Fu, Schroeder, Jiang & Teran, "Drucker-Prager elastoplasticity for
sand animation", ACM TOG 35(4), 2016 (and its technical document).
Jiang, Schroeder, Teran, Stomakhin & Selle, "The material point method for simulating
continuum materials", SIGGRAPH 2016 course, sec. 6.
Ma, Chen, Tong, Tenenbaum, Gan, Lu & Sun, "Learning neural constitutive laws from motion
observations for generalizable PDE dynamics" (NCLaw), ICML 2023.

Examples
--------
>>> import torch
>>> material = get_material(("elastic", {"E": 1e5, "nu": 0.3}))
>>> F = torch.eye(2).expand(3, 2, 2)
>>> F_new, plastic, tau = material.stress_update(F, torch.zeros(3))
>>> float(tau.abs().max()), round(material.wave_speed(), 2)
(0.0, 11.6)
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch

from sciml.datasets.problem import check_number
from sciml.errors import SciMLError
from sciml.registry import Registry, parse_spec

__all__ = [
    "MATERIALS",
    "Material",
    "WeaklyCompressibleFluid",
    "NeoHookean",
    "DruckerPragerSand",
    "VonMisesPlastic",
    "get_material",
]

MATERIALS: Registry[type["Material"]] = Registry("MPM material")


def get_material(spec) -> "Material":
    """A material from a name, ``(name, kwargs)``, ``{"name": ..., **kwargs}`` or an instance.

    Unknown names raise :class:`sciml.errors.UnknownNameError` listing the valid ones.

    Examples
    --------
    >>> get_material("sand").name, get_material({"name": "fluid", "gamma": 1.0}).gamma
    ('sand', 1.0)
    """
    if isinstance(spec, Material):
        return spec
    name, kwargs = parse_spec(spec)
    cls = MATERIALS.get(name)
    unknown = sorted(set(kwargs) - set(cls.parameter_names))
    if unknown:
        raise SciMLError(f"MPM material {name!r} has no setting {unknown[0]!r}; valid settings are "
                         f"{list(cls.parameter_names)}")
    return cls(**kwargs)


class Material(ABC):
    """Base class of MPM constitutive models; subclasses register with ``name=``.

    Subclasses list their settings in ``parameter_names`` (stored as attributes, so
    :meth:`config` rebuilds the material) and implement :meth:`wave_speed` and
    :meth:`stress_update`.

    Parameters
    ----------
    density : float
        Rest mass density (kg / m^d).
    """

    name: ClassVar[str] = ""
    parameter_names: ClassVar[tuple[str, ...]] = ("density",)

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name
            MATERIALS.register(name, cls)

    def __init__(self, density: float):
        self.density = check_number(f"MPM material {self.name!r}", "density", density, positive=True)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings; ``get_material(material.config())`` rebuilds it.

        Examples
        --------
        >>> get_material("elastic").config()
        {'name': 'elastic', 'density': 1000.0, 'E': 1000000.0, 'nu': 0.3}
        """
        return {"name": self.name, **{key: getattr(self, key) for key in self.parameter_names}}

    def __repr__(self) -> str:
        settings = ", ".join(f"{key}={getattr(self, key)!r}" for key in self.parameter_names)
        return f"{type(self).__name__}({settings})"

    @abstractmethod
    def wave_speed(self) -> float:
        """The fastest small-strain wave speed (m/s); the time step limit uses it."""

    @abstractmethod
    def stress_update(self, F: torch.Tensor, plastic: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return mapping and stress of a batch of particles.

        Parameters
        ----------
        F : torch.Tensor
            Trial deformation gradients, ``(n, d, d)``.
        plastic : torch.Tensor
            Plastic state per particle, ``(n,)`` (accumulated plastic strain; unused by
            fluid and elastic).

        Returns
        -------
        F, plastic, tau : torch.Tensor
            Projected deformation gradients, updated plastic state and Kirchhoff
            stress ``tau = P F^T`` ``(n, d, d)``.
        """


class _LameMaterial(Material):
    """A material with Young's modulus ``E`` and Poisson's ratio ``nu``."""

    parameter_names = ("density", "E", "nu")

    def __init__(self, density: float, E: float, nu: float):
        super().__init__(density)
        self.E = check_number(f"MPM material {self.name!r}", "E", E, positive=True)
        self.nu = check_number(f"MPM material {self.name!r}", "nu", nu)
        if not 0.0 <= self.nu < 0.5:
            raise SciMLError(f"MPM material {self.name!r} setting nu must be in [0, 0.5), got {nu!r}")
        self.mu = self.E / (2.0 * (1.0 + self.nu))
        self.lam = self.E * self.nu / ((1.0 + self.nu) * (1.0 - 2.0 * self.nu))

    def wave_speed(self) -> float:
        """Pressure wave speed ``sqrt((lambda + 2 mu) / density)``."""
        return math.sqrt((self.lam + 2.0 * self.mu) / self.density)


def _hencky_stress(U: torch.Tensor, eps: torch.Tensor, mu: float, lam: float) -> torch.Tensor:
    """St. Venant-Kirchhoff Kirchhoff stress in Hencky strain: ``U diag(2 mu eps + lam tr eps) U^T``."""
    principal = 2.0 * mu * eps + lam * eps.sum(-1, keepdim=True)
    return (U * principal.unsqueeze(-2)) @ U.transpose(-1, -2)


def _deviatoric_split(eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Trace, deviatoric part and its Frobenius norm of principal strains ``(n, d)``."""
    trace = eps.sum(-1)
    dev = eps - trace.unsqueeze(-1) / eps.shape[-1]
    return trace, dev, torch.linalg.vector_norm(dev, dim=-1)


class WeaklyCompressibleFluid(Material, name="fluid"):
    """Weakly compressible inviscid fluid with the Tait equation of state.

    Pressure ``p = (K / gamma) (J^-gamma - 1)`` with ``J = det F`` and bulk modulus
    ``K``, Kirchhoff stress ``tau = -p J I``. Only ``J`` is kept: ``F`` is reset to
    ``J^(1/d) I`` every step, as taichi's mpm99 does for its fluid (mpm99 uses the
    equation of state ``tau = K J (J - 1) I`` instead; both have bulk modulus ``K`` at
    rest). Tension (``J > 1``) gives a bounded negative pressure ``p > -K / gamma``.
    No viscosity is added: the APIC transfer is the only dissipation.

    Parameters
    ----------
    density : float
        Rest density (default 1000).
    bulk_modulus : float
        ``K = rho c^2`` at rest (default 1e6, sound speed ~32 m/s: ~7 times the
        fastest flow in a unit box, so density varies by a few percent).
    gamma : float
        Tait exponent (default 7, water).

    Examples
    --------
    >>> import torch
    >>> fluid = WeaklyCompressibleFluid(bulk_modulus=7.0, gamma=7.0)
    >>> F, _, tau = fluid.stress_update(torch.tensor([[[0.5, 0.1], [0.0, 1.0]]]), torch.zeros(1))
    >>> F[0].diag().tolist(), round(tau[0, 0, 0].item(), 3)
    ([0.7071067690849304, 0.7071067690849304], -63.5)
    """

    parameter_names = ("density", "bulk_modulus", "gamma")

    def __init__(self, density: float = 1000.0, bulk_modulus: float = 1e6, gamma: float = 7.0):
        super().__init__(density)
        self.bulk_modulus = check_number("MPM material 'fluid'", "bulk_modulus", bulk_modulus, positive=True)
        self.gamma = check_number("MPM material 'fluid'", "gamma", gamma, positive=True)

    def wave_speed(self) -> float:
        """Sound speed ``sqrt(K / density)``."""
        return math.sqrt(self.bulk_modulus / self.density)

    def stress_update(self, F, plastic):
        d = F.shape[-1]
        J = torch.linalg.det(F)
        eye = torch.eye(d, dtype=F.dtype, device=F.device)
        F = J.pow(1.0 / d)[:, None, None] * eye
        pressure = self.bulk_modulus / self.gamma * (J.pow(-self.gamma) - 1.0)
        return F, plastic, (-pressure * J)[:, None, None] * eye


class NeoHookean(_LameMaterial, name="elastic"):
    """Compressible neo-Hookean elastic solid.

    ``P = mu (F - F^-T) + lambda log(J) F^-T``, so ``tau = P F^T = mu (F F^T - I) +
    lambda log(J) I`` (Jiang et al. 2016 course notes, eq. 48). No plasticity: ``F`` is
    returned unchanged.

    Parameters
    ----------
    density : float
        Rest density (default 1000).
    E, nu : float
        Young's modulus (default 1e6, soft rubber) and Poisson's ratio (default 0.3).

    Examples
    --------
    >>> import torch
    >>> F = torch.tensor([[[1.1, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    >>> tau = NeoHookean(E=1.0, nu=0.0).stress_update(F, torch.zeros(1))[2]
    >>> [round(x, 4) for x in tau[0].diag().tolist()]
    [0.105, 0.0]
    """

    def __init__(self, density: float = 1000.0, E: float = 1e6, nu: float = 0.3):
        super().__init__(density, E, nu)

    def stress_update(self, F, plastic):
        d = F.shape[-1]
        eye = torch.eye(d, dtype=F.dtype, device=F.device)
        log_J = torch.log(torch.linalg.det(F))
        tau = self.mu * (F @ F.transpose(-1, -2) - eye) + (self.lam * log_J)[:, None, None] * eye
        return F, plastic, tau


class DruckerPragerSand(_LameMaterial, name="sand"):
    """Drucker-Prager elastoplastic sand (Klar et al. 2016).

    With ``F = U diag(s) V^T``, ``eps = log s``, deviatoric part ``eps_hat`` and
    ``dgamma = |eps_hat| + (d lambda + 2 mu) / (2 mu) tr(eps) alpha``, the return
    mapping (Klar et al., Algorithm 2) is: expansion (``tr eps > 0``) projects to the
    cone tip, ``eps = 0`` (stress free, the grains separate); ``dgamma <= 0`` is
    elastic; otherwise ``eps -= dgamma eps_hat / |eps_hat|``, which puts the Kirchhoff
    stress on the cone ``|dev tau| + alpha tr(tau) = 0``. ``alpha = sqrt(2/3) 2 sin(phi)
    / (3 - sin(phi))`` with friction angle ``phi = h0 + (h1 q - h3) exp(-h2 q)`` (degrees),
    ``q`` the accumulated plastic strain (``dgamma``, or ``|eps|`` at the tip). Elasticity
    is St. Venant-Kirchhoff in Hencky strain. Departures from the paper: no volume
    correction (that is Tampubolon et al. 2017) and an isotropic return in 2-D too.

    Parameters
    ----------
    density : float
        Rest density (default 2200, Klar et al.).
    E, nu : float
        Young's modulus (default 3.537e5) and Poisson's ratio (default 0.3), Klar et al.
    h0, h1, h2, h3 : float
        Hardening parameters (defaults 35, 9, 0.2, 10 as in the paper; ``h1 = h3 = 0``
        gives the constant friction angle ``h0``).

    Examples
    --------
    >>> import torch
    >>> sand = DruckerPragerSand()
    >>> stretched = torch.diag(torch.tensor([1.01, 1.02], dtype=torch.float64))[None]
    >>> F, q, tau = sand.stress_update(stretched, torch.zeros(1, dtype=torch.float64))
    >>> F[0].diag().tolist(), float(tau.abs().max()), round(q.item(), 4)
    ([1.0, 1.0], 0.0, 0.0222)
    """

    parameter_names = ("density", "E", "nu", "h0", "h1", "h2", "h3")

    def __init__(self, density: float = 2200.0, E: float = 3.537e5, nu: float = 0.3,
                 h0: float = 35.0, h1: float = 9.0, h2: float = 0.2, h3: float = 10.0):
        super().__init__(density, E, nu)
        for key, value in (("h0", h0), ("h1", h1), ("h2", h2), ("h3", h3)):
            setattr(self, key, check_number("MPM material 'sand'", key, value))
        if not 0.0 < self.h0 < 90.0 or self.h2 < 0.0:
            raise SciMLError(f"MPM material 'sand' needs 0 < h0 < 90 degrees and h2 >= 0, got h0={h0!r}, h2={h2!r}")

    def friction_coefficient(self, q: torch.Tensor) -> torch.Tensor:
        """``alpha(q)``: the Drucker-Prager cone slope at accumulated plastic strain ``q``.

        Examples
        --------
        >>> import torch
        >>> round(DruckerPragerSand(h1=0.0, h3=0.0, h0=30.0).friction_coefficient(torch.zeros(1)).item(), 4)
        0.3266
        """
        phi = torch.deg2rad(self.h0 + (self.h1 * q - self.h3) * torch.exp(-self.h2 * q))
        sin_phi = torch.sin(phi)
        return math.sqrt(2.0 / 3.0) * 2.0 * sin_phi / (3.0 - sin_phi)

    def stress_update(self, F, plastic):
        d = F.shape[-1]
        U, s, Vh = torch.linalg.svd(F)
        eps = torch.log(s)
        trace, dev, dev_norm = _deviatoric_split(eps)
        eps_norm = torch.linalg.vector_norm(eps, dim=-1)
        alpha = self.friction_coefficient(plastic)
        dgamma = dev_norm + (d * self.lam + 2.0 * self.mu) / (2.0 * self.mu) * trace * alpha
        tip = trace > 0
        shear = ~tip & (dgamma > 0)  # here |eps_hat| > 0, as dgamma > 0 with tr(eps) <= 0
        direction = dev / torch.where(shear, dev_norm, torch.ones_like(dev_norm)).unsqueeze(-1)
        eps = torch.where(tip.unsqueeze(-1), torch.zeros_like(eps),
                          torch.where(shear.unsqueeze(-1), eps - dgamma.unsqueeze(-1) * direction, eps))
        plastic = plastic + torch.where(tip, eps_norm,
                                        torch.where(shear, dgamma, torch.zeros_like(dgamma)))
        F = (U * torch.exp(eps).unsqueeze(-2)) @ Vh
        return F, plastic, _hencky_stress(U, eps, self.mu, self.lam)


class VonMisesPlastic(_LameMaterial, name="plastic"):
    """Perfectly plastic von Mises solid in Hencky strain (plasticine, metal).

    Yield surface ``sqrt(3/2) |dev tau| <= yield_stress``; with ``dev tau = 2 mu eps_hat``
    the return mapping shrinks the deviatoric Hencky strain to
    ``|eps_hat| = sqrt(2/3) yield_stress / (2 mu)``, keeping its direction and the
    volumetric part (radial return; no hardening). As NCLaw's and PhysGaussian's von Mises
    model; the plastic state accumulates the plastic strain increments ``dgamma``.

    Parameters
    ----------
    density : float
        Rest density (default 1000).
    E, nu : float
        Young's modulus (default 1e6) and Poisson's ratio (default 0.3).
    yield_stress : float
        Uniaxial yield stress (default 1e4 Pa).

    Examples
    --------
    >>> import torch
    >>> material = VonMisesPlastic(E=1.0, nu=0.0, yield_stress=0.01)
    >>> F, q, tau = material.stress_update(torch.diag(torch.tensor([1.2, 0.9]))[None], torch.zeros(1))
    >>> dev = tau[0] - tau[0].trace() / 2 * torch.eye(2)
    >>> round(1.5 ** 0.5 * torch.linalg.matrix_norm(dev).item(), 6)
    0.01
    """

    parameter_names = ("density", "E", "nu", "yield_stress")

    def __init__(self, density: float = 1000.0, E: float = 1e6, nu: float = 0.3, yield_stress: float = 1e4):
        super().__init__(density, E, nu)
        self.yield_stress = check_number("MPM material 'plastic'", "yield_stress", yield_stress, positive=True)

    def stress_update(self, F, plastic):
        U, s, Vh = torch.linalg.svd(F)
        eps = torch.log(s)
        _, dev, dev_norm = _deviatoric_split(eps)
        dgamma = dev_norm - math.sqrt(2.0 / 3.0) * self.yield_stress / (2.0 * self.mu)
        yielded = dgamma > 0
        direction = dev / torch.where(yielded, dev_norm, torch.ones_like(dev_norm)).unsqueeze(-1)
        eps = torch.where(yielded.unsqueeze(-1), eps - dgamma.unsqueeze(-1) * direction, eps)
        plastic = plastic + torch.where(yielded, dgamma, torch.zeros_like(dgamma))
        F = (U * torch.exp(eps).unsqueeze(-2)) @ Vh
        return F, plastic, _hencky_stress(U, eps, self.mu, self.lam)
