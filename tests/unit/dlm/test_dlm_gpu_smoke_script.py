"""bench/gpu_dlm_smoke.sh, the script a lent GPU runs: valid bash, and a clear refusal of a folder that is not a
checkpoint (a full CPU run with the tiny model it builds takes about a minute, so it is left to the script itself)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "gpu_dlm_smoke.sh"


def test_the_script_is_valid_bash():
    done = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = SCRIPT.read_text()
    assert '"$acc" launch --num_processes "$n"' in text  # the 2-GPU runs go through accelerate launch
    assert "peak_mem_gb" in text and "diffu_grpo" in text and "dtrpo" in text


def test_a_folder_without_a_checkpoint_is_refused(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "ACCELERATE": str(Path(sys.executable).parent / "accelerate")}
    done = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("gpu_dlm_smoke: no checkpoint at") and str(tmp_path) in done.stderr
