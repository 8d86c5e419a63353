"""The interface every neural operator in :mod:`sciml.models` implements.

A :class:`GridModel` maps fields sampled on a regular grid, ``(B, C_in, *spatial)``, to
fields on the same grid, ``(B, C_out, *spatial)``. Subclasses register themselves by name,
keep the JSON-serialisable keyword arguments they were built with in ``self.config`` so
:func:`build_model` rebuilds them from a checkpoint, and say through :meth:`check_input`
which grids they cannot handle.

Examples
--------
>>> from sciml.models import build_model, list_models
>>> "fno" in list_models()
True
>>> model = build_model("fno", in_channels=2, out_channels=1, n_modes=4, width=8)
>>> model.config["n_modes"], model.dim
([4, 4], 2)
"""

from __future__ import annotations

import inspect
import json
from typing import Sequence

import torch

from sciml.errors import SciMLError
from sciml.registry import Registry

MODELS: Registry = Registry("model")


def positive_int(key: str, value) -> int:
    """``value`` if it is a positive integer, else a one-line error naming ``model.<key>``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SciMLError(f"model.{key} must be a positive integer, got {value!r}")
    return value


def spatial_dim(value, model: str, allowed=(1, 2, 3)) -> int:
    """``value`` if it is one of the ``allowed`` numbers of spatial dimensions, else a one-line error.

    Examples
    --------
    >>> spatial_dim(3, "the FNO")
    3
    """
    dim = positive_int("dim", value)
    if dim not in allowed:
        grids = ", ".join(f"{d}-" for d in allowed[:-1]) + f" or {allowed[-1]}-D"
        raise SciMLError(f"model.dim = {dim} is not supported: {model} works on {grids} grids")
    return dim


def choice(key: str, value, allowed):
    """``value`` if it is one of ``allowed``, else a one-line error listing them."""
    if value not in allowed:
        raise SciMLError(f"model.{key} = {value!r} is not supported; choose one of {list(allowed)}")
    return value


class GridModel(torch.nn.Module):
    """Base class of grid-to-grid neural operators, registered by name.

    Subclass with ``class MyModel(GridModel, name="mine")`` and call
    ``super().__init__(config)`` with the constructor's keyword arguments (which must
    include ``in_channels``, ``out_channels`` and ``dim``).

    Parameters
    ----------
    config : dict
        JSON-serialisable constructor arguments; ``build_model(name, **config)`` rebuilds
        an identical (untrained) model.

    Attributes
    ----------
    name : str
        The registry name (class attribute).
    supports_resolution_change : bool
        Whether a model trained on one grid can be evaluated on another (class attribute).
    config : dict
        A copy of the constructor arguments.

    Examples
    --------
    >>> from sciml.models import build_model
    >>> model = build_model("fno", in_channels=1, out_channels=1, n_modes=4, width=8)
    >>> model.check_input((2, 16))
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: resolution 2 (axis 0) is too small for n_modes 4: use resolution >= 4 or set model.n_modes <= 2
    """

    name: str = ""
    supports_resolution_change: bool = True
    fits_training_outputs: bool = False
    """Whether :meth:`fit_training_outputs` must see the training outputs before training
    (e.g. POD-DeepONet's modes); the training loop calls it once on a fresh model."""

    def __init_subclass__(cls, name: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if name is not None:
            cls.name = name.lower()
            MODELS.register(cls.name, cls)

    def __init__(self, config: dict):
        super().__init__()
        missing = [k for k in ("in_channels", "out_channels", "dim") if k not in config]
        if missing:
            raise SciMLError(f"model {self.name!r} config lacks {missing}; pass them to GridModel.__init__")
        for key in ("in_channels", "out_channels", "dim"):
            positive_int(key, config[key])
        try:
            self.config = json.loads(json.dumps(config))
        except TypeError as err:
            raise SciMLError(f"model {self.name!r} options must be JSON values (numbers, strings, lists): {err}") from None

    @property
    def in_channels(self) -> int:
        return self.config["in_channels"]

    @property
    def out_channels(self) -> int:
        return self.config["out_channels"]

    @property
    def dim(self) -> int:
        """Number of spatial dimensions the model works on."""
        return self.config["dim"]

    @property
    def n_parameters(self) -> int:
        """Number of trainable real scalars (a complex weight counts twice)."""
        return sum(p.numel() * (2 if p.is_complex() else 1) for p in self.parameters() if p.requires_grad)

    def check_input(self, spatial_shape: Sequence[int]) -> None:
        """Raise :class:`SciMLError` if the model cannot handle inputs on this grid.

        The base class checks the number of spatial dimensions; subclasses extend it
        (e.g. with the smallest resolution their modes need).
        """
        shape = tuple(int(n) for n in spatial_shape)
        if len(shape) != self.dim:
            raise SciMLError(
                f"the data is {len(shape)}-D (grid {list(shape)}) but model {self.name!r} is {self.dim}-D: "
                f"set model.dim = {len(shape)} or use {self.dim}-D data"
            )
        if min(shape) < 1:
            raise SciMLError(f"grid {list(shape)} has an empty axis: use at least one point per axis")

    def check_batch(self, x: torch.Tensor) -> None:
        """Check a batch ``(B, C_in, *spatial)`` against the channels and :meth:`check_input`."""
        if x.ndim != self.dim + 2 or x.shape[1] != self.in_channels:
            raise SciMLError(
                f"model {self.name!r} expects input of shape (batch, {self.in_channels}, <{self.dim} grid sizes>), "
                f"got {tuple(x.shape)}: check data.inputs and the data's dimension"
            )
        self.check_input(x.shape[2:])

    def fit_training_outputs(self, outputs: torch.Tensor) -> None:
        """Fix data-derived parts of the model from the normalised training outputs
        ``(N, C_out, *grid)``; models with ``fits_training_outputs`` override it."""

    def state_dict(self, *args, **kwargs):
        """Parameters and buffers only, so checkpoints load with ``torch.load(weights_only=True)``.

        Wrapped libraries may add other entries: neuraloperator's models add ``_metadata``
        (their constructor arguments, functions included), which is dropped here; the
        model is rebuilt from :attr:`config` instead.
        """
        state = super().state_dict(*args, **kwargs)
        for key in [k for k, v in state.items() if not isinstance(v, torch.Tensor)]:
            del state[key]
        return state


def list_models() -> list[str]:
    """Names of the registered models, sorted.

    Examples
    --------
    >>> from sciml.models import list_models
    >>> "fno" in list_models()
    True
    """
    return MODELS.names()


def build_model(name: str, **config) -> GridModel:
    """Build the model registered as ``name`` from keyword arguments.

    Unknown or missing arguments raise a one-line :class:`SciMLError` naming the valid
    ones; an unknown name raises :class:`~sciml.errors.UnknownNameError`.

    Examples
    --------
    >>> from sciml.models import build_model
    >>> model = build_model("fno", in_channels=1, out_channels=1, n_modes=[4], width=8)
    >>> model.dim
    1
    >>> build_model("fno", in_channels=1, out_channels=1, modes=4)
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: model 'fno' has no option ['modes']; its options are: in_channels, out_channels, n_modes, width, n_layers, dim, positional_embedding, domain_padding, lifting_channel_ratio, projection_channel_ratio, norm, fno_skip, channel_mlp_skip, factorization, rank
    """
    cls = MODELS.get(name)
    params = inspect.signature(cls.__init__).parameters
    options = [p for p in params if p != "self"]
    unknown = [k for k in config if k not in options]
    if unknown:
        raise SciMLError(f"model {cls.name!r} has no option {unknown}; its options are: {', '.join(options)}")
    missing = [p for p in options if params[p].default is inspect.Parameter.empty and p not in config]
    if missing:
        raise SciMLError(f"model {cls.name!r} needs option(s) {missing}")
    return cls(**config)
