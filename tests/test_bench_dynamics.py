"""The dynamics benchmark: a tiny end-to-end run has every field, finite errors, a refiner row and a table."""

import copy
import json
import math

import pytest
import torch

from sciml.bench_dynamics import (QUICK, SpaceTimeFNO, _trial_pairs, build, format_table, main, model_config,
                                   ns_residual_norm, run, summarize)
from sciml.errors import SciMLError
from sciml.models.sinenet import count_parameters

MODEL_FIELDS = {"task", "model", "resolution", "seed", "params", "steps", "one_step_l2", "rollout_l2_10",
                "rollout_l2_40", "rollout_l2_per_frame", "train_s", "infer_ms", "lr", "history", "horizon"}
REFINER_FIELDS = {"task", "model", "resolution", "seed", "n_trajectories", "error_before", "error_after",
                  "residual_before", "residual_after", "residual_truth", "refine_s", "forward_ms", "cost_ratio",
                  "steps", "diverged", "per_trajectory"}


def tiny_plan() -> dict:
    """The protocol of the quick plan (10 frames in, 40 out) on the smallest grids and models."""
    plan = copy.deepcopy(QUICK)
    plan["train"] = {"steps": 2, "batch_size": 4}
    plan["ns"].update(dt=0.05, warmup_time=0.5, solver_resolution=32, train_resolution=16, test_resolution=32,
                      n_train=2, n_test=1, generation_batch=2, models=["sfno-10", "fno3d", "sinenet-1", "unet"])
    plan["swe"].update(resolution=16, n_train=2, n_test=1, generation_batch=2, models=["fno"])
    plan["models"] = {"sfno": {"modes_space": 4, "modes_time": 2, "width": 4, "n_layers": 1},
                      "fno": {"n_modes": 8, "width": 4, "n_layers": 1},
                      "fno3d": {"n_modes": 8, "time_modes": 8, "width": 4, "n_layers": 1, "time_padding": 0.15},
                      "sinenet": {"width": 4, "levels": 1, "multiplier": 1.425}}
    plan["sweep"] = {"waves": [1]}
    plan["refiner"].update(n_trajectories=1, steps=3, time_modes=3)
    return plan


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dynamics")
    return out, run(plan=tiny_plan(), out_dir=str(out), tasks=["ns", "refiner", "swe"])


def test_tiny_run_rows_are_complete_and_finite(tiny_run):
    out, rows = tiny_run
    models = [r for r in rows if r["task"] != "ns-refine"]
    assert {(r["task"], r["model"], r["resolution"]) for r in models} == {
        *(("ns", m, n) for m in ("sfno-10", "fno3d", "sinenet-1", "unet") for n in (16, 32)), ("swe", "fno", 16)}
    for row in models:
        assert MODEL_FIELDS <= set(row), MODEL_FIELDS - set(row)
        assert len(row["rollout_l2_per_frame"]) == 40 and row["params"] > 0 and row["steps"] >= 2
        for key in ("one_step_l2", "rollout_l2_10", "rollout_l2_40", "train_s", "infer_ms"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["model"], key, row[key])
        assert row["one_step_l2"] == row["rollout_l2_per_frame"][0]
    by_model = {r["model"]: r for r in models if r["resolution"] == 16}
    assert by_model["sfno-10"]["horizon"] == 10 and by_model["fno3d"]["horizon"] == 40
    assert by_model["unet"]["horizon"] == 1 and by_model["sinenet-1"]["history"] == 10
    # the U-Net's width is the one whose size is closest to the plan's SineNet (here SineNet-1)
    _, unet = model_config("unet", 10, 1, tiny_plan())
    target = by_model["sinenet-1"]["params"]
    gap = abs(by_model["unet"]["params"] - target)
    for width in (unet["width"] - 1, unet["width"] + 1):
        assert abs(count_parameters("unet", **dict(unet, width=width)) - target) >= gap


def test_the_refiner_row_reports_before_and_after(tiny_run):
    _, rows = tiny_run
    (refined,) = [r for r in rows if r["task"] == "ns-refine"]
    assert REFINER_FIELDS <= set(refined), REFINER_FIELDS - set(refined)
    assert refined["model"] == "sfno-10" and refined["resolution"] == 32 and refined["n_trajectories"] == 1
    assert refined["steps"] == 3 and refined["diverged"] == 0
    for key in ("error_before", "error_after", "residual_before", "residual_after", "residual_truth",
                "refine_s", "forward_ms", "cost_ratio"):
        assert math.isfinite(refined[key]) and refined[key] > 0, (key, refined[key])
    assert refined["residual_after"] < refined["residual_before"]
    assert refined["residual_truth"] < refined["residual_before"]
    # the unrefined error is the SFNO's own 10-frame rollout error on that trajectory
    sfno = next(r for r in rows if r["model"] == "sfno-10" and r["resolution"] == 32)
    assert refined["error_before"] == pytest.approx(sfno["rollout_l2_10"], rel=1e-4)


