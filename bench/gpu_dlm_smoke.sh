#!/usr/bin/env bash
# `dlm rl --hf-model` on a lent GPU, SFT-free: a few steps of diffu-GRPO and dTRPO (LoRA) on one GPU, then on two
# through `accelerate launch --num_processes 2` (skipped with fewer than two GPUs), each printed as steps/s, peak GPU
# memory (metrics.jsonl's peak_mem_gb) and the training reward per update.
#
#   bash bench/gpu_dlm_smoke.sh [MODEL_DIR]     a local LLaDA / Dream checkpoint (a folder with config.json); without
#                                               one, a tiny random BERT masked LM is built here (plumbing only)
#   env: STEPS (optimiser steps, 4), GEN_LEN (answer tokens: 64 for a checkpoint, 4 for the tiny model), GROUP (8),
#        PROMPTS (prompts per step, 4), LORA_R (16), GC (1: gradient checkpointing), PYTHON (python3),
#        ACCELERATE (accelerate). Runs without a GPU too (CPU, one process), e.g. to check the script itself.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
acc="${ACCELERATE:-accelerate}"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
steps="${STEPS:-4}"
model="${1:-}"
if [[ -n "$model" && ! -f "$model/config.json" ]]; then
  echo "gpu_dlm_smoke: no checkpoint at '$model': pass a local LLaDA/Dream folder with config.json" >&2
  exit 2
fi

"$py" -c 'import torch, transformers, peft, accelerate
print(f"torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, accelerate",
      accelerate.__version__, "|", torch.cuda.device_count(), "GPU(s):",
      torch.cuda.get_device_name() if torch.cuda.is_available() else "none (CPU run)")'
gpus="$("$py" -c 'import torch; print(torch.cuda.device_count())')"

if [[ -n "$model" ]]; then
  gen_len="${GEN_LEN:-64}"
  # arithmetic prompts with their answers, and a reward that looks for the answer in the completion
  "$py" - "$work" <<'EOF'
import json, random, sys
from pathlib import Path
out, rng = Path(sys.argv[1]), random.Random(0)
rows = []
for _ in range(64):
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    rows.append({"prompt": f"What is {a} + {b}? Reply with the number only.", "answer": str(a + b)})
(out / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
(out / "rewards.py").write_text(
    "def has_answer(prompts, completions, answer, **_):\n"
    "    return [float(a in c.split()) for c, a in zip(completions, answer)]\n")
EOF
  reward="$work/rewards.py:has_answer"
else
  model="$work/tiny_model"
  gen_len="${GEN_LEN:-4}"
  echo "gpu_dlm_smoke: no checkpoint given: a tiny random BERT masked LM (plumbing, not a benchmark)"
  "$py" - "$root" "$work" <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, str(Path(sys.argv[1]) / "tests" / "unit" / "dlm"))
from _dlm_hf_tiny import save_model, write_data  # the test suite's offline tiny model and prompt file
out = Path(sys.argv[2])
save_model(out / "tiny_model")
prompts, rewards = write_data(out, n=24)
prompts.rename(out / "prompts.jsonl")
rewards.rename(out / "rewards.py")
EOF
  reward="$work/rewards.py:match_target"
fi

sets=(--set "gen_len=$gen_len" --set "prompts_per_step=${PROMPTS:-4}" --set "group_size=${GROUP:-8}" --set mu=1
      --set "lora_r=${LORA_R:-16}" --set "lora_alpha=$((2 * ${LORA_R:-16}))" --set n_eval=4 --set eval_every=1000
      --set checkpoint_every=1000 --set pair_prompts=16 --set pair_samples=4 --set pair_batch=4
      --set max_prompt_len=64 --set rollout_temperature=1.0)
[[ "${GC:-0}" == 1 ]] && sets+=(--set gradient_checkpointing=true)
args=(dlm rl --hf-model "$model" --prompts-file "$work/prompts.jsonl" --reward "$reward" --steps "$steps" "${sets[@]}")

report() {  # steps/s, peak GPU memory and the per-update curve of one run's metrics.jsonl
  "$py" - "$1" "$2" <<'EOF'
import json, sys
rows = [json.loads(ln) for ln in open(f"{sys.argv[1]}/metrics.jsonl")]
done = [r for r in rows if r["step"] > 0]
last = done[-1]
peak = max((r.get("peak_mem_gb", 0.0) for r in rows), default=0.0)
key = "reward" if "reward" in last else "loss"  # online runs log their rollouts' reward, dTRPO its DPO loss
curve = " ".join(f"{r[key]:.3f}" for r in done)
print(f"{sys.argv[2]:<22} {last['step'] / max(last['wall_s'], 1e-9):7.3f} steps/s  peak GPU memory {peak:6.2f} GiB  "
      f"held-out reward {rows[0]['eval_reward']:.3f} -> {last.get('eval_reward', float('nan')):.3f}  {key} per update: "
      f"{curve}")
EOF
}

failed=0
run() {  # run ALGO PROCESSES: one `dlm rl` run, reported; a failure prints its log's tail and the script goes on
  local algo="$1" n="$2" dir="$work/${1}_$2"
  local launcher=("$py" -m thrifty.cli.main)
  if (( n > 1 )); then
    launcher=("$acc" launch --num_processes "$n" --num_machines 1 --mixed_precision no --dynamo_backend no
              -m thrifty.cli.main)
  fi
  if "${launcher[@]}" "${args[@]}" --algo "$algo" --run-dir "$dir" >"$dir.log" 2>&1; then
    report "$dir" "$algo, $n process(es)"
  else
    echo "gpu_dlm_smoke: $algo on $n process(es) failed:" >&2
    tail -15 "$dir.log" >&2
    failed=1
  fi
}

echo "dtrpo: \`thrifty dlm pairs\` takes a dlm train-sft run only, so each dTRPO run builds its own pairs first"
run diffu_grpo 1
run dtrpo 1
if (( gpus >= 2 )); then
  run diffu_grpo 2
  run dtrpo 2
else
  echo "gpu_dlm_smoke: $gpus GPU(s): the 2-process runs need two, skipped"
fi
exit "$failed"
