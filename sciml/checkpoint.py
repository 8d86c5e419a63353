"""Model checkpoints that load with ``torch.load(weights_only=True)``.

A checkpoint is a dict of tensors and plain values (str, int, float, bool, None, lists,
dicts): no pickled classes or functions, so loading one never runs foreign code. It
holds

- ``format``: JSON string ``{"name": "sciml-checkpoint", "version": 1, "packages": {...}}``
  (sciml, torch, neuralop and numpy versions that wrote it);
- ``model_name``, ``model_config`` (JSON string), ``model_state`` (state dict);
- ``normalization`` (per-channel mean/std tensors, see :mod:`sciml.normalization`);
- ``input_names``, ``output_names``, ``spatial_shape``, ``spacing`` of the training data;
- anything else the trainer adds (epoch, metrics, and for resuming the optimiser,
  scheduler, history and RNG states, see :func:`capture_rng_state`).

Files are written atomically: to a temporary file in the same folder, flushed and
fsynced, then renamed over the target, so a crash never leaves a half-written checkpoint.

Examples
--------
>>> import tempfile, os
>>> from sciml.models import build_model
>>> from sciml.normalization import ChannelNormalizer, Normalizers
>>> from sciml.checkpoint import model_payload, save_checkpoint, load_model
>>> model = build_model("fno", in_channels=1, out_channels=1, n_modes=4, width=8)
>>> norms = Normalizers(ChannelNormalizer([0.0], [1.0]), ChannelNormalizer([0.0], [1.0]))
>>> path = os.path.join(tempfile.mkdtemp(), "model.pt")
>>> _ = save_checkpoint(path, model_payload(model, norms, ["a"], ["u"], (16, 16), (1 / 16, 1 / 16)))
>>> model2, norms2, meta = load_model(path)
>>> meta["input_names"], meta["spatial_shape"]
(['a'], [16, 16])
"""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from sciml.atomic import atomic_write_bytes
from sciml.errors import SciMLError

FORMAT_NAME = "sciml-checkpoint"
FORMAT_VERSION = 1

_LOAD_ERRORS = (RuntimeError, EOFError, KeyError, ValueError, IndexError, pickle.UnpicklingError, OSError)


def package_versions() -> dict:
    """Versions of the packages a checkpoint depends on."""
    import neuralop

    import sciml

    return {"sciml": sciml.__version__, "torch": torch.__version__, "neuralop": neuralop.__version__, "numpy": np.__version__}


