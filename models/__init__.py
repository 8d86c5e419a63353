"""Neural operators on regular grids, registered by name.

Every model is a :class:`GridModel`: ``(B, C_in, *grid) -> (B, C_out, *grid)``, rebuilt
from its JSON ``config`` with :func:`build_model`.

Examples
--------
>>> from sciml.models import build_model, list_models
>>> list_models()
['dcdm-net', 'deeponet', 'fno', 'lsm', 'mgno', 'sfno', 'sinenet', 'unet']
>>> build_model("fno", in_channels=1, out_channels=1, n_modes=4, width=8).name
'fno'
"""

from sciml.models.base import MODELS, GridModel, build_model, list_models
from sciml.models.dcdm_net import DCDMNet
from sciml.models.deeponet import DeepONet
from sciml.models.fno import FNO
from sciml.models.lsm import LSM
from sciml.models.mgno import MgNO
from sciml.models.sfno import SFNO
from sciml.models.sinenet import SineNet
from sciml.models.unet import UNet

__all__ = ["GridModel", "MODELS", "build_model", "list_models", "DCDMNet", "DeepONet", "FNO", "LSM", "MgNO", "SFNO", "SineNet", "UNet"]
