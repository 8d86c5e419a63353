"""Benchmark of GIOROM against the full-graph GNS on MPM particle data: ``sciml bench lagrangian``.

What is compared
    GIOROM (:class:`sciml.models.giorom.GIOROM`, Viswanath et al. 2024) at sampling ratios
    from 1 down to 1/32 against the full-graph GNS baseline (:class:`sciml.models.gns.GNS`,
    Sanchez-Gonzalez et al. 2020), on the same data and with the same budget: one material
    (water, :class:`~sciml.datasets.mpm_materials.WeaklyCompressibleFluid`; GIOROM's
    one-material setting), 2-D MLS-MPM box drops from the registered generator ``"mpm"``
    (:class:`sciml.datasets.particle_scenes.ParticleScenes`), cached as trajectory files
    in ``out_dir/data``. Every model gets the same training steps, batch, optimiser (Adam,
    learning rate decayed exponentially from ``lr`` to ``lr_final``: GNS's schedule,
    compressed to the short budget), GNS random-walk input noise (last-velocity deviation
    ``noise`` times the data's velocity deviation; GNS uses 6.7e-4 on 2-D sets whose
    deviations are 1.3e-3 to 2.7e-3), GNS normalisation statistics (from the file, widened
    by the noise) and history (5 velocities).

    The GNS radius is ``radius_spacings`` particle spacings (1.5 grid cells). A GIOROM at
    ratio ``r`` uses ``radius * r**(-1/d)``, so its sparse graph has about as many
    neighbours per node as the full one, and a query radius of ``query_radius_factor``
    times that (the decoder interpolates from the nearest few nodes; on 1e5 points its
    cost grows with the square of this radius; a particle with no node within it is
    decoded from its 3 nearest nodes). Its samples are :meth:`GIOROM.sample`'s
    farthest-point samples (a random start in training; one sample per test scene, kept
    for its whole rollout, as in the paper). Both models get the data's metadata
    ``bounds``, ``[dx, size - dx]``: the box the MPM simulator keeps particles in (they
    sink past the walls into the padding, see :mod:`sciml.datasets.particle_scenes`); the
    wall features, clipped at the radius, reach the band where the walls stop them
    (about two cells from the domain's edge).

What is measured
    ``train`` task, one child process per model, ratio and seed, on held-out scenes:
    rollout MSE of the positions over ``horizon`` steps from the first ``history + 1``
    frames, of the full cloud (GIOROM advances the unsampled particles with its query
    decoder); wall time per step of a ``timing_steps`` rollout after a one-step warm-up
    (GIOROM's sampling, once per rollout, timed apart as ``sample_ms``), on average and
    on the largest test scene, with the speedup over GNS there; training seconds; peak
    memory (the child's max resident set on the CPU, ``torch.cuda.max_memory_allocated``
    on a GPU). A test scene whose sample GIOROM refuses (a graph left empty or mostly
    disconnected at that ratio) counts in ``failed``, with the message in ``failure``, and
    is left out of the errors; ``mse_vs_gns`` compares the scenes both models rolled out.
    The horizon is 30 steps (``--set horizon=N`` for longer, up to ``n_frames - history - 1``).

    ``dense`` task: a ``points``-point cloud (1e5) made from the largest test scene
    (:func:`dense_cloud`) is advanced by the trained GIOROM whose ratio gives about
    ``nodes`` (1e3) graph nodes at the node density it was trained at (sampled by
    :meth:`GIOROM.sample` at that node count): the time per step of a ``timing_steps``
    rollout of the full cloud (:meth:`GIOROM.rollout`: the graph step plus the query
    decoder at every other point) against that of the same rollout of the sparse graph
    alone (the nodes advanced by their own predictions, :func:`sparse_rollout`), both
    in this process, after a one-step warm-up of each, ``repeats`` times interleaved
    (dense, sparse, dense, ...), medians of wall time and, less sensitive to other jobs
    on the machine, of this process's CPU time; the time of one validated full-cloud
    step (:meth:`GIOROM.advance`) is kept as ``advance_ms``; and the rollout MSE of the
    dense cloud against its interpolated reference; then, in its own child process,
    GNS's time per step on the same cloud. That GNS is timing only: the benchmark's
    architecture, untrained, with its radius shrunk by the refinement factor (as many
    neighbours per particle as in training; at its training radius the graph would have
    ~50 times more edges than memory holds), and only ``gns_steps`` steps are timed
    (about a minute each on one CPU thread).

Departures, for a CPU budget: the networks are narrower and shallower than the papers'
(both 128 wide, GNS with 10 message-passing steps; here :data:`FULL` ``gns`` and
``giorom``), training is 500 steps instead of ~1e6, and sequences are 80 frames instead
of 1000. ``--steps``, ``--set`` (e.g. ``gns.hidden=128``) and ``--device cuda`` scale
the same design up. Threads: one torch thread for the data and every trial
(``--threads`` to change): these small networks gain little from a second thread, and
on a machine shared with other jobs several threads per process slow torch down many
times. Pieces: options that change the plan (``--quick``, ``--steps``, ``--set``,
``--threads``, ``--device``) must stay the same within one ``--out``; tasks, models,
ratios and seeds can be run piece by piece, and ``bench_lagrangian.json`` collects the
rows of all pieces (a rerun piece replaces its rows; ``dense`` needs the GIOROM
checkpoint of its ratio from ``train``).

Examples
--------
>>> from sciml.bench_lagrangian import format_table, parse_ratio, run
>>> parse_ratio("1/32"), parse_ratio("0.25")
(0.03125, 0.25)
>>> print(format_table(run(quick=True)))                     # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from sciml import tables
from sciml.atomic import atomic_write_bytes, atomic_write_json
from sciml.config import apply_overrides
from sciml.bench_trials import answer_trial, machine_info, run_in_child
from sciml.errors import SciMLError

TASKS = ("data", "train", "dense")
MODELS = ("gns", "giorom")
SCENE = {"dim": 2, "materials": ["fluid"], "particles_per_cell": 2, "max_speed": 1.0, "frame_dt": 0.0025}
FULL = {
    "scene": {**SCENE, "resolution": 48, "n_boxes": [2, 3], "box_size": [0.15, 0.3]},
    "n_frames": 80, "n_train": 12, "n_test": 4, "radius_spacings": 3.0, "history": 5,
    "gns": {"hidden": 64, "n_message_passing": 5},
    "giorom": {"hidden": 64, "n_message_passing": 2, "latent_resolution": 16, "heads": 4, "kernel_hidden": 32,
               "query_channels": 16, "query_radius_factor": 0.5},
    "steps": 500, "batch_size": 1, "lr": 1e-3, "lr_final": 1e-4, "noise": 0.5, "horizon": 30, "timing_steps": 10,
    "ratios": [1, 1 / 2, 1 / 4, 1 / 8, 1 / 16, 1 / 32], "seeds": [0], "threads": 1,
    "dense": {"points": 100_000, "nodes": 1000, "horizon": 10, "repeats": 3, "gns_warmup": 0, "gns_steps": 2},
}
QUICK = {
    "scene": {**SCENE, "resolution": 32, "n_boxes": [1, 2], "box_size": [0.2, 0.35]},
    "n_frames": 30, "n_train": 4, "n_test": 2, "radius_spacings": 3.0, "history": 5,
    "gns": {"hidden": 32, "n_message_passing": 3},
    "giorom": {"hidden": 32, "n_message_passing": 1, "latent_resolution": 8, "heads": 2, "kernel_hidden": 16,
               "query_channels": 8, "query_radius_factor": 0.5},
    "steps": 150, "batch_size": 1, "lr": 1e-3, "lr_final": 1e-4, "noise": 0.5, "horizon": 20, "timing_steps": 5,
    "ratios": [1 / 4, 1 / 16], "seeds": [0], "threads": 1,
    "dense": {"points": 10_000, "nodes": 100, "horizon": 5, "repeats": 2, "gns_warmup": 1, "gns_steps": 1},
}
ROLLOUT_COLUMNS = ["model", "ratio", "seeds", "particles", "nodes", "rollout_mse", "rollout_mse_std", "mse_vs_gns",
                   "final_mse", "failed", "step_ms", "largest", "step_ms_largest", "speedup_largest", "train_s",
                   "peak_mib", "parameters"]
DENSE_COLUMNS = ["points", "nodes", "ratio", "sample_ms", "dense_step_ms", "sparse_step_ms", "dense_over_sparse",
                 "dense_over_sparse_cpu", "gns_step_ms", "gns_timed_steps", "speedup", "dense_mse", "peak_mib",
                 "gns_peak_mib"]


# ----------------------------------------------------------------------------- small helpers
def parse_ratio(text) -> float:
    """A sampling ratio in ``(0, 1]`` from ``"1/32"``, ``"0.25"`` or a number.

    >>> parse_ratio("1/8")
    0.125
    """
    try:
        value = float(Fraction(str(text)))
    except (ValueError, ZeroDivisionError):
        value = float("nan")
    if not 0 < value <= 1:
        raise SciMLError(f"sampling ratio {text!r} must be a number in (0, 1], e.g. 1/32 or 0.25")
    return value


def ratio_label(ratio: float) -> str:
    """``"1/32"`` for 0.03125, ``"1"`` for 1.0."""
    return str(Fraction(ratio).limit_denominator(1024))


def _plan(quick: bool, steps, device: str, threads, overrides: dict | None) -> dict:
    plan = copy.deepcopy(QUICK if quick else FULL)
    for key, value in (overrides or {}).items():
        if key not in plan:
            raise SciMLError(f"unknown plan setting {key!r}; valid: {', '.join(plan)}")
        if isinstance(plan[key], dict) != isinstance(value, dict):
            raise SciMLError(f"plan setting {key!r} must be {'a section' if isinstance(plan[key], dict) else 'a value'}"
                             f", got {value!r}")
        if key == "dense" and set(value) - set(plan[key]):
            raise SciMLError(f"unknown dense setting(s) {sorted(set(value) - set(plan[key]))}; valid: "
                             f"{', '.join(plan[key])}")
        plan[key] = {**plan[key], **value} if isinstance(value, dict) else value
    for key, value in (("steps", steps), ("threads", threads)):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SciMLError(f"--{key} must be a positive integer, got {value!r}")
            plan[key] = value
    available = plan["n_frames"] - plan["history"] - 1
    if not (isinstance(plan["horizon"], int) and 1 <= plan["horizon"] <= available):
        raise SciMLError(f"horizon must be an integer from 1 to n_frames - history - 1 = {available}, "
                         f"got {plan['horizon']!r}")
    plan["quick"], plan["device"] = bool(quick), str(device)
    return plan


def _choose(what: str, given, valid) -> list:
    if given is None:
        return list(valid)
    unknown = [g for g in given if g not in valid]
    if unknown:
        raise SciMLError(f"unknown {what} {unknown}; choose from {list(valid)}")
    return list(given)


# ----------------------------------------------------------------------------- data
def _generator(plan: dict):
    from sciml.datasets.particle_scenes import ParticleScenes

    scene = plan["scene"]
    spacing = scene.get("size", 1.0) / scene["resolution"] / scene["particles_per_cell"]
    return ParticleScenes(n_frames=plan["n_frames"], connectivity_radius=plan["radius_spacings"] * spacing, **scene)


def scene_files(data_dir: Path, plan: dict) -> dict:
    """Train and test trajectory files of the plan's scenes in ``data_dir``, generated unless cached."""
    from sciml.simulate import simulate_dataset
    from sciml.trajectory_file import read_trajectories

    data_dir.mkdir(parents=True, exist_ok=True)
    generator = _generator(plan)
    files = {}
    for split, n, seed in (("train", plan["n_train"], 1), ("test", plan["n_test"], 2)):
        path = data_dir / f"mpm_{split}.nc"
        staged = Path(f"{path}.parts").exists()
        if path.exists() and not staged:
            cached = read_trajectories(path)
            if (cached.attrs.get("pde_parameters") == generator.parameters() and cached.attrs.get("root_seed") == seed
                    and cached.attrs.get("generator_version") == generator.version and cached.n_samples == n):
                files[split] = str(path)
                continue
        files[split] = simulate_dataset(generator, n, path, seed=seed, batch_size=min(n, 8), device=plan["device"],
                                        resume=staged, overwrite=path.exists() and not staged)
    return files


