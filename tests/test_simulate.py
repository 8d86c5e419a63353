"""The batched trajectory driver: seeds independent of batching, divergence stops, resume."""

import numpy as np
import pytest

from sciml.datasets.trajectory_generator import TrajectoryGenerator
from sciml.errors import SciMLError
from sciml.simulate import simulate_dataset
from sciml.trajectory_file import read_trajectories


class DecayingModes(TrajectoryGenerator):
    """Exact heat-equation trajectories of random Fourier modes (unregistered test generator)."""

    def __init__(self, n=8, frames=4, fail_seeds=()):
        self.n, self.frames, self.fail_seeds = n, frames, set(fail_seeds)

    def parameters(self):
        return {"n": self.n, "frames": self.frames}

    def coords(self):
        x = np.arange(self.n) / self.n
        return {"time": np.linspace(0, 0.1, self.frames), "x": x}

    def simulate(self, seeds, device=None):
        out = []
        for s in seeds:
            if s in self.fail_seeds:
                raise SciMLError(f"sample with seed {s} diverged at step 3")
            a = np.random.default_rng(s).standard_normal(3)
            x, t = np.arange(self.n) / self.n, self.coords()["time"][:, None]
            k = 2 * np.pi * np.arange(1, 4)
            out.append(sum(a[j] * np.exp(-k[j] ** 2 * t) * np.sin(k[j] * x) for j in range(3)))
        return {"u": np.stack(out)}


def test_batching_does_not_change_the_data(tmp_path):
    one = read_trajectories(simulate_dataset(DecayingModes(), 5, tmp_path / "a.nc", seed=2, batch_size=5))
    many = read_trajectories(simulate_dataset(DecayingModes(), 5, tmp_path / "b.nc", seed=2, batch_size=2))
    np.testing.assert_array_equal(one.fields["u"], many.fields["u"])
    assert one.attrs["pde_parameters"] == {"n": 8, "frames": 4}


def test_divergence_stops_and_resume_finishes(tmp_path):
    from sciml.dataset_file import sample_seed

    out = tmp_path / "c.nc"
    bad = sample_seed(0, 3)
    with pytest.raises(SciMLError, match=r"batch 1 \(samples 2-3\).*diverged at step 3.*--resume"):
        simulate_dataset(DecayingModes(fail_seeds=[bad]), 5, out, batch_size=2)
    assert not out.exists() and (tmp_path / "c.nc.parts" / "batch_0000000.npz").exists()
    simulate_dataset(DecayingModes(), 5, out, batch_size=2, resume=True)
    reference = read_trajectories(simulate_dataset(DecayingModes(), 5, tmp_path / "d.nc", batch_size=5))
    np.testing.assert_array_equal(read_trajectories(out).fields["u"], reference.fields["u"])


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(SciMLError, match="positive integer"):
        simulate_dataset(DecayingModes(), 0, tmp_path / "e.nc")