def test_json_holds_every_trial_and_a_rerun_reuses_them(tiny_run):
    out, rows = tiny_run
    saved = json.loads((out / "bench_dynamics.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows))
    assert {"platform", "cpus", "torch", "torch_threads", "device"} <= set(saved["machine"])
    assert saved["plan"]["train"]["steps"] == 2 and len(saved["summary"]) == len(rows)
    again = run(plan=tiny_plan(), out_dir=str(out), tasks=["ns"], models=["unet"])
    assert again == [r for r in rows if r["task"] == "ns" and r["model"] == "unet"]


def test_format_table_and_summary(tiny_run):
    _, rows = tiny_run
    table = format_table(rows)
    models, refiner = table.split("\n\n")
    assert models.count("\n") == 2 + 8 and "rollout_l2_40" in models and "| swe " in models
    assert refiner.count("\n") == 2 and "error_after" in refiner and "cost_ratio" in refiner
    seeds = [dict(rows[0], seed=1, rollout_l2_10=3 * rows[0]["rollout_l2_10"]), rows[0]]
    (summary,) = summarize(seeds)
    assert summary["seeds"] == 2 and summary["rollout_l2_10"] == pytest.approx(2 * rows[0]["rollout_l2_10"])
    assert summary["rollout_l2_10_std"] == pytest.approx(rows[0]["rollout_l2_10"])


def test_space_time_fno_and_residual_norm():
    torch.manual_seed(0)
    model = SpaceTimeFNO(3, 6, n_modes=4, time_modes=4, width=4, n_layers=1)
    assert tuple(model(torch.randn(2, 3, 8, 8)).shape) == (2, 6, 8, 8) and model.n_parameters > 0
    # a steady state of w_t = nu Lap w + f with f = -nu Lap w has zero residual, a perturbed one does not
    x = torch.arange(16, dtype=torch.float64) / 16
    w = torch.sin(2 * math.pi * x)[:, None] * torch.cos(4 * math.pi * x)[None, :]
    forcing = 1e-2 * 20 * math.pi**2 * w
    frames = w.expand(1, 4, 16, 16)
    exact = ns_residual_norm(frames, frame_dt=0.1, nu=1e-2, forcing=forcing)
    wrong = ns_residual_norm(frames * torch.tensor([1.0, 1.0, 1.1, 1.2]).view(1, 4, 1, 1), frame_dt=0.1, nu=1e-2,
                             forcing=forcing)
    assert float(exact) < 1e-12 < float(wrong)


def test_which_trials_a_piece_runs():
    plan = tiny_plan()
    assert _trial_pairs(plan, ["ns", "sinenet-sweep"], None) == [
        ("ns", "sfno-10"), ("ns", "fno3d"), ("ns", "sinenet-1"), ("ns", "unet"), ("swe", "sinenet-1"), ("swe", "unet")]
    assert _trial_pairs(plan, ["swe"], ["sfno-10", "fno3d", "sinenet-3"]) == [("swe", "sinenet-3")]
    assert _trial_pairs(plan, ["sinenet-sweep"], ["fno", "sinenet-4", "unet"]) == [
        ("ns", "sinenet-4"), ("ns", "unet"), ("swe", "sinenet-4"), ("swe", "unet")]


@pytest.mark.parametrize("argument", [{"tasks": ["navier-stokes"]}, {"models": ["sinenet-x"]}, {"models": ["sfno"]},
                                      {"plan": "huge"}, {"steps": 0}, {"n_train": -1}, {"threads": 0}])
def test_bad_arguments_fail_in_one_line(argument):
    with pytest.raises(SciMLError) as error:
        run(**{"plan": "quick", **argument})
    assert "\n" not in str(error.value)


def test_unknown_model_name_and_cli_error(capsys):
    with pytest.raises(SciMLError, match="unknown benchmark model"):
        build("resnet", 10, 1, QUICK)
    with pytest.raises(SystemExit):
        main(["--quick", "--tasks", "ns", "--models", "fno4d"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown benchmark model 'fno4d'") and "\n" not in err
