"""The constraints benchmark: a tiny run is complete and finite, pieces merge, bad input fails in one line."""

import json
import math

import pytest
import torch

from sciml.bench_constraints import (ACCURACY_COLUMNS, PAPER_POINT_FRACTION, TIMING_COLUMNS, _build, format_table,
                                     main, physics_loss, plan_settings, points_per_expert, run, summarize)
from sciml.datasets.diffusion_sorption import DiffusionSorptionConstraint, generate_trajectories
from sciml.errors import SciMLError

TINY = {"n_cells": 16, "n_frames": 11, "train_frames": 9, "n_train": 4, "n_test": 2, "epochs": 1, "batch_size": 2,
        "model": {"n_modes": 4, "width": 6, "n_layers": 1}, "n_basis": 4,
        "timing": {"n_cells": 16, "n_frames": 11, "batch_size": 1, "points": [40], "repeats": 1}}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("bench")
        rows = run(quick=True, out_dir=str(out), settings=TINY, isolate=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    return out, rows


def test_tiny_run_rows_are_complete_and_finite(tiny_run):
    out, rows = tiny_run
    accuracy = [r for r in rows if r["task"] == "accuracy"]
    timing = [r for r in rows if r["task"] == "timing"]
    assert [r["method"] for r in accuracy] == ["soft", "global", "moe"]
    assert [(r["method"], r["points"]) for r in timing] == [("global", 40), ("moe", 40)]
    for row in accuracy:
        assert set(ACCURACY_COLUMNS) <= set(row)
        assert row["grid"] == "9x16" and row["steps"] == 2 and row["diverged_at_step"] is None
        assert math.isfinite(row["rel_l2"]) and math.isfinite(row["rel_l2_extrap"]) and row["rel_l2"] > 0
        assert row["step_s"] > 0 and row["infer_ms"] > 0 and row["peak_mib"] > 0
    soft, hard = accuracy[0], accuracy[1:]
    assert soft["converged"] is None and soft["points_per_expert"] is None
    for row in hard:
        assert 0 <= row["converged"] <= 1 and 0 <= row["train_converged"] <= 1
        assert 1 <= row["lm_iters"] <= row["lm_iters_max"] <= 100
    assert [r["experts"] for r in hard] == ["1x1", "1x4"]
    assert hard[0]["points_per_expert"] == hard[1]["points_per_expert"]  # the reference: equal per expert
    global_row, moe_row = timing
    assert set(TIMING_COLUMNS) <= set(global_row)
    assert (global_row["points_per_expert"], moe_row["points_per_expert"]) == (40, 10)  # equal in total
    for row in timing:
        assert row["step_s"] > 0 and row["infer_s"] > 0 and 0 <= row["converged"] <= 1


def test_json_plot_and_table(tiny_run):
    out, rows = tiny_run
    saved = json.loads((out / "bench_constraints.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows))
    assert {"platform", "cpus", "torch", "device"} <= set(saved["machine"])
    assert saved["plan"]["n_cells"] == 16 and saved["plan"]["timing"]["points"] == [40]
    assert (out / "bench_constraints_timing.png").stat().st_size > 1000
    assert list((out / "data").glob("diffusion_sorption_11x16_n6_seed0.nc"))
    summary = summarize(rows)
    speed = [s for s in summary if s["task"] == "timing"][0]
    assert speed["step_speedup"] == pytest.approx(speed["global_step_s"] / speed["moe_step_s"])
    table = format_table(rows)
    accuracy_table, timing_table = table.split("\n\n")
    assert accuracy_table.count("\n") == 4 and "| moe " in accuracy_table and "rel_l2_extrap" in accuracy_table
    assert timing_table.count("\n") == 2 and "step_speedup" in timing_table


def test_a_later_piece_keeps_the_rows_of_earlier_pieces(tiny_run, tmp_path):
    _, rows = tiny_run
    plan = plan_settings(quick=True, settings=TINY)
    (tmp_path / "bench_constraints.json").write_text(json.dumps({"plan": plan, "rows": rows}))
    again = run(quick=True, out_dir=str(tmp_path), settings=TINY, isolate=False, device="cpu", tasks=["timing"],
                methods=["moe"])
    assert len(again) == len(rows)
    assert [r for r in again if r["method"] != "moe" or r["task"] != "timing"] == \
        [r for r in rows if r["method"] != "moe" or r["task"] != "timing"]
    with pytest.raises(SciMLError, match="another plan"):
        run(quick=True, out_dir=str(tmp_path), settings={**TINY, "epochs": 2}, isolate=False, tasks=["timing"])


def test_physics_loss_is_smallest_at_the_solution():
    arrays, attrs = generate_trajectories(2, seed=1, n_cells=32, n_frames=11)
    u = torch.as_tensor(arrays["u"])
    c = DiffusionSorptionConstraint.from_attrs(attrs)
    exact = physics_loss(c, u, u[:, 0])
    assert torch.isfinite(exact)
    for wrong in (u + 0.05, 0.9 * u, u.flip(-1)):
        assert physics_loss(c, wrong, u[:, 0]) > exact


def test_points_per_expert_and_plans():
    assert points_per_expert((101, 1024), (1, 1), fraction=PAPER_POINT_FRACTION) == 20000
    assert points_per_expert((11, 16), (1, 4), total=40) == 10
    with pytest.raises(SciMLError, match="multiple of 4"):
        points_per_expert((11, 16), (1, 4), total=42)
    assert plan_settings(paper=True)["n_cells"] == 1024


def test_resample_and_gelu_options_reach_the_model():
    settings = {**TINY, "layer": {"resample": True}, "basis_activation": "gelu"}
    plan = plan_settings(quick=True, settings=settings)
    model = _build("moe", plan, DiffusionSorptionConstraint((9, 16), (50.0, 1 / 16)), 0)
    assert model.config["basis_activation"] == "gelu" and model.layer.config["resample"]
    assert plan_settings(quick=True)["basis_activation"] is None and not plan_settings()["layer"]["resample"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (row,) = run(quick=True, settings=settings, isolate=False, device="cpu", tasks=["accuracy"], methods=["moe"])
    finally:
        torch.set_num_threads(threads)
    assert math.isfinite(row["rel_l2"]) and row["steps"] == 2 and 0 <= row["converged"] <= 1


@pytest.mark.parametrize("settings, words", [({"train_frames": 11}, "below n_frames"),
                                             ({"experts": [1, 3]}, "divide the cells"),
                                             ({"experts": [2, 4]}, "1 block along time"),
                                             ({"widht": 3}, "unknown constraints-benchmark setting")])
def test_bad_plans_fail_in_one_line(settings, words):
    with pytest.raises(SciMLError, match=words) as error:
        plan_settings(quick=True, settings={**TINY, **settings})
    assert "\n" not in str(error.value)


def test_bad_names_fail_in_one_line():
    with pytest.raises(SciMLError, match="unknown method 'hard'"):
        run(quick=True, settings=TINY, isolate=False, methods=["hard"], tasks=["timing"])
    with pytest.raises(SciMLError, match="quick and --paper"):
        run(quick=True, paper=True)
    with pytest.raises(SystemExit):
        main(["--tasks", "speed"])
