#!/usr/bin/env bash
# Each extra installs what its code imports: build the wheel once, then per extra with its own commands (serve,
# tasks, video, train) install "wheel[extra]" into a clean venv and run real commands of that extra there, from
# a folder outside the checkout (so nothing is read from src/ or configs/). Usage: .ci/extras.sh [EXTRA...]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}  # makes the clean venvs
BUILDER=.venv/bin/python  # builds the wheel (`make install` made it; any Python with pip will do)
[ -x "$BUILDER" ] || BUILDER=$PYTHON
EXTRAS=("$@")
[ ${#EXTRAS[@]} -gt 0 ] || EXTRAS=(serve tasks video train)
export PIP_DISABLE_PIP_VERSION_CHECK=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export THRIFTY_PROGRESS=0 MPLBACKEND=Agg
WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi
  # the venvs hold tens of thousands of files: remove them in the background instead of holding up CI
  rm -rf "$WORK" </dev/null >/dev/null 2>&1 &
}
trap cleanup EXIT

step() { printf '\n== extras: %s\n' "$*"; }
T0=$SECONDS

step "build the wheel"
rm -rf build  # a stale build/lib would smuggle deleted modules into the wheel
"$BUILDER" -m pip wheel --no-deps -q -w "$WORK/dist" .
rm -rf build
WHEEL=$(ls "$WORK"/dist/thrifty-*.whl)
"$BUILDER" - "$WHEEL" <<'EOF'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
need = ["thrifty/configs/route/demo.yaml", "thrifty/configs/dlm/sudoku4_sft.yaml",
        "thrifty/configs/video/tempo_tiny.yaml", "thrifty/py.typed"]
missing = [n for n in need if n not in names]
sys.exit(f"wheel lacks {missing}" if missing else 0)
EOF

venv_for() {  # venv_for EXTRA: a clean venv with the wheel and that extra; sets BIN
  step "[$1]: install into a clean venv"
  "$PYTHON" -m venv "$WORK/venv-$1"
  BIN="$WORK/venv-$1/bin"
  "$BIN/pip" install -q -c "$ROOT/constraints.txt" "$WHEEL[$1]"
  mkdir -p "$WORK/run-$1"
  cd "$WORK/run-$1"
}

packaged_configs() { "$BIN/python" -c "import pathlib, thrifty; print(pathlib.Path(thrifty.__file__).parent / 'configs')"; }

check_serve() {
  venv_for serve
  step "[serve]: route eval replays a scripted run and writes its report"
  "$BIN/python" "$ROOT/tests/extras/route_store.py" fixture >/dev/null
  "$BIN/thrifty" route eval --router fixture/router.json --store fixture/store.sqlite --run-dir eval | tail -n 2
  test -s eval/report.html && test -s eval/quality_vs_cost.png
  step "[serve]: route serve answers a chat completion"
  printf '{"v": 1, "small": "fake", "large": "fake", "predictor": {"name": "zero_shot"}, "policy": {"tau_good": 0.5}, "version": "ci"}\n' > r.json
  port=$("$BIN/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  "$BIN/thrifty" route serve --router r.json --no-auth --port "$port" > serve.log 2>&1 &
  SERVER_PID=$!
  "$BIN/python" - "$port" <<'EOF'
import sys, time, httpx
url = f"http://127.0.0.1:{sys.argv[1]}/v1"
for _ in range(120):
    try:
        httpx.get(f"{url}/models", timeout=1.0).raise_for_status()
        break
    except httpx.HTTPError:
        time.sleep(0.25)
reply = httpx.post(f"{url}/chat/completions", timeout=30.0,
                   json={"model": "r", "messages": [{"role": "user", "content": "echo this"}]})
reply.raise_for_status()
assert reply.json()["choices"][0]["message"]["content"] == "echo this", reply.text
print("served one chat completion")
EOF
  kill "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

check_tasks() {
  venv_for tasks
  step "[tasks]: reasoning-gym, HumanEval, a Parquet file task, math-verify"
  "$BIN/thrifty" tasks show gym:basic_arithmetic --n 1
  "$BIN/thrifty" tasks show humaneval --n 1 | head -n 3
  "$BIN/python" -c "
import pyarrow as pa, pyarrow.parquet as pq
pq.write_table(pa.table({'question': ['What is 2 + 2?'], 'answer': ['4']}), 'qa.parquet')"
  "$BIN/thrifty" tasks show "qa:qa.parquet?split=test" --n 1
  "$BIN/python" -c "from thrifty.tasks.graders import math_equal; assert math_equal(r'\frac{1}{2}', '0.5')"
}

check_video() {
  venv_for video
  local configs
  configs=$(packaged_configs)
  step "[video]: allocate, a few training steps from the packaged config, eval with plots"
  "$BIN/thrifty" video allocate --scores 0.1,0.9,0.5,0.2 --budget 64 | tail -n 3
  "$BIN/thrifty" video train --config "$configs/video/tempo_tiny.yaml" --run-dir tempo \
    --set d_model=16 --set n_layers=1 --set n_heads=2 --set decoder_layers=1 --set n_memory=4 --set channels=4 \
    --set batch_size=2 --set caption_steps=1 --set stage1_steps=1 --set stage2_steps=1 --set stage3_steps=1 \
    --set stage2_lengths=[48] --set stage3_lengths=[48] --set n_eval=2 --set eval_length=48 --set eval_every=4
  "$BIN/thrifty" video eval --run-dir tempo --n 2 --budgets 0.5,1 --lengths 48 | tail -n 2
  ls tempo/eval/*.png >/dev/null
  step "[video]: a real encoded file: needle video as mp4, then compress it with the trained run"
  "$BIN/thrifty" video synth --n 1 --lengths 64 --tasks attribute --format mp4 --out needles | tail -n 1
  "$BIN/thrifty" video compress needles/needle_000.mp4 --query "What colour is the star?" --budget 16 \
    --run-dir tempo | tail -n 2
}

check_train() {
  venv_for train
  local configs
  configs=$(packaged_configs)
  step "[train]: dlm train-sft from the packaged config, dlm eval with its plot"
  "$BIN/thrifty" dlm train-sft --config "$configs/dlm/sudoku4_sft.yaml" --steps 2 --run-dir dlm \
    --set d_model=16 --set n_layers=1 --set n_heads=2 --set d_ff=32 --set n_train=32 --set n_eval=4 \
    --set batch_size=4 --set eval_every=2 --set checkpoint_every=2
  "$BIN/thrifty" dlm eval --run-dir dlm --n 4 | tail -n 3
  ls dlm/*.png >/dev/null
  step "[train]: the libraries of route sft and models export-hf import"
  "$BIN/python" -c "import accelerate, datasets, gguf, peft, safetensors, transformers, trl"
}

for extra in "${EXTRAS[@]}"; do
  t=$SECONDS
  "check_$extra"
  cd "$ROOT"
  printf '== extras: [%s] passed in %ds\n' "$extra" $((SECONDS - t))
done
printf '\n== extras: all passed in %ds\n' $((SECONDS - T0))
