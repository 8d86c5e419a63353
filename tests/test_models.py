"""Conformance of every registered model to the GridModel contract."""

import pytest
import torch

from sciml.checkpoint import model_payload, save_checkpoint, load_model
from sciml.errors import SciMLError, UnknownNameError
from sciml.models import FNO, MODELS, build_model, list_models
from sciml.normalization import ChannelNormalizer, Normalizers

# A small configuration per registered model (2-D, resolves a 16 x 16 grid, rejects 2 x 2).
SMALL = {
    "dcdm-net": {"width": 4, "fine_blocks": 1, "coarse_blocks": 1},
    "deeponet": {"branch": "cnn", "width": 8, "depth": 2, "n_basis": 8},
    "fno": {"n_modes": 4, "width": 8, "n_layers": 2},
    "mgno": {"width": 8, "n_layers": 2},
    "lsm": {"width": 8, "n_scales": 3, "num_token": 2, "num_basis": 4, "patch_size": 4, "n_heads": 2,
            "projection_channels": 16},
    "sfno": {"modes_space": 4, "modes_time": 2, "width": 8, "n_layers": 2},
    "sinenet": {"waves": 2, "width": 4, "levels": 2},
    "unet": {"width": 4, "levels": 2},
}

OUT_CHANNELS = {"dcdm-net": 1}
"""Models with a fixed number of outputs (DCDM's network maps a residual to one direction)."""


@pytest.mark.parametrize("name", MODELS.names())
def test_model_conformance(name, tmp_path):
    assert name in SMALL, f"add a small test configuration for model {name!r} to SMALL"
    torch.manual_seed(0)
    c_out = OUT_CHANNELS.get(name, 3)
    model = build_model(name, in_channels=2, out_channels=c_out, dim=2, **SMALL[name])
    assert model.name == name and model.config["in_channels"] == 2 and model.config["out_channels"] == c_out

    x = torch.randn(4, 2, 16, 16)
    out = model(x)
    assert out.shape == (4, c_out, 16, 16) and out.dtype == torch.float32
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert not no_grad, f"parameters without gradient: {no_grad}"
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())

    # the checkpoint rebuilds the same function from config + state
    norms = Normalizers(ChannelNormalizer([0.0, 0.0], [1.0, 1.0]), ChannelNormalizer([0.0] * c_out, [1.0] * c_out))
    outputs = ["u", "v", "w"][:c_out]
    path = save_checkpoint(tmp_path / "m.pt", model_payload(model, norms, ["a", "b"], outputs, (16, 16), (1 / 16, 1 / 16)))
    loaded, _, meta = load_model(path)
    assert meta["model_config"] == model.config
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)

        if model.supports_resolution_change:
            assert loaded(torch.randn(2, 2, 24, 20)).shape == (2, c_out, 24, 20)

    with pytest.raises(SciMLError, match="too small"):
        model.check_input((2, 2))
    with pytest.raises(SciMLError, match="1-D"):
        model.check_input((16,))
    with pytest.raises(SciMLError, match="expects input of shape"):
        model(torch.randn(1, 5, 16, 16))


def test_fno_options():
    assert list_models() == MODELS.names() and "fno" in list_models()
    model = FNO(in_channels=1, out_channels=1, n_modes=[6, 4, 4], width=4, n_layers=1)
    assert model.dim == 3 and model.config["n_modes"] == [6, 4, 4]
    assert model(torch.randn(1, 1, 6, 8, 4)).shape == (1, 1, 6, 8, 4)
    with pytest.raises(SciMLError, match=r"resolution 5 \(axis 0\) is too small for n_modes 6: use resolution >= 6 or set model.n_modes <= 5"):
        model.check_input((5, 8, 8))
    with pytest.raises(SciMLError, match="does not match model.dim"):
        FNO(in_channels=1, out_channels=1, n_modes=[4, 4], dim=3)
    with pytest.raises(SciMLError, match="has no option"):
        build_model("fno", in_channels=1, out_channels=1, modes=4)
    with pytest.raises(SciMLError, match="positional_embedding"):
        build_model("fno", in_channels=1, out_channels=1, positional_embedding="sine")
    with pytest.raises(UnknownNameError, match="choose one of: dcdm-net, deeponet, fno"):
        build_model("resnet", in_channels=1, out_channels=1)
