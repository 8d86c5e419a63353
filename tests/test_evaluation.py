"""Evaluation of a trained run: metrics.json, figures, resolution change, checks."""

import json

import numpy as np
import pytest
import torch

from sciml.errors import SciMLError
from sciml.evaluation import evaluate
from sciml.figures import plot_sample
from sciml.loader import ArrayDataset
from sciml.training import train


def problem(n_samples, n, seed):
    """u = 1 + sin(2 pi x) * a-dependent amplitude, sampled on an n x n cell-centred grid."""
    rng = np.random.default_rng(seed)
    c = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(c, c, indexing="ij")
    amp = rng.uniform(0.5, 1.5, (n_samples, 1, 1))
    a = amp * np.cos(np.pi * y)
    return ArrayDataset({"a": a + 0 * x, "u": 1 + a * np.sin(2 * np.pi * x)}, ["a"], ["u"])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    run = tmp_path_factory.mktemp("run")
    cfg = {"model": {"name": "fno", "n_modes": 4, "width": 8, "n_layers": 2}, "data": {"batch_size": 4},
           "train": {"epochs": 2, "lr": 1e-2}}
    train(cfg, problem(12, 16, 0), problem(4, 16, 1), run, progress=False)
    yield run
    torch.set_num_threads(threads)


def test_evaluate_writes_metrics_and_figures(run_dir):
    metrics = evaluate(run_dir, problem(5, 16, 2), n_figures=2)
    out = run_dir / "eval_16x16"
    assert json.loads((out / "metrics.json").read_text()) == metrics
    for key in ("relative_l2", "relative_h1"):
        per_sample = metrics[key]["per_sample"]
        assert len(per_sample) == 5 and all(v >= 0 for v in per_sample)
        assert metrics[key]["mean"] == pytest.approx(np.mean(per_sample))
        assert metrics[key]["max"] == max(per_sample) and metrics[key]["median"] == pytest.approx(np.median(per_sample))
    assert metrics["n_samples"] == 5 and metrics["n_parameters"] > 0 and metrics["inference_seconds_per_sample"] > 0
    assert metrics["resolution"] == metrics["train_resolution"] == [16, 16]
    assert sorted(p.name for p in out.glob("*.png")) == ["sample_0.png", "sample_1.png", "training_curves.png"]
    assert all((out / p).stat().st_size > 1000 for p in metrics["figures"])


def test_evaluate_at_twice_the_resolution(run_dir, tmp_path):
    metrics = evaluate(run_dir, problem(3, 32, 2), out_dir=tmp_path / "fine", checkpoint="last", n_figures=1)
    assert metrics["resolution"] == [32, 32] and metrics["train_resolution"] == [16, 16]
    assert len(metrics["relative_h1"]["per_sample"]) == 3 and np.isfinite(metrics["relative_h1"]["mean"])
    assert (tmp_path / "fine" / "metrics.json").is_file() and (tmp_path / "fine" / "sample_0.png").is_file()


def test_evaluate_rejects_data_that_does_not_fit(run_dir):
    n = 16
    other = ArrayDataset({"b": np.ones((2, n, n)), "u": np.ones((2, n, n))}, ["b"], ["u"])
    with pytest.raises(SciMLError, match=r"data has variables \['b'\] -> \['u'\] but the model was trained on inputs \['a'\]"):
        evaluate(run_dir, other)
    with pytest.raises(SciMLError, match="too small for n_modes 4"):
        evaluate(run_dir, problem(2, 3, 0))
    with pytest.raises(SciMLError, match="does not exist"):
        evaluate(run_dir / "nowhere", problem(2, 16, 0))


@pytest.mark.parametrize("dim", [1, 3])
def test_sample_figures_in_other_dimensions(tmp_path, dim):
    rng = np.random.default_rng(dim)
    x, y = rng.standard_normal((2,) + (8,) * dim), rng.standard_normal((1,) + (8,) * dim)
    path = plot_sample(tmp_path / "s.png", x, y, y + 0.1, ["a", "f"], ["u"])
    assert path.stat().st_size > 1000


def test_checkpoint_files_fail_clearly(run_dir, tmp_path):
    from sciml.checkpoint import load_checkpoint, load_model, save_checkpoint

    model, norms, meta = load_model(run_dir)
    assert meta["epoch"] >= 1 and meta["format"]["name"] == "sciml-checkpoint" and not model.training
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # no temp files left

    data = (run_dir / "checkpoints" / "best.pt").read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(SciMLError, match="truncated or corrupt"):
        load_checkpoint(tmp_path / "truncated.pt")
    torch.save({"weights": torch.ones(3)}, tmp_path / "foreign.pt")
    with pytest.raises(SciMLError, match="not a sciml checkpoint"):
        load_model(tmp_path / "foreign.pt")
    torch.save({"format": "x", "obj": np.random.default_rng(0)}, tmp_path / "pickled.pt")
    with pytest.raises(SciMLError, match="objects other than tensors"):
        load_checkpoint(tmp_path / "pickled.pt")
    with pytest.raises(SciMLError, match=r"payload\['loss'\] is a set"):
        save_checkpoint(tmp_path / "bad.pt", {"loss": {1, 2}})
    assert not list(tmp_path.glob(".bad.pt*"))