def _check_plain(value, where: str) -> None:
    if isinstance(value, (torch.Tensor, str, bool, int, float, type(None))):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise SciMLError(f"checkpoint key {where}[{k!r}] must be a str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise SciMLError(f"checkpoint entry {where} is a {type(value).__name__}: store tensors, numbers, strings, lists or dicts")


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` (plus the ``format`` entry) atomically to ``path``.

    Parameters
    ----------
    path : path-like
        Target file; its folder is created if missing.
    payload : dict
        Tensors and plain values only (checked), so it loads with ``weights_only=True``.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    payload = dict(payload)
    payload["format"] = json.dumps({"name": FORMAT_NAME, "version": FORMAT_VERSION, "packages": package_versions()})
    _check_plain(payload, "payload")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, lambda handle: torch.save(payload, handle))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    A missing, truncated, corrupt or foreign file raises a one-line :class:`SciMLError`.
    The ``format`` entry is returned parsed (a dict).
    """
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise SciMLError(f"checkpoint {path} {what}: train a model first (sciml train) or give the right path")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise SciMLError(
            f"{path} holds objects other than tensors and plain values: it is not a sciml checkpoint"
        ) from None
    except _LOAD_ERRORS as err:
        raise SciMLError(
            f"{path} is not a readable checkpoint ({type(err).__name__}): it is truncated or corrupt; "
            "retrain or use another checkpoint"
        ) from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    try:
        fmt = json.loads(fmt) if isinstance(fmt, str) else None
    except json.JSONDecodeError:
        fmt = None
    if not isinstance(fmt, dict) or fmt.get("name") != FORMAT_NAME:
        raise SciMLError(f"{path} is not a sciml checkpoint (no '{FORMAT_NAME}' format entry)")
    if not isinstance(fmt.get("version"), int) or fmt["version"] > FORMAT_VERSION:
        raise SciMLError(
            f"{path} has checkpoint format version {fmt.get('version')!r} but this sciml reads up to "
            f"{FORMAT_VERSION}: upgrade sciml"
        )
    payload["format"] = fmt
    return payload


def model_payload(model, normalizers, input_names: Sequence[str], output_names: Sequence[str],
                  spatial_shape: Sequence[int], spacing: Sequence[float]) -> dict:
    """The part of a checkpoint that rebuilds a trained model (see the module docstring).

    Parameters
    ----------
    model : GridModel
    normalizers : Normalizers
    input_names, output_names : sequence of str
    spatial_shape, spacing : sequence
        Grid of the training data.
    """
    return {
        "model_name": model.name,
        "model_config": json.dumps(model.config),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "normalization": normalizers.state_dict(),
        "input_names": list(input_names),
        "output_names": list(output_names),
        "spatial_shape": [int(n) for n in spatial_shape],
        "spacing": [float(h) for h in spacing],
    }


def capture_rng_state() -> dict:
    """The torch (CPU and CUDA), numpy and Python RNG states as tensors and plain lists."""
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": [int(k) for k in keys], "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict) -> None:
    """Restore the states saved by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np.asarray(np_state["keys"], dtype=np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def checkpoint_path(run_dir_or_path: str | os.PathLike, checkpoint: str = "best") -> Path:
    """``run_dir/checkpoints/<checkpoint>.pt`` for a run folder, else the path itself."""
    path = Path(run_dir_or_path)
    if path.is_dir():
        return path / "checkpoints" / f"{checkpoint}.pt"
    return path


def load_model(run_dir_or_path: str | os.PathLike, checkpoint: str = "best", device: str | torch.device = "cpu"):
    """Rebuild a trained model from a run folder or a checkpoint file.

    Parameters
    ----------
    run_dir_or_path : path-like
        A training run folder (uses ``checkpoints/<checkpoint>.pt``) or a ``.pt`` file.
    checkpoint : {"best", "last"}
        Which checkpoint of a run folder.
    device : str or torch.device

    Returns
    -------
    model : GridModel
        In eval mode, on ``device``.
    normalizers : Normalizers
    meta : dict
        The checkpoint without the tensors: ``model_name``, ``model_config`` (dict),
        ``input_names``, ``output_names``, ``spatial_shape``, ``spacing``, ``format``,
        ``path`` and whatever else the trainer stored (``epoch``, ``metrics``, ...).
    """
    from sciml.models import build_model
    from sciml.normalization import Normalizers

    path = checkpoint_path(run_dir_or_path, checkpoint)
    payload = load_checkpoint(path)
    required = ("model_name", "model_config", "model_state", "normalization", "input_names", "output_names",
                "spatial_shape", "spacing")
    missing = [k for k in required if k not in payload]
    if missing:
        raise SciMLError(f"checkpoint {path} lacks {missing}: it was not written by sciml training")
    config = json.loads(payload["model_config"])
    model = build_model(payload["model_name"], **config)
    try:
        model.load_state_dict(payload["model_state"])
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise SciMLError(f"checkpoint {path} does not fit model {payload['model_name']!r} ({first}): it is damaged") from None
    model.to(device).eval()
    normalizers = Normalizers.from_state_dict(payload["normalization"])
    skip = {"model_state", "normalization", "optimizer", "scheduler", "rng"}
    meta = {k: v for k, v in payload.items() if k not in skip}
    meta["model_config"] = config
    meta["path"] = str(path)
    return model, normalizers, meta
