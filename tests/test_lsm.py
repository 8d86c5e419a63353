"""The Latent Spectral Model: shapes on any grid, the spectral transition, patch locality, learning."""

import math

import pytest
import torch

from sciml.errors import SciMLError
from sciml.models import build_model
from sciml.models.lsm import LSM, NeuralSpectralBlock, SpectralTransition


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(**overrides):
    torch.manual_seed(0)
    return build_model("lsm", **{"in_channels": 2, "out_channels": 3, "dim": 2, **SMALL_CONFIG, **overrides})


@pytest.mark.parametrize("grid", [(16, 16), (27, 31), (12, 40)])
def test_shapes_and_every_parameter_trains(grid):
    model = small()
    out = model(torch.randn(2, 2, *grid))
    assert out.shape == (2, 3, *grid)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(torch.isfinite(p.grad).all()), name
        assert float(p.grad.abs().sum()) > 0, f"{name} gets a zero gradient"


@pytest.mark.parametrize("dim, grid", [(1, (37,)), (3, (9, 8, 7))])
def test_other_dimensions(dim, grid):
    model = small(dim=dim, patch_size=3)
    assert model(torch.randn(2, 2, *grid)).shape == (2, 3, *grid)


def test_resolution_change():
    model = small().eval()
    with torch.no_grad():
        for n in (32, 64):
            out = model(torch.randn(2, 2, n, n))
            assert out.shape == (2, 3, n, n) and bool(torch.isfinite(out).all())


def test_spectral_transition_is_the_trigonometric_series():
    K, channels = 5, 3
    step = SpectralTransition(channels, K).double()
    tokens = torch.randn(4, 2, channels, dtype=torch.float64) * 3
    assert step.cos_weight.shape == (channels, K) and step.sin_weight.shape == (channels, K - 1)
    with torch.no_grad():
        step.cos_weight.zero_()
        step.sin_weight.zero_()
    torch.testing.assert_close(step.basis_operator(tokens), torch.zeros_like(tokens), rtol=0, atol=0)
    torch.testing.assert_close(step(tokens), tokens, rtol=0, atol=0)

    with torch.no_grad():
        step.cos_weight[1, 2] = 0.7  # 0.7 cos(2 pi T / K) on channel 1
        step.sin_weight[2, 0] = -1.5  # -1.5 sin(pi T / K) on channel 2 (sines start at k = 1)
        step.cos_weight[0, 0] = 0.25  # constant term on channel 0
    expected = torch.stack([
        torch.full_like(tokens[..., 0], 0.25),
        0.7 * torch.cos(2 * math.pi * tokens[..., 1] / K),
        -1.5 * torch.sin(math.pi * tokens[..., 2] / K),
    ], dim=-1)
    torch.testing.assert_close(step.basis_operator(tokens), expected)
    torch.testing.assert_close(step(tokens), tokens + expected)


@pytest.mark.parametrize("grid, patch, pixel, region", [
    ((8, 12), (4, 4), (5, 9), (slice(4, 8), slice(8, 12))),
    ((9, 6), (4, 4), (4, 1), (slice(3, 6), slice(0, 3))),  # padded: 3 x 2 patches of 3 x 3
    ((4, 4, 6), (2, 2, 3), (0, 3, 4), (slice(0, 2), slice(2, 4), slice(3, 6))),
])
def test_spectral_block_acts_patchwise(grid, patch, pixel, region):
    torch.manual_seed(1)
    block = NeuralSpectralBlock(len(grid), channels=4, num_basis=3, num_token=2, n_heads=2, patch_size=patch).double()
    x = torch.randn(2, 4, *grid, dtype=torch.float64)
    bumped = x.clone()
    bumped[(0, slice(None), *pixel)] += 1.0
    with torch.no_grad():
        change = (block(bumped) - block(x)).abs().sum(dim=1)
    inside = torch.zeros(grid, dtype=torch.bool)
    inside[region] = True
    assert bool((change[0][inside] > 0).all()), "every pixel of the bumped patch should change"
    assert float(change[0][~inside].abs().max()) == 0.0 and float(change[1].abs().max()) == 0.0


def test_patch_shape_shrinks_to_fit():
    block = NeuralSpectralBlock(2, channels=4, num_basis=3, num_token=2, n_heads=2, patch_size=(4, 6))
    assert block.patch_shape((16, 12)) == (4, 6)
    assert block.patch_shape((27, 13)) == (4, 5)  # 7 patches of 4 (pad 1); 3 patches of 5 (pad 2)
    assert block.patch_shape((2, 5)) == (2, 5)  # a coarse map is one patch


def test_config_and_registry():
    model = small()
    assert isinstance(model, LSM) and model.name == "lsm"
    assert model.config["patch_size"] == [4, 4] and model.n_scales == 3
    assert build_model("lsm", **model.config).n_parameters == model.n_parameters
    channels = [b.transition.cos_weight.shape[0] for b in model.spectral]
    assert channels == [8, 16, 16]  # width * 2**l, the bottom keeps the level above's channels


def test_bad_input_and_options():
    model = small()
    with pytest.raises(SciMLError, match=r"resolution 3 \(axis 1\) is too small for n_scales 3: use resolution >= 4 or set model.n_scales <= 2"):
        model.check_input((16, 3))
    model.check_input((4, 4))
    with pytest.raises(SciMLError, match="n_scales"):
        model(torch.randn(1, 2, 16, 2))
    with pytest.raises(SciMLError, match="batch size >= 2"):
        model(torch.randn(1, 2, 4, 5))
    model.eval()
    assert model(torch.randn(1, 2, 4, 5)).shape == (1, 3, 4, 5)
    with pytest.raises(SciMLError, match="not divisible by model.n_heads"):
        small(width=6, n_heads=4)
    with pytest.raises(SciMLError, match="does not match model.dim"):
        small(patch_size=[4, 4, 4])
    with pytest.raises(SciMLError, match="1-, 2- or 3-D"):
        small(dim=4)
    with pytest.raises(SciMLError, match="num_basis must be a positive integer"):
        small(num_basis=0)


def _smoothing_task(n_samples=32, res=16):
    """Random fields (modes |k| <= 6) and their low-pass projections (|k_x|, |k_y| <= 2)."""
    g = torch.Generator().manual_seed(0)
    k = torch.fft.fftfreq(res) * res
    kx, ky = k[:, None], k[None, :]
    noise = torch.randn(n_samples, 1, res, res, generator=g)
    field = torch.fft.ifft2(torch.fft.fft2(noise) * (kx**2 + ky**2 <= 36)).real
    smooth = torch.fft.ifft2(torch.fft.fft2(field) * ((kx.abs() <= 2) & (ky.abs() <= 2))).real
    return field, smooth


def test_learns_smoothing():
    x, y = _smoothing_task()
    torch.manual_seed(0)
    model = LSM(1, 1, **SMALL_CONFIG)

    def rel_l2():
        model.eval()
        with torch.no_grad():
            err = ((model(x) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
        model.train()
        return float(err)

    before = rel_l2()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        loss = ((model(x) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
        loss.backward()
        opt.step()
    after = rel_l2()
    assert after < before / 3, (before, after)


SMALL_CONFIG = {"width": 8, "n_scales": 3, "num_token": 2, "num_basis": 4, "patch_size": 4, "n_heads": 2,
                "projection_channels": 16}
