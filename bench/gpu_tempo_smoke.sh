#!/usr/bin/env bash
# Tempo on a real Qwen2-VL / Qwen2.5-VL checkpoint on a GPU: one generated needle mp4 → per-segment Yes/No
# relevance and memory states (one pass) → ATA allocation → [timestamp, memory]* context → greedy answer, printed
# with seconds per stage, peak GPU memory, the allocation table and the needle's true answer and evidence segments.
#
#   bash bench/gpu_tempo_smoke.sh MODEL_DIR          (or QWEN_VL_DIR=MODEL_DIR bash bench/gpu_tempo_smoke.sh)
#   env: FRAMES (needle video length, default 1024 = 128 segments), BUDGET (visual tokens, 4096), M (128),
#        DEVICE (cuda), PYTHON (python3). Needs torch with CUDA, transformers and PyAV (carry wheels if absent).
set -euo pipefail

model="${1:-${QWEN_VL_DIR:-}}"
if [[ -z "$model" || ! -f "$model/config.json" ]]; then
  echo "gpu_tempo_smoke: no Qwen-VL checkpoint at '${model:-(unset)}': pass a folder with config.json as \$1 or QWEN_VL_DIR" >&2
  exit 2
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="${PYTHON:-python3}"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
thrifty() { "$py" -c 'import sys; from thrifty.cli.main import main; sys.exit(main(sys.argv[1:]))' "$@"; }

"$py" -c 'import torch, transformers; print(f"torch {torch.__version__}, transformers {transformers.__version__},",
          torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")'
thrifty video synth --n 1 --tasks attribute --lengths "${FRAMES:-1024}" --seed 7 --format mp4 --out "$work" --json \
  >"$work/row.json"
field() { "$py" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())[sys.argv[2]])' "$work/row.json" "$1"; }
thrifty video compress "$work/needle_000.mp4" --query "$(field question)" --budget "${BUDGET:-4096}" \
  --backend qwen-vl --model-dir "$model" --device "${DEVICE:-cuda}" --m-max "${M:-128}"
echo "needle truth: answer $(field answer); evidence segments $(field evidence_segments)"
