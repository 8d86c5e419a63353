"""The Lagrangian benchmark (GIOROM against GNS on MPM scenes) end to end, at tiny sizes."""

import json
import math

import numpy as np
import pytest

from sciml import bench_lagrangian as bench
from sciml.errors import SciMLError

TINY = {"n_frames": 10, "n_train": 2, "n_test": 2, "steps": 3, "timing_steps": 2, "horizon": 3,
        "scene": {"resolution": 16, "n_boxes": [1, 1], "box_size": [0.3, 0.45]},
        "dense": {"points": 1500, "nodes": 30, "horizon": 2, "repeats": 1, "gns_warmup": 0, "gns_steps": 1}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_lagrangian")
    rows = bench.run(quick=True, out_dir=str(out), plan=TINY, in_process=True)
    return out, rows


def test_tiny_run_has_every_row_field_finite_errors_and_renders(tiny_run):
    out, rows = tiny_run
    rollout = [r for r in rows if r["task"] == "rollout"]
    assert sorted((r["model"], r["ratio"]) for r in rollout) == [("giorom", 1 / 16), ("giorom", 1 / 4), ("gns", 1.0)]
    for row in rollout:
        for key in ("particles", "nodes", "horizon", "rollout_mse", "final_mse", "scene_mse", "failed", "step_ms",
                    "largest", "step_ms_largest", "train_s", "train_steps", "train_loss", "parameters", "peak_mib",
                    "device"):
            assert key in row, key
        assert row["train_steps"] == 3 and row["horizon"] == 3 and len(row["scene_mse"]) == 2
        assert row["failed"] == 0 and all(math.isfinite(v) and v >= 0 for v in row["scene_mse"])
        assert math.isfinite(row["train_loss"]) and row["peak_mib"] > 0
    giorom = {r["ratio"]: r for r in rollout if r["model"] == "giorom"}
    gns = next(r for r in rollout if r["model"] == "gns")
    assert giorom[1 / 16]["nodes"] < giorom[1 / 4]["nodes"] < gns["nodes"] == gns["particles"]
    dense = {r["model"]: r for r in rows if r["task"] == "dense"}
    assert dense["giorom"]["points"] == dense["gns"]["points"] == 1500
    assert dense["giorom"]["ratio"] == 1 / 4      # the trained ratio nearest 30 nodes on the test scene
    assert math.isfinite(dense["giorom"]["dense_mse"]) and dense["giorom"]["dense_over_sparse"] > 0
    assert dense["giorom"]["dense_over_sparse_cpu"] > 0 and dense["giorom"]["advance_ms"] > 0
    assert dense["giorom"]["timing_steps"] == 2 and dense["giorom"]["repeats"] == 1
    assert dense["gns"]["edges"] > 0 and dense["gns"]["timed_steps"] == 1
    table = bench.format_table(rows)
    assert "| giorom | 1/16 " in table and "| gns    | full " in table and "dense_over_sparse" in table
    stored = json.loads((out / "bench_lagrangian.json").read_text())
    assert stored["plan"]["steps"] == 3 and stored["machine"]["cpus"] >= 1 and len(stored["rows"]) == len(rows)
    setting = bench._setting(str(out / "data" / "mpm_test.nc"), "cpu")  # the models get the data's own bounds
    dx = setting["metadata"]["dx"]
    assert setting["bounds"] == setting["metadata"]["bounds"] == [[dx, 1.0 - dx]] * 2
    summary = {(e["task"], e.get("model"), e["ratio"]): e for e in stored["summary"]}
    assert summary[("rollout", "gns", "full")]["mse_vs_gns"] == 1.0
    assert summary[("dense", None, "1/4")]["speedup"] > 0


def test_a_piece_rerun_in_a_child_replaces_its_rows_and_another_plan_is_refused(tiny_run):
    out, rows = tiny_run
    again = bench.run(quick=True, out_dir=str(out), plan=TINY, tasks=["dense"], ratios=["1/4"])
    assert len(again) == len(rows)
    assert [r for r in again if r["task"] == "rollout"] == [r for r in rows if r["task"] == "rollout"]
    assert {r["memory"] for r in again if r["task"] == "dense"} == {"max rss"}
    with pytest.raises(SciMLError, match="holds results of another plan"):
        bench.run(quick=True, out_dir=str(out), plan={**TINY, "steps": 4}, tasks=["data"])


def test_sparse_rollout_is_the_rollout_of_the_sampled_graph_alone():
    """What the dense task times as the sparse step: GIOROM's rollout of a cloud that is all nodes."""
    import torch

    from sciml.models.giorom import GIOROM

    torch.manual_seed(0)
    model = GIOROM(radius=0.3, hidden=8, sample_ratio=0.5, latent_resolution=3, heads=2,
                   normalization={"vel_mean": 0.0, "vel_std": 0.01, "acc_mean": 0.0, "acc_std": 1e-4}).double()
    g = torch.Generator().manual_seed(1)
    history = 0.5 + 0.01 * torch.randn(20, 6, 2, generator=g, dtype=torch.float64).cumsum(1)
    types = torch.zeros(20, dtype=torch.long)
    with torch.no_grad():
        alone = bench.sparse_rollout(model, history, types, [[0, 1], [0, 1]], 3)
        rollout = model.rollout(history, types, [[0, 1], [0, 1]], 3, sample_index=torch.arange(20))
    assert torch.allclose(alone, rollout[:, -1], rtol=0, atol=1e-14)


def test_dense_cloud_follows_the_particles():
    g = np.random.default_rng(0)
    start = np.stack(np.meshgrid(np.arange(6), np.arange(5), indexing="ij"), -1).reshape(-1, 2) * 0.1 + 0.2
    shift = np.array([0.03, -0.02])
    trajectory = np.stack([start, start + shift, start + 2 * shift]).astype(np.float32)
    cloud, parent = bench.dense_cloud(trajectory, 500, spacing=0.1, seed=1)
    assert cloud.shape == (3, 500, 2) and parent.shape == (500,) and parent.max() < 30
    assert np.allclose(cloud[2] - cloud[0], 2 * shift, atol=1e-6)      # a translation moves every point with it
    assert np.abs(cloud[0] - start[parent]).max() <= 0.05 + 1e-6        # each point lies in its particle's cell
    assert len(np.unique(cloud[0], axis=0)) == 500
    stretch = np.stack([start, start * [1.1, 1.0]]).astype(np.float32)
    dense, _ = bench.dense_cloud(stretch, 200, spacing=0.1, seed=g.integers(100))
    assert np.all(np.diff(dense[:, :, 1], axis=0) == 0)                  # no motion where no particle moves


def test_bad_options_are_one_line_errors(tmp_path):
    for ratio in ("0", "2", "x", "1/0"):
        with pytest.raises(SciMLError, match="sampling ratio .* must be a number in \\(0, 1\\]"):
            bench.parse_ratio(ratio)
    assert bench.parse_ratio("1/32") == 1 / 32 and bench.ratio_label(1 / 32) == "1/32"
    with pytest.raises(SciMLError, match="unknown tasks \\['fit'\\]"):
        bench.run(quick=True, tasks=["fit"])
    with pytest.raises(SciMLError, match="unknown plan setting 'epochs'"):
        bench.run(quick=True, plan={"epochs": 3})
    with pytest.raises(SciMLError, match="horizon must be an integer from 1 to n_frames - history - 1 = 24"):
        bench.run(quick=True, plan={"horizon": 25})
    with pytest.raises(SciMLError, match="unknown dense setting"):
        bench.run(quick=True, plan={"dense": {"point": 3}})
    with pytest.raises(SciMLError, match="the dense task needs GIOROM trained at ratio 1/4"):
        bench.run(quick=True, out_dir=str(tmp_path), plan=TINY, tasks=["dense"], ratios=["1/4"])
