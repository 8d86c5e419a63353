"""Training: convergence on a toy problem, run folder, exact resume, DDP, bad input."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import sciml.training
from sciml.checkpoint import load_checkpoint
from sciml.errors import SciMLError, UnknownNameError
from sciml.loader import ArrayDataset
from sciml.training import DEFAULT_CONFIG, resolve_config, train

SMALL_MODEL = {"name": "fno", "n_modes": 4, "width": 8, "n_layers": 2}


def smooth_problem(n_samples=24, n=16, seed=0):
    """x: a smooth random field; y = 1 + a Gaussian-smoothed copy of x (an easy linear operator)."""
    rng = np.random.default_rng(seed)
    k = np.fft.fftfreq(n) * n
    filt = np.exp(-(k[:, None] ** 2 + k[None, :] ** 2) / 8)

    def smooth(f):
        return np.real(np.fft.ifft2(np.fft.fft2(f) * filt))

    a = 5 * smooth(rng.standard_normal((n_samples, n, n)))
    return ArrayDataset({"a": a, "u": 1 + smooth(a)}, ["a"], ["u"])


def config(**train_options):
    return {"model": dict(SMALL_MODEL), "data": {"batch_size": 4}, "train": {"epochs": 2, **train_options}}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_reduces_loss_and_writes_run_folder(tmp_path):
    ds = smooth_problem()
    summary = train(config(epochs=4, lr=1e-2), ds, smooth_problem(8, seed=1), tmp_path, progress=False)
    history = json.loads((tmp_path / "history.json").read_text())
    assert [rec["epoch"] for rec in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < 0.7 * history[0]["train_loss"]
    assert history[-1]["val_l2"] < history[0]["val_l2"]
    assert set(history[0]) == {"epoch", "train_loss", "val_l2", "val_h1", "lr", "seconds"}
    assert json.loads((tmp_path / "config.json").read_text()) == resolve_config(config(epochs=4, lr=1e-2))

    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert best["epoch"] == summary["best_epoch"] and last["epoch"] == 4
    assert best["metrics"]["val_h1"] == pytest.approx(summary["best_val_h1"])
    assert summary["best_val_h1"] == min(rec["val_h1"] for rec in history)
    assert best["input_names"] == ["a"] and best["output_names"] == ["u"] and best["spatial_shape"] == [16, 16]
    assert last["format"]["packages"]["neuralop"] and "optimizer" in last and "optimizer" not in best
    assert summary["n_parameters"] > 0 and summary["epochs_run"] == 4 and summary["world_size"] == 1


class Interrupt(Exception):
    pass


def interrupt_after_first_epoch(monkeypatch):
    real = sciml.training.save_checkpoint

    def save_then_stop(path, payload):
        real(path, payload)
        if path.name == "last.pt" and payload["epoch"] == 1:
            raise Interrupt

    monkeypatch.setattr(sciml.training, "save_checkpoint", save_then_stop)


@pytest.mark.parametrize("scheduler, how", [("cosine", "interrupt"), ("onecycle", "interrupt"), ("step", "extend")])
def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch, scheduler, how):
    ds, val = smooth_problem(12), smooth_problem(4, seed=1)
    cfg = config(scheduler=scheduler, step_size=1)
    train(cfg, ds, val, tmp_path / "full", progress=False)

    if how == "interrupt":
        with monkeypatch.context() as m:
            interrupt_after_first_epoch(m)
            with pytest.raises(Interrupt):
                train(cfg, ds, val, tmp_path / "split", progress=False)
    else:
        train(config(scheduler=scheduler, step_size=1, epochs=1), ds, val, tmp_path / "split", progress=False)
    summary = train(cfg, ds, val, tmp_path / "split", resume=True, progress=False)
    assert summary["epochs_run"] == 1 and summary["epochs"] == 2

    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    split = load_checkpoint(tmp_path / "split" / "checkpoints" / "last.pt")
    for key, value in full["model_state"].items():
        torch.testing.assert_close(split["model_state"][key], value, rtol=1e-6, atol=1e-7)
    assert split["scheduler"] == full["scheduler"]
    hist_full, hist_split = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("full", "split"))
    for a, b in zip(hist_full, hist_split, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6) and a["lr"] == pytest.approx(b["lr"])


def test_resume_errors(tmp_path):
    ds = smooth_problem(8)
    with pytest.raises(SciMLError, match="does not exist"):
        train(config(), ds, ds, tmp_path, resume=True, progress=False)
    train(config(epochs=1), ds, ds, tmp_path, progress=False)
    with pytest.raises(SciMLError, match="already holds a training run"):
        train(config(epochs=1), ds, ds, tmp_path, progress=False)
    with pytest.raises(SciMLError, match="train.lr was 0.003 but is now 0.1"):
        train(config(epochs=1, lr=0.1), ds, ds, tmp_path, resume=True, progress=False)
    with pytest.raises(SciMLError, match="cannot change train.epochs on resume with the 'cosine' schedule"):
        train(config(epochs=3), ds, ds, tmp_path, resume=True, progress=False)
    with pytest.raises(SciMLError, match="already trained 1 of train.epochs = 1"):
        train(config(epochs=1), ds, ds, tmp_path, resume=True, progress=False)


def test_bad_inputs(tmp_path):
    ds = smooth_problem(8)
    with pytest.raises(UnknownNameError, match="unknown model 'resnet'"):
        train({"model": {"name": "resnet"}}, ds, ds, tmp_path / "a", progress=False)
    with pytest.raises(SciMLError, match="unknown key train.learning_rate"):
        train({"train": {"learning_rate": 1e-3}}, ds, ds, tmp_path / "b", progress=False)
    with pytest.raises(SciMLError, match="train.scheduler"):
        resolve_config({"train": {"scheduler": "linear"}})
    with pytest.raises(SciMLError, match="training set is empty"):
        train(config(), ArrayDataset({"a": np.ones((0, 16, 16)), "u": np.ones((0, 16, 16))}, ["a"], ["u"]),
              ds, tmp_path / "c", progress=False)
    with pytest.raises(SciMLError, match="too small for n_modes 12"):
        train({"model": {"name": "fno", "n_modes": 12}}, smooth_problem(4, n=8), smooth_problem(4, n=8), tmp_path / "d", progress=False)
    other = ArrayDataset({"b": np.ones((4, 16, 16)), "u": np.ones((4, 16, 16))}, ["b"], ["u"])
    with pytest.raises(SciMLError, match="differ from validation"):
        train(config(), ds, other, tmp_path / "e", progress=False)
    with pytest.raises(SciMLError, match="training diverged at epoch 1: lower train.lr"):
        train(config(lr=1e8, scheduler="none"), ds, ds, tmp_path / "f", progress=False)
    assert DEFAULT_CONFIG["train"]["loss"] == "h1" and resolve_config()["train"]["device"] == "auto"


def test_data_parallel_under_torchrun(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(
        "import json, os, sys\nimport numpy as np\nfrom sciml.loader import ArrayDataset\n"
        "from sciml.training import train\n\n" + textwrap.dedent(_source(smooth_problem)) + textwrap.dedent(f"""
        summary = train({config(epochs=2)!r}, smooth_problem(10), smooth_problem(4, seed=1), sys.argv[1], progress=True)
        with open(os.path.join({str(tmp_path)!r}, "summary_" + os.environ["RANK"] + ".json"), "w") as f:
            json.dump(summary, f)
    """))
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(run_dir)],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = [json.loads((tmp_path / f"summary_{rank}.json").read_text()) for rank in (0, 1)]
    assert all(s["world_size"] == 2 and s["epochs_run"] == 2 for s in summaries)
    assert summaries[0]["best_val_h1"] == summaries[1]["best_val_h1"]
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    assert files == ["checkpoints/best.pt", "checkpoints/last.pt", "config.json", "history.json"]
    assert len(json.loads((run_dir / "history.json").read_text())) == 2


def _source(func):
    import inspect

    return inspect.getsource(func)


def test_normalizers_fit_on_training_split_only(tmp_path):
    from sciml.normalization import ChannelNormalizer, fit_normalizers

    rng = np.random.default_rng(3)
    fields = {"a": 2 + 3 * rng.standard_normal((10, 8, 8)), "f": np.full((10, 8, 8), 0.7), "u": rng.random((10, 8, 8))}
    ds = ArrayDataset(fields, ["a", "f"], ["u"])
    norms = fit_normalizers(ds, batch_size=3)  # streaming over uneven batches
    a32 = fields["a"].astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(norms.input.mean.numpy(), [a32.mean(), np.float32(0.7)], rtol=1e-12)
    np.testing.assert_allclose(norms.input.std.numpy(), [a32.std(), 1.0], rtol=1e-10)  # constant channel -> 1
    x = torch.as_tensor(np.stack([fields["a"], fields["f"]], 1), dtype=torch.float32)
    assert bool(torch.isfinite(norms.input.encode(x)).all())
    torch.testing.assert_close(norms.input.decode(norms.input.encode(x)), x)
    assert ChannelNormalizer.from_state_dict(norms.output.state_dict()).mean.tolist() == norms.output.mean.tolist()

    val = ArrayDataset({k: 100 + v for k, v in fields.items()}, ["a", "f"], ["u"])
    train(config(epochs=1), ds, val, tmp_path, progress=False)
    saved = load_checkpoint(tmp_path / "checkpoints" / "best.pt")["normalization"]
    torch.testing.assert_close(saved["input"]["mean"], norms.input.mean)
    torch.testing.assert_close(saved["output"]["std"], norms.output.std)