def _setting(path: str, device) -> dict:
    """Trajectories (torch, on ``device``), their types, and what the models need from the file."""
    import torch

    from sciml.trajectory_file import read_trajectories

    data = read_trajectories(path)
    md, parameters = data.metadata, data.attrs["pde_parameters"]
    size = float(parameters["size"])
    return {"positions": [torch.as_tensor(p, device=device) for p in data.fields["position"]],
            "types": [torch.as_tensor(t, device=device) for t in data.fields["particle_type"]],
            "metadata": md, "bounds": md["bounds"],
            "spacing": size / parameters["resolution"] / parameters["particles_per_cell"]}


def dense_cloud(trajectory: np.ndarray, points: int, spacing: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A ``points``-point resampling of a particle trajectory ``(T, N, d)``: ``(T, points, d)`` float32 and the
    parent particle of each point.

    Each particle's lattice cell (side ``spacing``) is split into ``k^d`` sub-cells,
    ``k = ceil((points / N)^(1/d))``, and ``points`` of their centres are drawn without
    replacement; a point moves with the inverse-distance-squared (Shepard) average of
    the displacements of its ``2^d`` nearest particles in the first frame, so the dense
    cloud deforms smoothly with the material.

    Examples
    --------
    >>> import numpy as np
    >>> t = np.stack([np.array([[0.0, 0.0], [0.1, 0.0]]) + [0.0, 0.01 * k] for k in range(3)]).astype(np.float32)
    >>> cloud, parent = dense_cloud(t, 8, spacing=0.1)
    >>> cloud.shape, bool(np.allclose(cloud[2] - cloud[0], [0.0, 0.02], atol=1e-6))
    ((3, 8, 2), True)
    """
    from scipy.spatial import cKDTree

    trajectory = np.asarray(trajectory, dtype=np.float64)
    _, n, d = trajectory.shape
    k = max(1, math.ceil((points / n) ** (1 / d) - 1e-9))
    while n * k ** d < points:   # round-off in the root
        k += 1
    axis = ((np.arange(k) + 0.5) / k - 0.5) * spacing
    offsets = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), axis=-1).reshape(-1, d)
    choice = np.random.default_rng(seed).choice(n * k ** d, size=points, replace=False)
    parent, sub = np.divmod(choice, k ** d)
    start = trajectory[0]
    reference = start[parent] + offsets[sub]
    distance, neighbour = cKDTree(start).query(reference, k=min(2 ** d, n))
    distance, neighbour = distance.reshape(points, -1), neighbour.reshape(points, -1)
    weight = 1.0 / (distance + 1e-3 * spacing) ** 2
    weight /= weight.sum(axis=1, keepdims=True)
    displacement = trajectory - start
    cloud = reference + np.einsum("pk,tpkd->tpd", weight, displacement[:, neighbour])
    return cloud.astype(np.float32), parent


# ----------------------------------------------------------------------------- models
def _noise_std(plan: dict, metadata: dict) -> float:
    return plan["noise"] * float(np.mean(metadata["vel_std"]))


def _normalization(metadata: dict, noise_std: float) -> dict:
    """The file's GNS statistics with the deviations widened by the training noise (GNS)."""
    out = {key: list(metadata[key]) for key in ("vel_mean", "acc_mean")}
    for key in ("vel_std", "acc_std"):
        out[key] = [math.sqrt(s ** 2 + noise_std ** 2) for s in metadata[key]]
    return out


def build_model(kind: str, ratio: float, plan: dict, metadata: dict):
    """The benchmark's GNS (``ratio`` ignored) or GIOROM at sampling ``ratio``, for the data's ``metadata``."""
    from sciml.models.giorom import GIOROM
    from sciml.models.gns import GNS

    dim, radius = int(metadata["dim"]), float(metadata["default_connectivity_radius"])
    common = {"dim": dim, "history": plan["history"],
              "normalization": _normalization(metadata, _noise_std(plan, metadata))}
    if kind == "gns":
        return GNS(radius=radius, **common, **plan["gns"])
    settings = dict(plan["giorom"])
    graph_radius = radius * ratio ** (-1.0 / dim)
    query_radius = settings.pop("query_radius_factor", 1.0) * graph_radius
    return GIOROM(radius=graph_radius, sample_ratio=ratio, query_radius=query_radius, **common, **settings)


def _save(path: Path, kind: str, model) -> None:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"model": kind, "config": json.dumps(model.config), "state": model.state_dict()}
    atomic_write_bytes(path, lambda handle: torch.save(payload, handle))


