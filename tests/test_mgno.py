"""MgNO: shapes and gradients in 1-3 D, linearity of the V-cycle, periodic equivariance,
resolution independence, input checks, and that it learns a nonlocal smoothing operator."""

import json

import pytest
import torch

from sciml.errors import SciMLError
from sciml.models import build_model
from sciml.models.mgno import MgNO, MultigridVCycle, max_levels


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def assert_all_gradients(model):
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())


@pytest.mark.parametrize(
    "dim, grid, options",
    [
        (1, (37,), {}),
        (1, (47,), {"levels": 3, "smoothing": [[1, 0], [1, 0], [2, 0]]}),
        (2, (33, 20), {"padding": "reflect"}),
        (2, (33, 47), {"levels": 3, "padding": "periodic"}),
        (3, (9, 8, 11), {"padding": "periodic"}),
        (3, (8, 10, 9), {"levels": 2, "smoothing": [2, 1]}),
    ],
)
def test_forward_backward_shapes(dim, grid, options):
    torch.manual_seed(0)
    model = MgNO(in_channels=2, out_channels=3, dim=dim, width=4, n_layers=3, **options)
    out = model(torch.randn(2, 2, *grid))
    assert out.shape == (2, 3, *grid) and bool(torch.isfinite(out).all())
    out.square().mean().backward()
    assert_all_gradients(model)


def test_single_layer_maps_inputs_to_outputs_without_activation():
    torch.manual_seed(0)
    model = MgNO(in_channels=1, out_channels=2, width=8, n_layers=1, levels=2).double()
    x = torch.randn(3, 1, 12, 12, dtype=torch.float64)
    # with one layer the model is affine in x (no activation after the last layer)
    affine = model(2.0 * x) - 2.0 * model(x) + model(torch.zeros_like(x))
    torch.testing.assert_close(affine, torch.zeros_like(affine), rtol=0, atol=1e-12)


@pytest.mark.parametrize("levels", [None, 3])
@pytest.mark.parametrize("padding", ["zero", "periodic", "reflect"])
def test_vcycle_is_linear(levels, padding):
    torch.manual_seed(1)
    vcycle = MultigridVCycle(3, 5, dim=2, levels=levels, smoothing=[2, 1], padding=padding).double()
    x, y = torch.randn(2, 2, 3, 29, 32, dtype=torch.float64)
    a, b = 0.7, -1.9
    lhs = vcycle(a * x + b * y)
    rhs = a * vcycle(x) + b * vcycle(y)
    assert lhs.shape == (2, 5, 29, 32)
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
    assert float(lhs.detach().abs().max()) > 1e-3  # not trivially zero


@pytest.mark.parametrize("levels", [None, 3])
def test_periodic_padding_is_translation_equivariant(levels):
    torch.manual_seed(2)
    model = MgNO(in_channels=2, out_channels=1, width=6, n_layers=3, levels=levels, padding="periodic").double()
    x = torch.randn(2, 2, 32, 32, dtype=torch.float64)
    depth = max_levels((32, 32)) if levels is None else levels
    shift = (2 ** depth, -3 * 2 ** depth)
    with torch.no_grad():
        shifted_out = model(torch.roll(x, shift, dims=(2, 3)))
        out_shifted = torch.roll(model(x), shift, dims=(2, 3))
    torch.testing.assert_close(shifted_out, out_shifted, rtol=1e-12, atol=1e-12)

    # the same check detects boundaries: zero padding breaks the symmetry
    zero = MgNO(in_channels=2, out_channels=1, width=6, n_layers=3, levels=levels, padding="zero").double()
    with torch.no_grad():
        gap = (zero(torch.roll(x, shift, dims=(2, 3))) - torch.roll(zero(x), shift, dims=(2, 3))).abs().max()
    assert float(gap) > 1e-4


@pytest.mark.parametrize("levels", [None, 3])
def test_same_weights_on_two_resolutions(levels):
    torch.manual_seed(3)
    model = MgNO(in_channels=1, out_channels=1, width=4, n_layers=2, levels=levels)
    with torch.no_grad():
        coarse = model(torch.randn(2, 1, 32, 32))
        fine = model(torch.randn(2, 1, 64, 64))
    assert coarse.shape == (2, 1, 32, 32) and fine.shape == (2, 1, 64, 64)
    assert bool(torch.isfinite(coarse).all()) and bool(torch.isfinite(fine).all())


