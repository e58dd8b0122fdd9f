#!/usr/bin/env bash
# The GPU checks, in one run on a machine with a CUDA GPU and nothing downloaded (the embedded SmolLM2 and random
# models only), at most 8 minutes (GPU_CHECK_BUDGET_S, default 480: each step's time limit is its own or what is
# left of the budget, whichever is less, so the whole run cannot take longer; a step with no time left is skipped):
#   1. the tests marked `gpu` (NF4 load with bf16 embeddings, the chunked loss on the device, one NF4 pretrain and sft
#      step of the embedded SmolLM2);
#   2. scripts/bench_pretrain.py --shape llama2-7b (plain vs bailong tokens/s and peak memory) with train.kernels none
#      and liger (liger only where the liger-kernel package is installed: pip install -e '.[gpu]'); the random 7B
#      model is made once on the GPU in bf16 (13 GB in runs/gpu_check/llama2-7b-random) and shared by both;
#   3. the demo pipeline on the GPU in 4-bit NF4 (extend-vocab, pretrain, sft, eval), into runs/gpu_check/;
# then prints one summary table. Every step's output is kept in runs/gpu_check/logs/.
#
#   scripts/gpu_check.sh            # on the GPU machine
#   scripts/gpu_check.sh --dry-run  # on a CPU: the same steps, small: the gpu tests on the CPU, 2-step demo runs with
#                                   # bits per character only, the CPU bench shape for 2 steps; no liger
# PYTHON picks the interpreter (default .venv/bin/python, else python3).
set -u
cd "$(dirname "$0")/.."
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
OUT=runs/gpu_check
LOGS=$OUT/logs
mkdir -p "$LOGS"
ROWS=()
SLOWER=1
[ $DRY -eq 1 ] && SLOWER=20  # a shared 2-core CPU is about that much slower
BUDGET=$((${GPU_CHECK_BUDGET_S:-480} * SLOWER))
BEGAN=$(date +%s)

step() {  # step NAME TIMEOUT_S COMMAND...: runs it within the budget, logs it, records ok/FAILED and the seconds
    local name=$1 limit=$(($2 * SLOWER)) start rc left
    shift 2
    left=$((BUDGET - ($(date +%s) - BEGAN)))
    if [ $left -lt 10 ]; then
        ROWS+=("$name|SKIPPED|0|the ${BUDGET}s budget is spent")
        return
    fi
    [ $left -lt $limit ] && limit=$left
    start=$(date +%s)
    echo "== $name: $*"
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    rc=$?
    local status=ok
    [ $rc -ne 0 ] && status="FAILED (exit $rc; see $LOGS/$name.log)"
    [ $rc -eq 124 ] && status="TIMED OUT after ${limit}s (see $LOGS/$name.log)"
    ROWS+=("$name|$status|$(($(date +%s) - start))|$(summary "$name")")
    tail -3 "$LOGS/$name.log"
}

summary() {  # the figure worth a glance from a step's log
    case $1 in
    gpu-tests) tail -1 "$LOGS/$1.log" ;;
    pretrain) grep -o 'held-out bits per character.*' "$LOGS/$1.log" | tail -1 ;;
    sft) grep -o 'held-out loss on assistant tokens.*' "$LOGS/$1.log" | tail -1 ;;
    eval) grep -E '^(base|pretrained|sft) ' "$LOGS/$1.log" | awk -F'|' '{gsub(/ /,"",$1); gsub(/ /,"",$2); printf "%s %s bpc; ", $1, $2}' ;;
    bench-*) grep -h -E '^(ratio|bailong |plain )' "$LOGS/$1.log" | tr -s ' ' | paste -sd ';' ;;
    esac
}

BAILONG=("$PY" -m bailong)

if [ $DRY -eq 0 ] && ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "no CUDA GPU here: run scripts/gpu_check.sh --dry-run for the CPU version" >&2
    exit 2
fi
"$PY" -c 'import torch; print("torch", torch.__version__, "|", torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU")'

# 1. the gpu tests
if [ $DRY -eq 1 ]; then
    step gpu-tests 70 env BAILONG_GPU_TESTS_ON_CPU=1 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_gpu.py
else
    step gpu-tests 70 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests
fi

# 2. the paper's shape, plain vs bailong, kernels none and liger
if [ $DRY -eq 1 ]; then
    step bench-none 20 "$PY" scripts/bench_pretrain.py --shape cpu --steps 2 --kernels none --model-dir $OUT/cpu-random
else
    SEVEN_B=(--shape llama2-7b --steps 6 --model-dir $OUT/llama2-7b-random)
    step bench-none 170 "$PY" scripts/bench_pretrain.py "${SEVEN_B[@]}" --kernels none
    if "$PY" -c 'import liger_kernel' 2>/dev/null; then
        step bench-liger 110 "$PY" scripts/bench_pretrain.py "${SEVEN_B[@]}" --kernels liger
    else
        ROWS+=("bench-liger|skipped|0|liger-kernel is not installed (pip install -e '.[gpu]')")
    fi
fi


# 3. the demo pipeline in NF4
SHORT=()
[ $DRY -eq 1 ] && SHORT=(--set train.max_steps=2 --set train.save_steps=2 --set train.eval_steps=2)
step extend-vocab 45 "${BAILONG[@]}" extend-vocab configs/demo/extend_vocab.yaml --overwrite --set output_dir=$OUT/extend_vocab
step pretrain 45 "${BAILONG[@]}" pretrain configs/demo/pretrain.yaml --overwrite "${SHORT[@]}" --set quantization.mode=nf4 \
    --set train.gradient_checkpointing=true --set model.name_or_path=$OUT/extend_vocab --set output_dir=$OUT/pretrain
step sft 35 "${BAILONG[@]}" sft configs/demo/sft.yaml --overwrite "${SHORT[@]}" --set quantization.mode=nf4 \
    --set train.gradient_checkpointing=true --set model.name_or_path=$OUT/pretrain --set output_dir=$OUT/sft
MODELS="[{name: base, name_or_path: smollm2-135m-instruct}, {name: pretrained, name_or_path: $PWD/$OUT/pretrain}, {name: sft, name_or_path: $PWD/$OUT/sft}]"
EVAL=(--set "models=$MODELS" --set output_dir=$OUT/eval)
[ $DRY -eq 1 ] && EVAL+=(--set "tasks=[{type: bpc, files: [$PWD/src/bailong/demo_data/tc_heldout.txt]}]")
step eval 60 "${BAILONG[@]}" eval configs/demo/eval.yaml --overwrite "${EVAL[@]}"

echo
echo "gpu_check summary ($([ $DRY -eq 1 ] && echo "dry run on the CPU" || echo "GPU"), $(($(date +%s) - BEGAN))s of a ${BUDGET}s budget):"
for row in "step|status|seconds|result" "${ROWS[@]}"; do
    IFS='|' read -r name status seconds result <<<"$row"
    printf '%-13s %-12s %7s  %s\n' "$name" "$status" "$seconds" "$result"
done
for row in "${ROWS[@]}"; do
    case $row in *FAILED* | *"TIMED OUT"* | *SKIPPED*) exit 1 ;; esac
done
