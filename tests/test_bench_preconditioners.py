"""The DCDM benchmark's network: trained, fine-tuned stage by stage on its own residuals, cached."""

import torch

from sciml.bench_preconditioners import trained_network

TINY_TRAINING = {"steps": 3, "batch_size": 4, "n_ritz": 16, "n_layouts": 2, "lr": 2e-3, "levels": 0,
                 "loss": "energy", "low_fraction": 0.0}
TINY_STAGE = {"layouts": ((1, 2),), "seed": 1, "rhs_seed": 5, "steps": 2, "lr": 5e-4, "rounds": 1}


def test_network_is_fine_tuned_and_every_stage_cached(tmp_path):
    base = trained_network(2, 8, TINY_TRAINING, str(tmp_path), "cpu")
    tuned = trained_network(2, 8, TINY_TRAINING, str(tmp_path), "cpu", (TINY_STAGE,))
    cached = sorted(path.name for path in tmp_path.glob("*.pt"))
    assert len(cached) == 2 and "_ft1-" in cached[1]  # the base net, then the stage trained from it
    moved = [not torch.equal(a, b) for a, b in zip(base.state_dict().values(), tuned.state_dict().values())]
    assert any(moved)  # the stage took optimiser steps
    again = trained_network(2, 8, TINY_TRAINING, str(tmp_path), "cpu", (TINY_STAGE,))  # from the cache
    assert all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(), again.state_dict().values()))
    other = dict(TINY_STAGE, steps=3)  # another stage is another cache entry, never the old one
    trained_network(2, 8, TINY_TRAINING, str(tmp_path), "cpu", (other,))
    assert len(list(tmp_path.glob("*.pt"))) == 3
