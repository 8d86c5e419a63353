"""`sciml demo`, the README's first command, in its quick form."""

from sciml.cli import main


def test_quick_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "| FNO (neuraloperator) | 16x16" in out and "| FNO (neuraloperator) | 32x32" in out
    for name in ("darcy_train_16.nc", "darcy_test_16.nc", "darcy_test_32.nc", "run_fno/checkpoints/best.pt",
                 "eval_16/metrics.json", "eval_32/sample_0.png", "eval_32/training_curves.png"):
        assert (tmp_path / "demo" / name).exists(), name