def test_level_count_and_check_input():
    assert [max_levels((n,)) for n in (3, 4, 7, 8, 15, 16, 33, 64, 65)] == [0, 1, 2, 2, 3, 3, 4, 5, 5]
    assert max_levels((64, 20, 40)) == 3

    model = MgNO(in_channels=1, out_channels=1, width=4, n_layers=2, levels=5)
    with pytest.raises(SciMLError, match=r"grid \[8, 8\] is too coarse for model.levels=5: "
                                         r"use resolution >= 49 or set model.levels <= 2$"):
        model.check_input((8, 8))
    with pytest.raises(SciMLError, match="too coarse for model.levels=5"):
        model(torch.zeros(1, 1, 64, 40))
    model.check_input((49, 49))
    with pytest.raises(SciMLError, match=r"grid \[3, 16\] is too small for MgNO: use resolution >= 4"):
        MgNO(in_channels=1, out_channels=1).check_input((3, 16))
    with pytest.raises(SciMLError, match="1-D"):
        model.check_input((64,))
    with pytest.raises(SciMLError, match=r"grid \[8, 8\] is too coarse for a 3-level V-cycle"):
        MultigridVCycle(1, 1, dim=2, levels=3)(torch.zeros(1, 1, 8, 8))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"padding": "dirichlet"}, r"model.padding = 'dirichlet' is not supported; choose one of \['zero', 'periodic', 'reflect'\]"),
        ({"activation": "swish"}, "model.activation"),
        ({"levels": 0}, "model.levels must be a positive integer"),
        ({"dim": 4}, "model.dim = 4 is not supported"),
        ({"smoothing": [0, 0]}, "has no smoothing step"),
        ({"smoothing": [1]}, r"not a \[pre, post\] pair"),
        ({"smoothing": [[1, 0], [1, 1]]}, "set model.levels to the number of pairs"),
        ({"levels": 3, "smoothing": [[1, 0], [1, 1]]}, "2 per-level pairs but model.levels = 3"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(SciMLError, match=message):
        build_model("mgno", in_channels=1, out_channels=1, **options)


def test_config_rebuilds_the_same_architecture():
    model = build_model("mgno", in_channels=2, out_channels=1, width=4, n_layers=3, levels=3,
                        smoothing=[[1, 0], [1, 0], [2, 0]], padding="reflect")
    config = json.loads(json.dumps(model.config))
    assert config["smoothing"] == [[1, 0], [1, 0], [2, 0]] and config["levels"] == 3 and config["dim"] == 2
    twin = build_model("mgno", **config)
    twin.load_state_dict(model.state_dict())
    x = torch.randn(1, 2, 20, 24)
    with torch.no_grad():
        torch.testing.assert_close(twin(x), model(x), rtol=0, atol=0)
    assert MgNO(in_channels=1, out_channels=1).config["smoothing"] == [1, 1]


def poisson_pairs(n_samples: int, size: int, seed: int):
    """White-noise fields and their periodic smoothing ``(1 - Laplacian)^-1`` (integer wavenumbers)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_samples, 1, size, size, generator=g)
    k = torch.fft.fftfreq(size, d=1.0 / size)
    symbol = 1.0 + k[:, None] ** 2 + k[None, :] ** 2
    return x, torch.fft.ifft2(torch.fft.fft2(x) / symbol).real


def test_learns_poisson_smoothing():
    x, y = poisson_pairs(32, 16, seed=0)
    torch.manual_seed(0)
    model = MgNO(in_channels=1, out_channels=1, width=8, n_layers=2, smoothing=[1, 0], padding="periodic")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def relative_l2():
        return ((model(x) - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()

    with torch.no_grad():
        start = float(relative_l2())
    for _ in range(200):
        optimizer.zero_grad()
        loss = relative_l2()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        end = float(relative_l2())
    # the best pointwise map y ~ c x has relative error about 0.87: the learned map is nonlocal
    assert end < start / 3 and end < 0.3, (start, end)


# Small configuration for the registry conformance test (16 x 16 grid, 2 -> 3 channels).
SMALL_CONFIG = {"width": 8, "n_layers": 2}
