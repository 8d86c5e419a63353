"""Training a grid model on a dataset, resumable and data-parallel under ``torchrun``.

The recipe follows common neural-operator practice (Li et al. 2021; neuraloperator's
trainer): inputs and outputs standardised per channel with statistics of the training
split, AdamW, a learning-rate schedule, and a relative L2 or H1 loss computed on the
decoded predictions (physical units). Validation reports relative L2 and H1 errors every
epoch; the checkpoint with the lowest validation error of the training loss's kind is
kept as ``best.pt``.

A run folder holds

- ``config.json``: the resolved configuration;
- ``history.json``: per epoch ``epoch``, ``train_loss``, ``val_l2``, ``val_h1``, ``lr``
  (at the start of the epoch) and ``seconds``;
- ``checkpoints/last.pt``: everything needed to resume, rewritten every epoch;
- ``checkpoints/best.pt``: the model with the best validation error so far.

Examples
--------
>>> import numpy as np, tempfile
>>> from sciml.loader import ArrayDataset
>>> from sciml.training import train
>>> rng = np.random.default_rng(0)
>>> a = rng.standard_normal((12, 16, 16))
>>> ds = ArrayDataset({"a": a, "u": 1 + np.cumsum(a, axis=1) / 16}, ["a"], ["u"])
>>> config = {"model": {"name": "fno", "n_modes": 4, "width": 8, "n_layers": 2},
...           "data": {"batch_size": 4}, "train": {"epochs": 2, "loss": "l2"}}
>>> summary = train(config, ds, ds, tempfile.mkdtemp(), progress=False)
>>> summary["epochs"], summary["best_epoch"] in (1, 2)
(2, True)
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm.auto import tqdm

from sciml import distributed
from sciml.atomic import atomic_write_json
from sciml.config import deep_merge
from sciml.checkpoint import (capture_rng_state, load_checkpoint, model_payload, restore_rng_state,
                              save_checkpoint)
from sciml.errors import SciMLError
from sciml.metrics import LOSSES, make_loss, relative_h1, relative_l2
from sciml.models import MODELS, GridModel, build_model
from sciml.normalization import Normalizers, fit_normalizers
from sciml.registry import parse_spec

SCHEDULERS = ("cosine", "onecycle", "step", "none")

DEFAULT_CONFIG: dict = {
    "model": {"name": "fno"},
    "data": {"batch_size": 16, "num_workers": 0},
    "train": {
        "epochs": 20,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "scheduler": "cosine",
        "step_size": 10,
        "gamma": 0.5,
        "loss": "h1",
        "seed": 0,
        "device": "auto",
        "grad_clip": None,
    },
}
"""Defaults under the user's config. ``train.step_size`` (epochs) and ``train.gamma`` only
matter for ``scheduler = "step"``; cosine and one-cycle run over all steps of all epochs."""

# May change between the interrupted run and its resumption; everything else must match.
_RESUMABLE_CHANGES = {("train", "epochs"), ("train", "device")}


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise SciMLError(message)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def resolve_config(user_config: dict | None = None) -> dict:
    """Deep-merge ``user_config`` over :data:`DEFAULT_CONFIG` and check it.

    The ``model`` section may be a name or ``{"name": ..., **kwargs}``; its kwargs are
    checked when the model is built. Unknown keys in ``train`` are rejected; other
    sections may hold keys used elsewhere (data paths, ...).

    Examples
    --------
    >>> from sciml.training import resolve_config
    >>> cfg = resolve_config({"model": "fno", "train": {"epochs": 3}})
    >>> cfg["model"], cfg["train"]["epochs"], cfg["train"]["lr"]
    ({'name': 'fno'}, 3, 0.003)
    >>> resolve_config({"train": {"epoch": 3}})
    Traceback (most recent call last):
    ...
    sciml.errors.SciMLError: unknown key train.epoch; valid keys: epochs, lr, weight_decay, scheduler, step_size, gamma, loss, seed, device, grad_clip
    """
    user = copy.deepcopy(user_config) if user_config else {}
    _require(isinstance(user, dict), f"the configuration must be a mapping of sections, got {type(user).__name__}")
    if "model" in user:
        name, kwargs = parse_spec(user["model"])
        user["model"] = {"name": name, **kwargs}
    for section in ("model", "data", "train"):
        _require(isinstance(user.get(section, {}), dict), f"config section [{section}] must be a table of keys")
    unknown = [k for k in user.get("train", {}) if k not in DEFAULT_CONFIG["train"]]
    _require(not unknown, f"unknown key train.{unknown[0] if unknown else ''}; valid keys: {', '.join(DEFAULT_CONFIG['train'])}")
    cfg = deep_merge(DEFAULT_CONFIG, user)
    try:
        json.dumps(cfg)
    except TypeError as err:
        raise SciMLError(f"the configuration must hold JSON values (numbers, strings, lists, tables): {err}") from None

    MODELS.get(cfg["model"]["name"])  # unknown name -> UnknownNameError listing the valid ones
    for key in ("in_channels", "out_channels"):
        _require(key not in cfg["model"], f"model.{key} is set from the data's variables: remove it from the config")
    t, d = cfg["train"], cfg["data"]
    _require(_is_int(t["epochs"]) and t["epochs"] >= 1, f"train.epochs must be a positive integer, got {t['epochs']!r}")
    _require(_is_number(t["lr"]) and t["lr"] > 0, f"train.lr must be a positive number, got {t['lr']!r}")
    _require(_is_number(t["weight_decay"]) and t["weight_decay"] >= 0,
             f"train.weight_decay must be a number >= 0, got {t['weight_decay']!r}")
    _require(t["scheduler"] in SCHEDULERS, f"train.scheduler = {t['scheduler']!r} is unknown; choose one of {list(SCHEDULERS)}")
    _require(_is_int(t["step_size"]) and t["step_size"] >= 1, f"train.step_size must be a positive integer (epochs), got {t['step_size']!r}")
    _require(_is_number(t["gamma"]) and 0 < t["gamma"] <= 1, f"train.gamma must be in (0, 1], got {t['gamma']!r}")
    _require(t["loss"] in LOSSES, f"train.loss = {t['loss']!r} is unknown; choose one of {list(LOSSES)}")
    _require(_is_int(t["seed"]), f"train.seed must be an integer, got {t['seed']!r}")
    _require(t["grad_clip"] is None or (_is_number(t["grad_clip"]) and t["grad_clip"] > 0),
             f"train.grad_clip must be a positive number or null, got {t['grad_clip']!r}")
    _require(isinstance(t["device"], str), f"train.device must be 'auto', 'cpu' or 'cuda', got {t['device']!r}")
    if t["device"] != "auto":
        try:
            torch.device(t["device"])
        except RuntimeError:
            raise SciMLError(f"train.device = {t['device']!r} is not a device: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    _require(_is_int(d["batch_size"]) and d["batch_size"] >= 1, f"data.batch_size must be a positive integer, got {d['batch_size']!r}")
    _require(_is_int(d["num_workers"]) and d["num_workers"] >= 0, f"data.num_workers must be an integer >= 0, got {d['num_workers']!r}")
    return cfg


def _pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        _require(torch.cuda.is_available(), f"train.device = {name!r} but no CUDA GPU is available: use 'auto' or 'cpu'")
        if distributed.is_distributed():
            device = torch.device("cuda", distributed.local_rank())
    return device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_dataset(ds, what: str) -> None:
    for attr in ("input_names", "output_names", "spatial_shape", "spacing"):
        _require(hasattr(ds, attr), f"the {what} set has no attribute {attr!r}: use sciml.loader.GridDataset or ArrayDataset")
    _require(len(ds) > 0, f"the {what} set is empty: give it at least one sample (check the split sizes)")
    x, y = ds[0]
    shape = tuple(ds.spatial_shape)
    for tensor, names, kind in ((x, ds.input_names, "input"), (y, ds.output_names, "output")):
        _require(
            tuple(tensor.shape) == (len(names), *shape),
            f"the {what} set's {kind} sample has shape {tuple(tensor.shape)} but its {kind}s {list(names)} on grid "
            f"{list(shape)} need {(len(names), *shape)}: fix the dataset",
        )


def _check_pair(train_set, val_set) -> None:
    _check_dataset(train_set, "training")
    _check_dataset(val_set, "validation")
    same = (list(train_set.input_names), list(train_set.output_names)) == (list(val_set.input_names), list(val_set.output_names))
    _require(same, f"training variables {list(train_set.input_names)} -> {list(train_set.output_names)} differ from validation "
                   f"variables {list(val_set.input_names)} -> {list(val_set.output_names)}: use one dataset's splits")


def _build(cfg: dict, train_set) -> GridModel:
    kwargs = {k: v for k, v in cfg["model"].items() if k != "name"}
    cls = MODELS.get(cfg["model"]["name"])
    if "dim" in inspect.signature(cls.__init__).parameters and "dim" not in kwargs and not isinstance(kwargs.get("n_modes"), list):
        kwargs["dim"] = len(train_set.spatial_shape)
    return build_model(cfg["model"]["name"], in_channels=len(train_set.input_names),
                       out_channels=len(train_set.output_names), **kwargs)


def _make_scheduler(name: str, optimizer, tcfg: dict, steps_per_epoch: int):
    """The schedule and whether it steps per batch (``True``) or per epoch."""
    total = tcfg["epochs"] * steps_per_epoch
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total), True
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=tcfg["lr"], total_steps=total), True
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=tcfg["step_size"], gamma=tcfg["gamma"]), False
    return None, False


def _check_resume(saved_cfg: dict, cfg: dict, payload: dict, train_set, path: Path) -> None:
    for section in ("model", "train", "data"):
        # data holds paths and splits that the caller checks; only the batch size shapes the run
        keys = {"batch_size"} if section == "data" else set(saved_cfg.get(section, {})) | set(cfg[section])
        for key in sorted(keys):
            if (section, key) in _RESUMABLE_CHANGES:
                continue
            old, new = saved_cfg.get(section, {}).get(key), cfg[section].get(key)
            _require(old == new, f"cannot resume {path}: {section}.{key} was {old!r} but is now {new!r}; "
                                 "use the run's config.json or start a new run_dir")
    if cfg["train"]["epochs"] != saved_cfg["train"]["epochs"]:
        _require(cfg["train"]["scheduler"] in ("step", "none"),
                 f"cannot change train.epochs on resume with the {cfg['train']['scheduler']!r} schedule (it spans all "
                 f"epochs): keep epochs = {saved_cfg['train']['epochs']} or start a new run_dir")
    names = (list(train_set.input_names), list(train_set.output_names))
    _require(names == (payload["input_names"], payload["output_names"]),
             f"cannot resume {path}: data has variables {names[0]} -> {names[1]} but the model was trained on "
             f"inputs {payload['input_names']} -> outputs {payload['output_names']}")
    _require(payload["epoch"] < cfg["train"]["epochs"],
             f"{path} has already trained {payload['epoch']} of train.epochs = {cfg['train']['epochs']}: "
             "raise train.epochs to train longer")


@torch.no_grad()
def _validate(model, loader, norms: Normalizers, spacing, device) -> tuple[float, float]:
    model.eval()
    sums = torch.zeros(3, dtype=torch.float64, device=device)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        pred = norms.output.decode(model(norms.input.encode(x)))
        sums[0] += relative_l2(pred, y, reduce=False).sum()
        sums[1] += relative_h1(pred, y, spacing, reduce=False).sum()
        sums[2] += y.shape[0]
    sums = distributed.all_reduce_sum(sums)
    return float(sums[0] / sums[2]), float(sums[1] / sums[2])


def train(config: dict, train_set, val_set, run_dir, resume: bool = False, progress: bool = True) -> dict:
    """Train a model on ``train_set``, validating on ``val_set`` every epoch.

    Parameters
    ----------
    config : dict
        ``{"model": {"name": ..., **kwargs}, "data": {...}, "train": {...}}``; see
        :data:`DEFAULT_CONFIG` and :func:`resolve_config`. The model's channels come from
        the dataset's variable names.
    train_set, val_set : Dataset
        Following the :mod:`sciml.loader` protocol (``ds[i] -> (x, y)`` plus
        ``input_names``, ``output_names``, ``spatial_shape``, ``spacing``).
    run_dir : path-like
        Output folder (see the module docstring). Must not hold a run unless ``resume``.
    resume : bool
        Continue from ``run_dir/checkpoints/last.pt``: model, optimiser, schedule,
        epoch, best metric, history and RNG states, so an interrupted run resumed ends
        exactly where the uninterrupted run would. ``train.epochs`` may be raised for the
        "step" and "none" schedules.
    progress : bool
        Show a tqdm bar (on rank 0 only).

    Returns
    -------
    dict
        ``run_dir``, ``epochs`` (completed in total), ``epochs_run`` (by this call),
        ``best_epoch``, ``best_metric`` ("val_l2" or "val_h1"), ``best_val_l2``,
        ``best_val_h1``, ``final_train_loss``, ``train_seconds``, ``n_parameters``,
        ``device``, ``world_size``.

    Notes
    -----
    Under ``torchrun`` (``WORLD_SIZE > 1``) every process trains on its shard of each
    epoch (``DistributedSampler``) with a ``DistributedDataParallel`` model; losses and
    metrics are averaged over processes; only rank 0 writes files.
    """
    cfg = resolve_config(config)
    _check_pair(train_set, val_set)
    device = _pick_device(cfg["train"]["device"])
    created = distributed.setup(device)
    try:
        return _train(cfg, train_set, val_set, Path(run_dir), resume, progress, device)
    finally:
        if created:
            distributed.teardown()


def _train(cfg, train_set, val_set, run_dir: Path, resume: bool, progress: bool, device: torch.device) -> dict:
    tcfg, dcfg = cfg["train"], cfg["data"]
    main = distributed.is_main()
    ckpt_dir = run_dir / "checkpoints"
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    if resume:
        _require(last_path.is_file(), f"cannot resume: {last_path} does not exist; train without resume first")
        payload = load_checkpoint(last_path, map_location=device)
        for key in ("config", "optimizer", "scheduler", "epoch", "best", "history", "rng"):
            _require(key in payload, f"{last_path} lacks {key!r}: it is not a resumable training checkpoint")
        _check_resume(json.loads(payload["config"]), cfg, payload, train_set, last_path)
    else:
        _require(not last_path.exists(), f"{run_dir} already holds a training run: pass resume to continue it or choose a new run_dir")

    _seed_everything(tcfg["seed"])
    norms = Normalizers.from_state_dict(payload["normalization"]) if resume else fit_normalizers(train_set)
    model = _build(cfg, train_set)
    if model.fits_training_outputs and not resume:
        outputs = [norms.output.encode(y) for _, y in DataLoader(train_set, batch_size=dcfg["batch_size"])]
        model.fit_training_outputs(torch.cat(outputs))
    model.check_input(train_set.spatial_shape)
    model.check_input(val_set.spatial_shape)
    model.to(device)
    net = model
    if distributed.is_distributed():
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)

    world, rank = distributed.world_size(), distributed.rank()
    # the shuffle is reseeded every epoch from (seed, epoch), so a resumed run draws the same batches
    generator = torch.Generator()
    sampler = None
    if distributed.is_distributed():
        sampler = DistributedSampler(train_set, num_replicas=world, rank=rank, shuffle=True, seed=tcfg["seed"])
    loader_options = dict(batch_size=dcfg["batch_size"], num_workers=dcfg["num_workers"], pin_memory=device.type == "cuda")
    train_loader = DataLoader(train_set, sampler=sampler, shuffle=sampler is None, generator=generator, **loader_options)
    # validation shards are disjoint (no padding as in DistributedSampler), so the all-reduced mean is exact
    val_shard = Subset(val_set, range(rank, len(val_set), world))
    val_loader = DataLoader(val_shard, shuffle=False, generator=torch.Generator(), **loader_options)

    optimizer = torch.optim.AdamW(model.parameters(), lr=tcfg["lr"], weight_decay=tcfg["weight_decay"])
    scheduler, per_batch = _make_scheduler(tcfg["scheduler"], optimizer, tcfg, len(train_loader))
    loss_fn = make_loss(tcfg["loss"], train_set.spacing)
    monitor = f"val_{tcfg['loss']}"
    start, history = 0, []
    best = {"metric": monitor, "value": math.inf, "epoch": 0, "val_l2": math.nan, "val_h1": math.nan}
    if resume:
        model.load_state_dict(payload["model_state"])
        optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(payload["scheduler"])
        start, best, history = payload["epoch"], dict(payload["best"]), json.loads(payload["history"])
        restore_rng_state(payload["rng"])
        del payload
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / "config.json", cfg)

    base = model_payload(model, norms, train_set.input_names, train_set.output_names,
                         train_set.spatial_shape, train_set.spacing)
    t_start = time.perf_counter()
    train_loss = math.nan
    bar = tqdm(total=(tcfg["epochs"] - start) * len(train_loader), disable=not (progress and main),
               desc="train", unit="batch", dynamic_ncols=True)
    with bar:
        for epoch in range(start, tcfg["epochs"]):
            t0 = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            if sampler is not None:
                sampler.set_epoch(epoch)
            generator.manual_seed(tcfg["seed"] + epoch)
            net.train()
            sums = torch.zeros(2, dtype=torch.float64, device=device)
            for x, y in train_loader:
                x = x.to(device, non_blocking=True)
                y = y.to(device, non_blocking=True)
                pred = norms.output.decode(net(norms.input.encode(x)))
                loss = loss_fn(pred, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tcfg["grad_clip"] is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tcfg["grad_clip"])
                optimizer.step()
                if per_batch:
                    scheduler.step()
                sums[0] += loss.detach() * y.shape[0]
                sums[1] += y.shape[0]
                if not bar.disable:
                    bar.set_postfix(epoch=epoch + 1, loss=f"{float(sums[0] / sums[1]):.4g}", refresh=False)
                    bar.update()
            if scheduler is not None and not per_batch:
                scheduler.step()
            sums = distributed.all_reduce_sum(sums)
            train_loss = float(sums[0] / sums[1])
            # the bare model: DDP's forward would sync buffers, and shards may differ in batch count
            val_l2, val_h1 = _validate(model, val_loader, norms, val_set.spacing, device)
            if not all(math.isfinite(v) for v in (train_loss, val_l2, val_h1)):
                raise SciMLError(f"training diverged at epoch {epoch + 1}: lower train.lr (now {tcfg['lr']:g})")
            record = {"epoch": epoch + 1, "train_loss": train_loss, "val_l2": val_l2, "val_h1": val_h1,
                      "lr": lr, "seconds": time.perf_counter() - t0}
            history.append(record)
            bar.set_postfix(epoch=epoch + 1, loss=f"{train_loss:.4g}", val_l2=f"{val_l2:.4g}")
            improved = record[monitor] < best["value"]
            if improved:
                best = {"metric": monitor, "value": record[monitor], "epoch": epoch + 1, "val_l2": val_l2, "val_h1": val_h1}
            if main:
                state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
                common = dict(base, model_state=state, epoch=epoch + 1, config=json.dumps(cfg),
                              metrics={"train_loss": train_loss, "val_l2": val_l2, "val_h1": val_h1})
                if improved:
                    save_checkpoint(best_path, common)
                save_checkpoint(last_path, dict(
                    common, optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict() if scheduler is not None else None,
                    best=best, history=json.dumps(history), rng=capture_rng_state()))
                atomic_write_json(run_dir / "history.json", history)
    distributed.barrier()
    return {
        "run_dir": str(run_dir),
        "epochs": tcfg["epochs"],
        "epochs_run": tcfg["epochs"] - start,
        "best_epoch": best["epoch"],
        "best_metric": monitor,
        "best_val_l2": best["val_l2"],
        "best_val_h1": best["val_h1"],
        "final_train_loss": train_loss,
        "train_seconds": time.perf_counter() - t_start,
        "n_parameters": model.n_parameters,
        "device": str(device),
        "world_size": world,
    }
