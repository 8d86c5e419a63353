"""SFNO (spatio-temporal FNO) and its dimension-generic spectral convolution."""

import math

import pytest
import torch

from sciml.errors import SciMLError
from sciml.models import build_model
from sciml.models.sfno import SFNO, SpectralConv

SMALL = {"modes_space": 4, "modes_time": 2, "width": 8, "n_layers": 2}


@pytest.mark.parametrize("t_in, t_out, latent", [(3, 7, None), (6, 2, None), (1, 5, 4), (4, 4, 6)])
def test_any_number_of_input_and_output_frames(t_in, t_out, latent, one_torch_thread):
    torch.manual_seed(0)
    model = SFNO(in_channels=t_in, out_channels=t_out, latent_steps=latent, **SMALL)
    out = model(torch.randn(2, t_in, 16, 12))
    assert out.shape == (2, t_out, 16, 12) and bool(torch.isfinite(out).all())
    # time modes are capped by the frequencies each layer sees, from the configuration alone
    t_lat = model.config["latent_steps"]
    assert model.config["latent_steps"] == (t_in if latent is None else latent)
    assert model.lift_spectral.modes[-1] == min(2, t_in // 2 + 1, t_lat // 2 + 1)
    assert model.final_spectral.modes[-1] == min(2, t_lat + 1, t_out + 1)


def test_one_and_three_space_dimensions(one_torch_thread):
    torch.manual_seed(0)
    assert SFNO(in_channels=2, out_channels=3, dim=1, **SMALL)(torch.randn(2, 2, 20)).shape == (2, 3, 20)
    model = SFNO(in_channels=2, out_channels=1, dim=3, modes_space=2, modes_time=1, width=4, n_layers=1)
    assert model(torch.randn(1, 2, 4, 6, 4)).shape == (1, 1, 4, 6, 4)


def band_limited(batch, frames, n, k_max, seed):
    """Random real fields on an n x n grid with frequencies |k| < k_max on each axis."""
    g = torch.Generator().manual_seed(seed)
    coef = torch.zeros(batch, frames, n, n // 2 + 1, dtype=torch.complex128)
    rows = list(range(k_max)) + list(range(n - k_max + 1, n))
    coef[:, :, rows, :k_max] = torch.randn(batch, frames, len(rows), k_max, dtype=torch.complex128, generator=g)
    return torch.fft.irfft2(coef, s=(n, n), norm="forward")


def test_zero_shot_resolution_change(one_torch_thread):
    torch.manual_seed(0)
    model = SFNO(in_channels=3, out_channels=4, **SMALL).double().eval()
    coarse = band_limited(2, 3, 16, 4, seed=1)
    fine = torch.fft.irfft2(torch.fft.rfft2(coarse, norm="forward"), s=(64, 64), norm="forward")  # same field
    torch.testing.assert_close(fine[..., ::4, ::4], coarse, rtol=0, atol=1e-12)
    with torch.no_grad():
        correction_coarse = model(coarse) - coarse[:, -1:]
        correction_fine = model(fine) - fine[:, -1:]
    assert correction_fine.shape == (2, 4, 64, 64)
    # the same trajectory on a 4x finer grid gives the same prediction at the shared points, up to
    # what the pointwise nonlinearities alias differently on each grid (about 1e-3 here)
    rel = (correction_fine[..., ::4, ::4] - correction_coarse).norm() / correction_coarse.norm()
    assert rel < 1e-2


def test_output_adds_the_last_input_frame(one_torch_thread):
    torch.manual_seed(0)
    model = SFNO(in_channels=3, out_channels=5, **SMALL)
    with torch.no_grad():
        model.final_spectral.weight.zero_()
        model.final_spectral.bias.zero_()
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(model(x), x[:, -1:].expand(-1, 5, -1, -1), rtol=0, atol=0)


def test_rebuilt_final_layer_keeps_the_output(one_torch_thread):
    torch.manual_seed(0)
    model = SFNO(in_channels=3, out_channels=4, **SMALL).double().eval()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    with torch.no_grad():
        model.final_spectral.bias.normal_()  # a trained-looking bias must be carried over too
        reference = model(x)
        v, out_sizes = model.final_layer_input(x)
        layer = model.final_spectral_layer()
        full = SpectralConv.full_modes(v.shape[-3:], out_sizes)
        assert full == (8, 8, 4) and layer.modes == (4, 4, 2)
        for batch_size in (None, 2):
            big = layer.rebuilt(full, batch_size=batch_size)
            assert big.modes == full and big.weight.dtype == torch.float64
            torch.testing.assert_close(model.final_layer_output(x, big(v, out_sizes)), reference, rtol=0, atol=1e-14)
    with pytest.raises(SciMLError, match="each at least the trained one"):
        layer.rebuilt((2, 8, 5))


def test_spectral_conv_resamples_band_limited_signals():
    # identity weights: the layer returns the trigonometric interpolant on the new grid
    torch.manual_seed(0)
    conv = SpectralConv(1, 1, modes=[6, 4]).double()
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[..., 0] = 1.0
    x = torch.arange(12, dtype=torch.float64) / 12
    signal = lambda n: (torch.sin(2 * math.pi * 3 * x)[:, None]  # noqa: E731
                        * (1 + torch.cos(2 * math.pi * torch.arange(n, dtype=torch.float64) / n))[None])
    out = conv(signal(8)[None, None], out_sizes=(12, 20))
    torch.testing.assert_close(out[0, 0], signal(20), rtol=0, atol=1e-13)
    with pytest.raises(SciMLError, match="too small"):
        conv(torch.randn(1, 1, 10, 8, dtype=torch.float64))


def test_bad_input_is_one_line():
    model = SFNO(in_channels=4, out_channels=2, **SMALL)
    with pytest.raises(SciMLError, match=r"the trajectory has 3 frames, fewer than the 4-frame input window") as err:
        model(torch.randn(1, 3, 16, 16))
    assert "\n" not in str(err.value)
    with pytest.raises(SciMLError, match="expects input of shape"):
        model(torch.randn(1, 6, 16, 16))
    with pytest.raises(SciMLError, match=r"resolution 6 \(axis 1\) is too small for modes_space 4"):
        model.check_input((16, 6))
    with pytest.raises(SciMLError, match="time_frequencies"):
        SFNO(in_channels=1, out_channels=1, time_frequencies=-1)
    with pytest.raises(SciMLError, match="has no option"):
        build_model("sfno", in_channels=1, out_channels=1, modes=4)


def test_config_rebuilds_the_same_model(one_torch_thread):
    torch.manual_seed(0)
    model = build_model("sfno", in_channels=2, out_channels=3, **SMALL)
    copy = build_model("sfno", **model.config)
    copy.load_state_dict(model.state_dict())
    x = torch.randn(1, 2, 16, 16)
    torch.testing.assert_close(copy(x), model(x), rtol=0, atol=0)
