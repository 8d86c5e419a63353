"""What every benchmark suite shares: a trial in its own interpreter, and the machine record.

A trial runs as ``python -m MODULE --trial SPEC.json`` so its peak resident memory is its
own; the module's ``main`` answers ``--trial`` by calling its trial function on the spec
and writing the rows to ``spec["rows_out"]`` (:func:`answer_trial`).

Examples
--------
>>> from sciml.bench_trials import machine_info
>>> info = machine_info()
>>> info["device"], info["cpus"] > 0
('cpu', True)
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from sciml.atomic import atomic_write_json
from sciml.errors import SciMLError


def run_in_child(module: str, spec: dict, label: str) -> list[dict]:
    """The rows of ``python -m module --trial SPEC`` for ``spec``; a failed trial raises naming ``label``."""
    with tempfile.TemporaryDirectory() as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "rows.json"
        spec_path.write_text(json.dumps({**spec, "rows_out": str(out_path)}))
        done = subprocess.run([sys.executable, "-m", module, "--trial", str(spec_path)], capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise SciMLError(f"benchmark trial {label} failed: {tail}")
        return json.loads(out_path.read_text())


def answer_trial(spec_path, trial) -> None:
    """The child side of :func:`run_in_child`: run ``trial(spec)`` and write its rows atomically."""
    spec = json.loads(Path(spec_path).read_text())
    atomic_write_json(spec["rows_out"], trial(spec))


def machine_info(device=None) -> dict:
    """Platform, CPUs, Python and library versions, thread settings and the device of this run."""
    import numpy
    import torch

    device = torch.device("cpu" if device is None else device)
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "numpy": numpy.__version__, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "blas_threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")},
            "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