def _load(path: Path, device):
    import torch

    from sciml.models.giorom import GIOROM
    from sciml.models.gns import GNS

    payload = torch.load(path, map_location=device, weights_only=True)
    model = {"gns": GNS, "giorom": GIOROM}[payload["model"]](**json.loads(payload["config"]))
    model.load_state_dict(payload["state"])
    return model.to(device).eval()


# ----------------------------------------------------------------------------- timing and memory
def _clock(device) -> float:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _timed(fn, device, repeats: int = 1):
    """Mean seconds of ``repeats`` calls of ``fn`` and the last result."""
    start = _clock(device)
    for _ in range(repeats):
        out = fn()
    return (_clock(device) - start) / repeats, out


def _interleaved(fns: dict, device, repeats: int) -> dict:
    """Median wall and process CPU seconds of each of ``fns``, called in turn ``repeats`` times (one call each first,
    untimed): ``{name: (wall, cpu)}``. Interleaving spreads the load of other jobs over all alike."""
    for fn in fns.values():
        fn()
    times = {name: ([], []) for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            cpu, wall = time.process_time(), _clock(device)
            fn()
            times[name][0].append(_clock(device) - wall)
            times[name][1].append(time.process_time() - cpu)
    return {name: (statistics.median(w), statistics.median(c)) for name, (w, c) in times.items()}


def _peak_mib(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _history(trajectory, length: int):
    """Particle-major ``(N, length, d)`` of the first ``length`` frames of ``(T, N, d)``."""
    return trajectory[:length].transpose(0, 1).contiguous()


# ----------------------------------------------------------------------------- trials
def _train(model, kind: str, train: dict, plan: dict, seed: int, device) -> dict:
    """Adam with exponential decay, GNS noise, ``steps`` steps of ``batch_size`` random windows."""
    import torch

    history, steps = plan["history"], plan["steps"]
    noise = _noise_std(plan, train["metadata"])
    rng = np.random.default_rng(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=plan["lr"])
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimiser, (plan["lr_final"] / plan["lr"]) ** (1.0 / steps))
    windows = [(s, t) for s, p in enumerate(train["positions"]) for t in range(history + 1, len(p))]
    losses = []
    model.train()
    start = _clock(device)
    for _ in range(steps):
        picked = [windows[i] for i in rng.choice(len(windows), size=plan["batch_size"], replace=False)]
        sequence = torch.cat([_history(train["positions"][s][t - history - 1:], history + 2) for s, t in picked])
        types = torch.cat([train["types"][s] for s, _ in picked])
        batch = None if len(picked) == 1 else torch.cat(
            [torch.full((len(train["types"][s]),), b, device=device) for b, (s, _) in enumerate(picked)])
        loss = model.loss(sequence, types, train["bounds"], noise_std=noise, batch=batch, generator=generator)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
    seconds = _clock(device) - start
    model.eval()
    tail = losses[-max(1, steps // 10):]
    return {"train_s": seconds, "train_steps": steps, "train_loss": statistics.fmean(tail)}


def _mean(values) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _evaluate(model, kind: str, test: dict, plan: dict, device) -> dict:
    """Rollout MSE over the horizon and time per step on every test scene (full clouds).

    The time per step is that of a ``timing_steps`` rollout after a one-step warm-up; the
    error is that of a rollout over the whole horizon. A scene whose sample GIOROM
    refuses is counted in ``failed`` (its message in ``failure``) and left out of the errors.
    """
    import torch

    history = plan["history"]
    scenes = []
    with torch.no_grad():
        for positions, types in zip(test["positions"], test["types"]):
            start, truth = _history(positions, history + 1), positions[history + 1:history + 1 + plan["horizon"]]
            scene = {"particles": len(types), "nodes": len(types), "sample_s": None, "step_s": None, "mse": None,
                     "final": None, "failure": None}
            scenes.append(scene)
            extra = {}
            if kind == "giorom":
                try:
                    scene["sample_s"], index = _timed(lambda: model.sample(start[:, -1]), device)
                except SciMLError as err:
                    scene.update(nodes=None, failure=str(err))
                    continue
                extra, scene["nodes"] = {"sample_index": index}, len(index)
            n_timed = min(plan["timing_steps"], len(truth))
            model.rollout(start, types, test["bounds"], 1, **extra)  # warm-up
            seconds, _ = _timed(lambda: model.rollout(start, types, test["bounds"], n_timed, **extra), device)
            scene["step_s"] = seconds / n_timed
            predicted = model.rollout(start, types, test["bounds"], len(truth), **extra)
            error = (predicted.transpose(0, 1) - truth).square().mean(dim=(1, 2))
            scene.update(mse=float(error.mean()), final=float(error[-1]))
    largest = max(scenes, key=lambda s: s["particles"])
    failures = [s["failure"] for s in scenes if s["failure"] is not None]
    return {"particles": statistics.fmean(s["particles"] for s in scenes),
            "nodes": _mean(s["nodes"] for s in scenes), "horizon": plan["horizon"],
            "rollout_mse": _mean(s["mse"] for s in scenes), "final_mse": _mean(s["final"] for s in scenes),
            "scene_mse": [s["mse"] for s in scenes],
            "failed": len(failures), "failure": failures[0] if failures else None,
            "step_ms": _mean(None if s["step_s"] is None else 1e3 * s["step_s"] for s in scenes),
            "largest": largest["particles"],
            "step_ms_largest": None if largest["step_s"] is None else 1e3 * largest["step_s"],
            "sample_ms": _mean(None if s["sample_s"] is None else 1e3 * s["sample_s"] for s in scenes)}


def _train_trial(spec: dict, device) -> list[dict]:
    import torch

    plan, kind, ratio, seed = spec["plan"], spec["model"], spec["ratio"], spec["seed"]
    train, test = _setting(spec["files"]["train"], device), _setting(spec["files"]["test"], device)
    torch.manual_seed(seed)
    model = build_model(kind, ratio, plan, train["metadata"]).to(device)
    row = {"task": "rollout", "model": kind, "ratio": ratio, "seed": seed}
    row.update(_train(model, kind, train, plan, seed, device))
    _save(Path(spec["run_dir"]) / "model.pt", kind, model)
    row.update(_evaluate(model, kind, test, plan, device))
    row["parameters"] = model.n_parameters
    return [row]


def _dense_setting(spec: dict, device):
    """The dense cloud from the largest test scene: histories, types, reference frames, source particle count."""
    import torch

    plan, dense = spec["plan"], spec["plan"]["dense"]
    test = _setting(spec["files"]["test"], device)
    source = max(range(len(test["types"])), key=lambda i: len(test["types"][i]))
    frames = plan["history"] + 1 + dense["horizon"]
    trajectory = test["positions"][source][:frames].cpu().numpy()
    cloud, parent = dense_cloud(trajectory, dense["points"], test["spacing"], seed=spec["seed"])
    cloud = torch.as_tensor(cloud, device=device)
    types = test["types"][source][torch.as_tensor(parent, device=device)]
    return test, cloud, types, len(test["types"][source])


def sparse_rollout(model, position_sequence, particle_type, bounds, n_steps: int):
    """``n_steps`` steps of GIOROM's sparse graph alone: the sampled particles' histories ``(n, H + 1, d)`` advanced
    by their own graph predictions (the work of a :meth:`GIOROM.rollout` step without the query decoder and the
    unsampled particles; inputs checked once, as the rollout does). Returns the last positions ``(n, d)``."""
    import torch

    from sciml.models.gns import next_positions

    b = model.check(position_sequence, particle_type, bounds)
    sequence = position_sequence
    for _ in range(n_steps):
        acceleration = model.encoder.denormalize_acceleration(model(sequence, particle_type, b))
        sequence = torch.cat([sequence[:, 1:], next_positions(sequence, acceleration)[:, None]], dim=1)
    return sequence[:, -1]


def _dense_giorom_trial(spec: dict, device) -> list[dict]:
    """GIOROM on the dense cloud: full-cloud rollout step against the sparse graph's, and the dense rollout MSE."""
    import torch

    plan, dense, history = spec["plan"], spec["plan"]["dense"], spec["plan"]["history"]
    model = _load(Path(spec["checkpoint"]), device)
    test, cloud, types, n_source = _dense_setting(spec, device)
    start, truth = _history(cloud, history + 1), cloud[history + 1:]
    ratio = model.config["sample_ratio"]
    n_nodes = max(2, round(ratio * n_source))   # the node density the model was trained at
    bounds, steps = test["bounds"], plan["timing_steps"]
    with torch.no_grad():
        sample_s, index = _timed(lambda: model.sample(start[:, -1], ratio=n_nodes / len(types)), device)
        nodes, node_types = start[index], types[index]
        timed = _interleaved({"dense": lambda: model.rollout(start, types, bounds, steps, sample_index=index),
                              "sparse": lambda: sparse_rollout(model, nodes, node_types, bounds, steps),
                              "advance": lambda: model.advance(start, types, bounds, index)}, device, dense["repeats"])
        predicted = model.rollout(start, types, bounds, dense["horizon"], sample_index=index)
    mse = float((predicted.transpose(0, 1) - truth).square().mean())
    (dense_s, dense_cpu), (sparse_s, sparse_cpu) = timed["dense"], timed["sparse"]
    return [{"task": "dense", "model": "giorom", "ratio": ratio, "seed": spec["seed"], "points": len(types),
             "nodes": n_nodes, "source_particles": n_source, "sample_ms": 1e3 * sample_s,
             "dense_step_ms": 1e3 * dense_s / steps, "sparse_step_ms": 1e3 * sparse_s / steps,
             "dense_over_sparse": dense_s / sparse_s, "dense_over_sparse_cpu": dense_cpu / sparse_cpu,
             "advance_ms": 1e3 * timed["advance"][0], "timing_steps": steps, "repeats": dense["repeats"],
             "dense_mse": mse, "horizon": dense["horizon"]}]


def _dense_gns_trial(spec: dict, device) -> list[dict]:
    """Time per step of the benchmark's GNS on the dense cloud (timing only, see the module notes)."""
    import torch

    from sciml.models.gns import GNS

    plan, dense, history = spec["plan"], spec["plan"]["dense"], spec["plan"]["history"]
    test, cloud, types, n_source = _dense_setting(spec, device)
    torch.manual_seed(spec["seed"])
    coarse = build_model("gns", 1.0, plan, test["metadata"])
    refinement = (dense["points"] / n_source) ** (1.0 / int(test["metadata"]["dim"]))
    model = GNS(**{**coarse.config, "radius": coarse.config["radius"] / refinement}).to(device).eval()
    start = _history(cloud, history + 1)
    with torch.no_grad():
        edges = model.graph(start[:, -1]).shape[1]
        for _ in range(dense["gns_warmup"]):
            model.step(start, types, test["bounds"])
        seconds, _ = _timed(lambda: model.step(start, types, test["bounds"]), device, dense["gns_steps"])
    return [{"task": "dense", "model": "gns", "ratio": 1.0, "seed": spec["seed"], "points": len(types),
             "edges": edges, "step_ms": 1e3 * seconds, "timed_steps": dense["gns_steps"],
             "note": "timing only: untrained GNS, radius / refinement"}]


TRIALS = {"train": _train_trial, "dense-giorom": _dense_giorom_trial, "dense-gns": _dense_gns_trial}


def run_trial(spec: dict) -> list[dict]:
    """One trial (``spec["trial"]`` in :data:`TRIALS`); its rows carry peak memory and the device."""
    import torch

    torch.set_num_threads(spec["plan"]["threads"] or os.cpu_count() or 1)
    device = torch.device(spec["plan"]["device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rows = TRIALS[spec["trial"]](spec, device)
    peak = _peak_mib(device)
    for row in rows:
        row.update(peak_mib=round(peak, 1), memory="cuda allocated" if device.type == "cuda" else "max rss",
                   device=str(device))
    return rows


def _run_in_child(spec: dict) -> list[dict]:
    """:func:`run_trial` in a fresh interpreter, so peak memory is the trial's own."""
    return run_in_child("sciml.bench_lagrangian", spec, f"{spec['trial']} {spec.get('model', '')}")


# ----------------------------------------------------------------------------- results across pieces
class _Results:
    """The rows of one plan in ``bench_lagrangian.json``, merged over pieces and rewritten after every trial."""

    def __init__(self, path: Path | None, plan: dict):
        self.path, self.plan, self.rows = path, plan, []
        if path is not None and path.exists():
            stored = json.loads(path.read_text())
            if stored.get("plan") != plan:
                raise SciMLError(f"{path} holds results of another plan (other --quick/--steps/--device or settings); "
                                 "use another --out or the same options")
            self.rows = stored["rows"]

    def add(self, rows: list[dict], machine: dict) -> None:
        keys = {(r["task"], r["model"], r["ratio"], r["seed"]) for r in rows}
        self.rows = [r for r in self.rows if (r["task"], r["model"], r["ratio"], r["seed"]) not in keys] + rows
        if self.path is not None:
            atomic_write_json(self.path, {"benchmark": "lagrangian", "plan": self.plan, "machine": machine,
                                          "rows": self.rows, "summary": summarize(self.rows)})


def _dense_ratio(ratios: list[float], n_source: int, nodes: int) -> float:
    """The ratio whose node count on the source scene is nearest ``nodes`` (in log scale)."""
    return min(ratios, key=lambda r: abs(math.log(max(r * n_source, 1) / nodes)))


def run(quick: bool = False, out_dir: str | None = None, *, tasks=None, models=None, ratios=None, seeds=None,
        steps: int | None = None, device: str = "cpu", threads: int | None = None, plan: dict | None = None,
        in_process: bool = False) -> list[dict]:
    """Run the suite, or the named pieces of it; return every row of the plan (this call's and earlier pieces').

    Parameters
    ----------
    quick : bool
        Small scenes and models, 2 ratios, 1e4-point dense cloud (under two minutes on 2 cores).
    out_dir : str, optional
        Where data, checkpoints and ``bench_lagrangian.json`` go (default: a temporary folder).
    tasks : list of {"data", "train", "dense"}, optional
        Pieces to run (default all; data are generated whenever missing).
    models : list of {"gns", "giorom"}, optional
        Models to train (default both).
    ratios : list of float, optional
        GIOROM sampling ratios (default the plan's: 1 to 1/32, quick 1/4 and 1/16); the
        dense task picks among them.
    seeds : list of int, optional
        Model seeds (initialisation, batches, noise); the data are fixed.
    steps : int, optional
        Training steps for every model instead of the plan's.
    device : str
        ``"cpu"`` or ``"cuda"`` (data generation, training and timing).
    threads : int, optional
        torch threads for the data and every trial (default: the plan's, 1).
    plan : dict, optional
        Settings that replace the plan's (e.g. ``{"n_frames": 10, "scene": {"resolution": 16}}``).
    in_process : bool
        Run trials in this process instead of one child each (peak memory is then the
        process's); for tests.
    """
    import torch

    plan = _plan(quick, steps, device, threads, plan)
    tasks = _choose("tasks", tasks, TASKS)
    models = _choose("models", models, MODELS)
    ratios = [parse_ratio(r) for r in (ratios if ratios is not None else plan["ratios"])]
    seeds = list(seeds if seeds is not None else plan["seeds"])
    execute = run_trial if in_process else _run_in_child
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(out_dir or scratch)
        root.mkdir(parents=True, exist_ok=True)
        results = _Results(root / "bench_lagrangian.json" if out_dir else None, plan)
        before = torch.get_num_threads()
        torch.set_num_threads(plan["threads"] or os.cpu_count() or 1)
        try:
            machine = machine_info(device)
            files = scene_files(root / "data", plan)
        finally:
            torch.set_num_threads(before)
        common = {"plan": plan, "files": files}
        if "train" in tasks:
            trials = [("gns", 1.0)] * ("gns" in models) + [("giorom", r) for r in ratios] * ("giorom" in models)
            for seed in seeds:
                for kind, ratio in trials:
                    run_dir = root / "runs" / f"{kind}_r{ratio:g}_s{seed}"
                    results.add(execute({**common, "trial": "train", "model": kind, "ratio": ratio, "seed": seed,
                                         "run_dir": str(run_dir)}), machine)
        if "dense" in tasks:
            from sciml.trajectory_file import read_trajectories

            n_source = max(len(t) for t in read_trajectories(files["test"]).fields["particle_type"])
            ratio, seed = _dense_ratio(ratios, n_source, plan["dense"]["nodes"]), seeds[0]
            checkpoint = root / "runs" / f"giorom_r{ratio:g}_s{seed}" / "model.pt"
            if not checkpoint.exists():
                raise SciMLError(f"the dense task needs GIOROM trained at ratio {ratio_label(ratio)} (seed {seed}): "
                                 f"run --tasks train --models giorom --ratios {ratio_label(ratio)} first, same --out")
            results.add(execute({**common, "trial": "dense-giorom", "model": "giorom", "seed": seed,
                                 "checkpoint": str(checkpoint)}), machine)
            results.add(execute({**common, "trial": "dense-gns", "model": "gns", "seed": seed}), machine)
    return results.rows


# ----------------------------------------------------------------------------- tables
def _ratio(a, b) -> float | None:
    return None if a is None or b is None else a / b


def _per_scene(group: list[dict]) -> list[float | None]:
    """Each test scene's rollout MSE, averaged over the seeds whose rollout of it completed."""
    return [_mean(values) for values in zip(*(r["scene_mse"] for r in group))]


def _relative_error(group: list[dict], baseline: list[dict]) -> float | None:
    """Mean rollout MSE over the scenes both rolled out to the end, relative to the baseline's."""
    pairs = [(a, b) for a, b in zip(_per_scene(group), _per_scene(baseline)) if a is not None and b is not None]
    return statistics.fmean(a for a, _ in pairs) / statistics.fmean(b for _, b in pairs) if pairs else None


def summarize(rows: list[dict]) -> list[dict]:
    """Seed means per (model, ratio) of the rollout rows, with GNS-relative error and speedup, then one
    row per dense comparison (GIOROM's full-cloud step against its sparse step and against GNS)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if row["task"] == "rollout":
            groups.setdefault((row["model"], row["ratio"]), []).append(row)
    out = []
    for (model, ratio), group in sorted(groups.items(), key=lambda item: (item[0][0] != "gns", -item[0][1])):
        entry = {"task": "rollout", "model": model, "ratio": ratio_label(ratio) if model == "giorom" else "full",
                 "ratio_value": ratio, "seeds": len(group)}
        for key in ("particles", "nodes", "rollout_mse", "final_mse", "step_ms", "largest", "step_ms_largest",
                    "sample_ms", "train_s", "peak_mib"):
            entry[key] = _mean(r[key] for r in group)
        errors = [r["rollout_mse"] for r in group if r["rollout_mse"] is not None]
        entry["rollout_mse_std"] = statistics.pstdev(errors) if errors else None
        entry["failed"] = sum(r["failed"] for r in group)
        entry["parameters"] = group[0]["parameters"]
        out.append(entry)
    baseline = next((e for e in out if e["model"] == "gns"), None)
    for entry in out:
        if baseline is not None:
            entry["mse_vs_gns"] = _relative_error(groups[(entry["model"], entry["ratio_value"])],
                                                  groups[("gns", baseline["ratio_value"])])
            entry["speedup_largest"] = _ratio(baseline["step_ms_largest"], entry["step_ms_largest"])
    for entry in out:
        del entry["ratio_value"]
    gns = [r for r in rows if r["task"] == "dense" and r["model"] == "gns"]
    for row in (r for r in rows if r["task"] == "dense" and r["model"] == "giorom"):
        entry = {"task": "dense", "ratio": ratio_label(row["ratio"]),
                 **{k: row.get(k) for k in ("points", "nodes", "sample_ms", "dense_step_ms", "sparse_step_ms",
                                            "dense_over_sparse", "dense_over_sparse_cpu", "dense_mse", "peak_mib")}}
        twin = next((g for g in gns if g["seed"] == row["seed"] and g["points"] == row["points"]), None)
        if twin is not None:
            entry.update(gns_step_ms=twin["step_ms"], gns_timed_steps=twin["timed_steps"],
                         speedup=twin["step_ms"] / row["dense_step_ms"], gns_peak_mib=twin["peak_mib"])
        out.append(entry)
    return out


def format_table(rows: list[dict]) -> str:
    """The rollout comparison and the dense-inference comparison as two Markdown tables."""
    summary = summarize(rows)
    rollout = [e for e in summary if e["task"] == "rollout"]
    dense = [e for e in summary if e["task"] == "dense"]
    parts = [tables.format_table(rollout, ROLLOUT_COLUMNS)]
    if dense:
        parts.append(tables.format_table(dense, DENSE_COLUMNS))
    return "\n\n".join(parts)


def main(argv=None) -> None:
    """``python -m sciml.bench_lagrangian [--quick] [--out DIR] [--tasks ...] [--models ...] [--ratios ...]
    [--seeds ...] [--steps N] [--device cpu|cuda] [--threads N] [--set section.key=value ...]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out")
    parser.add_argument("--tasks", nargs="*", choices=TASKS)
    parser.add_argument("--models", nargs="*", choices=MODELS)
    parser.add_argument("--ratios", nargs="*", help="GIOROM sampling ratios, e.g. 1/2 1/32")
    parser.add_argument("--seeds", nargs="*", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="plan settings, e.g. gns.hidden=128 giorom.hidden=128 n_train=32")
    parser.add_argument("--trial", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial:
        answer_trial(args.trial, run_trial)
        return
    try:
        for item in args.set:
            if "=" not in item:
                raise SciMLError(f"cannot read --set {item!r}; write it as key=value or section.key=value")
        plan = apply_overrides({}, [item if "." in item.partition("=")[0] else f"plan.{item}" for item in args.set])
        plan = {**plan.pop("plan", {}), **plan}
        rows = run(quick=args.quick, out_dir=args.out, tasks=args.tasks, models=args.models, ratios=args.ratios,
                   seeds=args.seeds, steps=args.steps, device=args.device, threads=args.threads, plan=plan)
    except SciMLError as err:
        print(f"sciml bench lagrangian: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    print(format_table(rows))


if __name__ == "__main__":
    main()
