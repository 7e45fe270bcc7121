"""The shipped accelerate launch configs parse with accelerate's own loader, and :class:`thrifty.dlm.launch.Launch`
does its collective jobs (flat gradient averaging, an agreed stop, a mean) the same way on one process and on two
(CPU, gloo), always through an Accelerator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = ROOT / "configs" / "accelerate"
EXPECTED = {"ddp.yaml": ("MULTI_GPU", None), "fsdp.yaml": ("FSDP", None), "deepspeed_zero2.yaml": ("DEEPSPEED", 2),
            "deepspeed_zero3.yaml": ("DEEPSPEED", 3)}


def test_the_shipped_configs_are_exactly_the_expected_ones():
    assert {p.name for p in CONFIGS.glob("*.yaml")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_accelerate_config_parses_and_names_its_distributed_type(name):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(CONFIGS / name))  # accelerate rejects unknown keys
    kind, zero_stage = EXPECTED[name]
    assert cfg.distributed_type.value == kind and cfg.num_machines == 1 and cfg.num_processes >= 2
    assert cfg.deepspeed_config.get("zero_stage") == zero_stage
    if kind == "FSDP":
        assert cfg.fsdp_config["fsdp_sharding_strategy"] == "FULL_SHARD"
    assert (CONFIGS / name).read_text().startswith("#")  # each says what it is for


def test_one_process_has_an_accelerator_and_plain_semantics():
    from thrifty.dlm.launch import Launch

    launch = Launch()
    assert launch.acc is not None and (launch.rank, launch.world, launch.is_main) == (0, 1, True)
    assert launch.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert launch.agree(True) and not launch.agree(False) and launch.local_generator(0, 1) is None
    assert launch.mean(torch.tensor(2.5)) == 2.5 and launch.rows(6) == slice(0, 6)
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    launch.average_grads([p])
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0, 3.0]))
    assert launch.wrap(torch.nn.Linear(2, 2)).__class__ is torch.nn.Linear  # no DDP wrapper on one process
    if launch.device.type == "cpu":
        assert launch.peak_memory_gb() == {}  # CUDA only
    else:
        assert launch.peak_memory_gb()["peak_mem_gb"] >= 0


SCRIPT = '''
import sys
from pathlib import Path

import torch
from thrifty.dlm.launch import Launch

launch = Launch()
r = launch.rank
a, b, c = (torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2, dtype=torch.float64)),
           torch.nn.Parameter(torch.zeros(1)))
a.grad = torch.full((3,), float(r))
b.grad = torch.arange(4, dtype=torch.float64).reshape(2, 2) * (r + 1)
launch.average_grads([a, b, c])  # two dtypes, one parameter without a gradient
assert c.grad is None
assert torch.equal(a.grad, torch.full((3,), 0.5)), a.grad
assert torch.equal(b.grad, torch.arange(4, dtype=torch.float64).reshape(2, 2) * 1.5), b.grad
assert launch.agree(r == 1) and not launch.agree(False)
assert launch.mean(torch.tensor(float(r))) == 0.5
assert launch.rows(4) == slice(2 * r, 2 * r + 2)
wrapped = launch.wrap(torch.nn.Linear(2, 1))
assert type(wrapped).__name__ == "DistributedDataParallel"
# one file per process: two processes printing to one pipe can interleave their words
Path(sys.argv[1], f"rank{r}.txt").write_text(f"ok {r} {launch.world} {launch.device.type}")
'''


def test_two_processes_average_gradients_agree_and_wrap_for_ddp(tmp_path):
    """Two real processes (torchrun; `accelerate launch --cpu` alone would start one)."""
    script = tmp_path / "launch_check.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(f.read_text() for f in tmp_path.glob("rank*.txt")) == ["ok 0 2 cpu", "ok 1 2 cpu"]


def test_sft_on_two_real_processes_follows_the_single_process_run(tmp_path):
    """torchrun starts two processes (`accelerate launch --cpu` alone starts one): DDP averages the gradients of
    each half of the global batch, so the weights match the one-process run up to rounding."""
    import json

    from safetensors.torch import load_file

    from thrifty.dlm.sft import DlmSFTConfig, train_sft

    cfg = {"d_model": 16, "n_layers": 1, "n_heads": 2, "d_ff": 32, "n_train": 60, "n_eval": 4, "batch_size": 8,
           "eval_every": 2, "steps": 4, "checkpoint_every": 2}
    train_sft(DlmSFTConfig(run_dir=str(tmp_path / "one"), **cfg), progress=False)
    sets = [a for k, v in cfg.items() for a in ("--set", f"{k}={v}")]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           "-m", "thrifty.cli.main", "dlm", "train-sft", "--run-dir", str(tmp_path / "two"), *sets],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    a, b = (load_file(str(tmp_path / r / "checkpoint" / "model.safetensors")) for r in ("one", "two"))
    assert done.stdout.count("model at step 4") == 2  # both processes ran to the end
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    ra, rb = ((tmp_path / r / "metrics.jsonl").read_text().splitlines() for r in ("one", "two"))
    assert [json.loads(ln)["step"] for ln in rb] == [1, 2, 3, 4]
    assert [json.loads(ln)["loss"] for ln in rb] == pytest.approx([json.loads(ln)["loss"] for ln in ra], rel=1e-5)
