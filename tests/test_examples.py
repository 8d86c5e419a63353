"""The examples run as a user would run them, so they cannot rot."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, *args, cwd):
    done = subprocess.run([sys.executable, str(EXAMPLES / name), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_pipeline_example(tmp_path):
    stdout = run_example("darcy_fno_pipeline.py", "--out", tmp_path / "run", "--quick", cwd=tmp_path)
    assert "test relative L2" in stdout
    assert (tmp_path / "run" / "run" / "checkpoints" / "best.pt").exists()


def test_xarray_example(tmp_path, darcy_file):
    stdout = run_example("read_dataset_with_xarray.py", darcy_file, "--out", tmp_path / "s.png", cwd=tmp_path)
    assert "true relative residual" in stdout and (tmp_path / "s.png").stat().st_size > 1000
