"""The recycling benchmark: a tiny run is complete and honest, bad names fail in one line."""

import json
import time

import numpy as np
import pytest

from sciml.bench_recycling import (COLUMNS, MethodProgress, MethodRun, Tally, assemble_systems, build_problem,
                                   format_table, main, run, run_interleaved)
from sciml.errors import SciMLError


def test_tiny_run_rows_are_complete_and_meet_the_true_residual(tmp_path):
    rows = run(quick=True, out_dir=str(tmp_path), families=["darcy"], sizes=["2d-tiny"], systems=3,
               methods=["direct", "skr-sorted"], budget_seconds=30)
    assert [row["method"] for row in rows] == ["direct", "skr-sorted"]
    for row in rows:
        assert set(COLUMNS) <= set(row)
        assert row["systems"] == row["planned"] == row["converged"] == 3, row["note"]
        assert row["max_residual"] <= row["rtol"] == 1e-6
        assert row["matvecs_per_system"] >= 1 and row["s_per_system"] > 0
        assert 0 <= row["op_share"] <= 1 and 0 <= row["m_share"] <= row["op_share"]
        assert row["setup_share"] > 0 and row["other_share"] > 0
        assert row["op_share"] + row["setup_share"] + row["other_share"] == pytest.approx(1.0)
    skr = rows[1]
    assert skr["compared_with"] == {"splu + refinement": 3} and skr["agree"] is True
    assert skr["skr_speedup"] == 1.0 and skr["ordering_seconds"] > 0

    saved = json.loads((tmp_path / "bench_recycling.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows))
    assert {"platform", "cpus", "numpy", "scipy", "pyamg"} <= set(saved["machine"])
    assert saved["plan"]["systems"] == 3 and saved["plan"]["methods"] == ["direct", "skr-sorted"]
    assert saved["plan"]["interleave"] is True
    table = format_table(rows)
    assert table.count("\n") == 3 and "skr-sorted" in table


def test_interleaved_methods_take_turns_and_keep_their_own_budgets():
    systems = assemble_systems(build_problem("poisson", "2d-tiny"), 3)
    seen = []

    def recorder(name, pause=0.0):
        def solve(system):
            seen.append(name)
            time.sleep(pause)
            return system.b.copy()
        return MethodRun(name, "none", solve, Tally())

    fast = MethodProgress(recorder("fast"), systems, [0, 1, 2], 1e-6, budget=10.0, reference={})
    slow = MethodProgress(recorder("slow", pause=0.05), systems, [2, 1, 0], 1e-6, budget=0.04, reference={})
    run_interleaved([fast, slow])
    assert seen == ["fast", "slow", "fast", "fast"]  # slow's budget is spent after its first system
    assert fast.figures()["systems"] == 3 and slow.figures()["systems"] == 1
    assert "budget 0.04 s spent: 1 of 3" in slow.figures()["note"]


def test_an_unconverged_answer_is_judged_by_the_true_residual_and_reported():
    systems = assemble_systems(build_problem("poisson", "2d-tiny"), 2)
    assert systems[1].A is systems[0].A  # fixed operator: one matrix object for every system
    lazy = MethodRun("returns b", "none", lambda system: system.b.copy(), Tally())
    reference = {0: (np.zeros_like(systems[0].b), "direct")}
    progress = MethodProgress(lazy, systems, [0, 1], 1e-6, budget=10.0, reference=reference)
    run_interleaved([progress])
    figures = progress.figures()
    assert figures["systems"] == 2 and figures["converged"] == 0
    assert figures["max_residual"] > 1 and figures["max_dx"] is None and figures["agree"] is None
    assert figures["note"] == "2 of 2 systems did not converge"
    assert 1 not in reference  # an unconverged x never becomes a reference


@pytest.mark.parametrize("argument", [{"families": ["darcyy"]}, {"methods": ["gmres", "bicgstab"]},
                                      {"sizes": ["4d-huge"]}, {"systems": 0},
                                      {"preconditioners": {"darcy": "csl-amg"}}])
def test_bad_names_and_counts_fail_in_one_line(argument):
    with pytest.raises(SciMLError) as error:
        run(quick=True, **argument)
    assert "\n" not in str(error.value)


def test_cli_reports_an_unknown_method(capsys):
    with pytest.raises(SystemExit):
        main(["--quick", "--methods", "bicgstab"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown method 'bicgstab'") and "\n" not in err
