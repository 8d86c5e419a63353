"""Evaluating a trained model on a dataset, possibly at another resolution.

Examples
--------
>>> import numpy as np, tempfile
>>> from sciml.loader import ArrayDataset
>>> from sciml.training import train
>>> from sciml.evaluation import evaluate
>>> rng = np.random.default_rng(0)
>>> a = rng.standard_normal((8, 16, 16))
>>> ds = ArrayDataset({"a": a, "u": 1 + np.cumsum(a, axis=1) / 16}, ["a"], ["u"])
>>> run = tempfile.mkdtemp()
>>> _ = train({"model": {"name": "fno", "n_modes": 4, "width": 8, "n_layers": 2},
...            "train": {"epochs": 1}}, ds, ds, run, progress=False)
>>> metrics = evaluate(run, ds, n_figures=1)
>>> len(metrics["relative_l2"]["per_sample"]), metrics["resolution"]
(8, [16, 16])
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from sciml.checkpoint import checkpoint_path, load_model
from sciml.atomic import atomic_write_json
from sciml.errors import SciMLError
from sciml.figures import plot_sample, plot_training_curves
from sciml.loader import GridDataset
from sciml.metrics import relative_h1, relative_l2


def _summary(values: list[float]) -> dict:
    return {
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "std": statistics.pstdev(values),
        "max": max(values),
        "per_sample": values,
    }


def _check_data(dataset, model, meta) -> None:
    names = (list(dataset.input_names), list(dataset.output_names))
    if names != (meta["input_names"], meta["output_names"]):
        raise SciMLError(
            f"data has variables {names[0]} -> {names[1]} but the model was trained on inputs "
            f"{meta['input_names']} -> outputs {meta['output_names']}: evaluate on data with those variables"
        )
    if len(dataset) == 0:
        raise SciMLError("the evaluation dataset is empty: give it at least one sample")
    shape = tuple(dataset.spatial_shape)
    if shape != tuple(meta["spatial_shape"]) and not model.supports_resolution_change:
        raise SciMLError(
            f"model {model.name!r} was trained on grid {meta['spatial_shape']} and cannot change resolution: "
            f"evaluate on a {meta['spatial_shape']} grid"
        )
    model.check_input(shape)


def _run_folder(run_dir_or_path: Path) -> Path:
    if run_dir_or_path.is_dir():
        return run_dir_or_path
    parent = run_dir_or_path.parent
    return parent.parent if parent.name == "checkpoints" else parent


def evaluate(run_dir, dataset, out_dir=None, checkpoint: str = "best", n_figures: int = 3,
             batch_size: int = 16, device: str = "auto") -> dict:
    """Evaluate a trained model on ``dataset`` and write metrics and figures.

    Parameters
    ----------
    run_dir : path-like
        A training run folder, or a checkpoint file.
    dataset : Dataset or path-like
        A dataset file (read with the variables the model was trained on), or a dataset
        following the :mod:`sciml.loader` protocol, with the variables the model was
        trained on; its resolution may differ from the training one when the model
        supports that.
    out_dir : path-like, optional
        Where to write; default ``<run folder>/eval_<n1>x<n2>...``.
    checkpoint : {"best", "last"}
        Which checkpoint of a run folder.
    n_figures : int
        Samples drawn as ``sample_<k>.png`` (inputs, truth, prediction, |error|).
    batch_size : int
    device : {"auto", "cpu", "cuda"}

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``relative_l2``, ``relative_h1`` and ``mse`` (``mean``,
        ``median``, ``std``, ``max``, ``per_sample``) in physical units,
        ``n_samples``, ``n_parameters``, ``inference_seconds_per_sample``,
        ``resolution``, ``train_resolution``, ``model``, ``checkpoint``, ``epoch``,
        ``input_names``, ``output_names``, ``device`` and ``figures``.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    run_path = Path(run_dir)
    model, norms, meta = load_model(run_path, checkpoint, device)
    if isinstance(dataset, (str, os.PathLike)):
        dataset = GridDataset(dataset, meta["input_names"], meta["output_names"])
    _check_data(dataset, model, meta)
    shape = [int(n) for n in dataset.spatial_shape]
    run_folder = _run_folder(checkpoint_path(run_path, checkpoint))
    out = Path(out_dir) if out_dir is not None else run_folder / ("eval_" + "x".join(map(str, shape)))
    out.mkdir(parents=True, exist_ok=True)

    l2, h1, mse, examples = [], [], [], []
    seconds = 0.0
    with torch.no_grad():
        for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            x, y = x.to(device), y.to(device)
            t0 = time.perf_counter()
            pred = norms.output.decode(model(norms.input.encode(x)))
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - t0
            l2 += relative_l2(pred, y, reduce=False).tolist()
            h1 += relative_h1(pred, y, dataset.spacing, reduce=False).tolist()
            mse += (pred - y).square().flatten(1).mean(1).tolist()
            for i in range(min(n_figures - len(examples), x.shape[0])):
                examples.append((x[i].cpu().numpy(), y[i].cpu().numpy(), pred[i].cpu().numpy()))

    figures = []
    dims = getattr(dataset, "dims", None)
    for k, (x, y, pred) in enumerate(examples):
        title = f"sample {k}: relative L2 {l2[k]:.3g}, H1 {h1[k]:.3g}"
        figures.append(plot_sample(out / f"sample_{k}.png", x, y, pred, dataset.input_names,
                                   dataset.output_names, dataset.spacing, dims, title).name)
    history_path = run_folder / "history.json"
    history = json.loads(history_path.read_text()) if history_path.is_file() else []
    if history:
        figures.append(plot_training_curves(out / "training_curves.png", history).name)

    metrics = {
        "model": meta["model_name"],
        "checkpoint": meta["path"],
        "epoch": meta.get("epoch"),
        "n_parameters": model.n_parameters,
        "n_samples": len(l2),
        "input_names": list(dataset.input_names),
        "output_names": list(dataset.output_names),
        "resolution": shape,
        "train_resolution": list(meta["spatial_shape"]),
        "relative_l2": _summary(l2),
        "relative_h1": _summary(h1),
        "mse": _summary(mse),
        "inference_seconds_per_sample": seconds / len(l2),
        "device": str(device),
        "train_seconds": sum(epoch["seconds"] for epoch in history) if history else None,
        "figures": figures,
        "out_dir": str(out),
    }
    atomic_write_json(out / "metrics.json", metrics)
    return metrics
