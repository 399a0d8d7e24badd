#!/usr/bin/env bash
# The GPU measurements of the default recipe in one command, sized for a rented GPU billed by the minute:
#   1. bench/speed.py figures for train_cnn.py --preset gpu: time to 70% validation, time to the final
#      model, training images/s, share of the FLOP peak (JSON line);
#   2. bench/pipeline.py: (a) project pipeline, (b) ready tensors, (c) ImageDataGenerator (JSON line);
#   3. if time is left, a candidate recipe with bench/speed.py's figures (CANDIDATE_ARGS, default the same
#      for 200 epochs: on an H200, 120 epochs with erasing beat 60 without it on two seeds, by more than
#      seeds differ, and became the default; does the gain go on? try --width 2 too, though a 2x model is
#      14 MB in float16, too big to ship);
#   4. if time is left, a second seed of the default (the same validation faces: --seed leaves the split alone);
#   5. if time is left, the default recipe with --arch resnet (RESNET_ARGS; empty: skip), with bench/speed.py's
#      figures: on a 2-core CPU it matched the VGG in the same half hour but ran 20% fewer images/s;
#   6. if time is left, the default recipe's final fit on all 28,709 labeled faces (FINAL_ARGS, default
#      --val-fraction 0; empty: skip): the model to submit, its test predictions made back here (test.csv does
#      not travel); on a 2-core CPU a quarter more training faces was worth about a point of validation accuracy;
#   7. every model trained here with a validation split and their ensemble, plain, with flips and with flips and
#      zooms, on the validation split (predict.py --validate).
# With SIDE_BY_SIDE="NAME:ARGS;NAME:ARGS;..." steps 3-6 give way to those runs, trained at once on the one GPU,
# each timed (--minutes) to what is left of the budget unless its ARGS give --epochs: one 48x48 network fills a
# few percent of a large GPU, so several at once train more images a second in all than one alone. Their images/s
# are shares, not a recipe's speed; each process starts, measures and compiles while the others do: minutes.
# SEED: the default recipe's seed (0), so that a second call adds a new model rather than the same one again.
# TRAIN_ARGS empty skips the default recipe alone (step 1) and the steps that need its model, so that the
# SIDE_BY_SIDE runs get the whole budget (name the default among them to compare with it).
# Each training resumes where a killed call left it: run the same command again on the same machine.
# What comes back goes to $OUT (default gpu_out/): gpu.log with every figure, and one NAME.tar per trained
# model holding NAME.keras exported with float16 weights and no optimizer state (8 MB at the default 1.5x, 14 MB
# at 2x: under the 16 MB a call brings back per file) with NAME_summary.json and
# NAME_history.csv; unpack with tar -xf gpu_out/NAME.tar -C models/. Works on a machine with JAX and no
# network when .whl/ holds the keras, namex and optree wheels, fetched beforehand with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl keras==3.15.1 namex optree
# elsewhere it uses the installed keras.
#
#   bash bench/gpu.sh                                                   # the full check, data/train.npz.xz
#   BUDGET_S=120 TRAIN_ARGS="--preset smoke" DATA=data/sample/train.csv.xz bash bench/gpu.sh   # a dry run
#   SEED=2 PIPELINE_ARGS= SIDE_BY_SIDE="cnn_w2:--preset gpu --width 2;cnn_s3:--preset gpu --seed 3" bash bench/gpu.sh
set -uo pipefail
cd "$(dirname "$0")/.."

# the 28,709 labeled faces: the .npz (49 MiB) is the smallest form to copy to a GPU box without network
DATA=${DATA:-$( [ -f data/train.npz.xz ] && echo data/train.npz.xz || echo data/train.csv )}
OUT=${OUT:-gpu_out}
MODELS=${MODELS:-models}              # checkpoints and resume backups stay here, on the machine
BUDGET_S=${BUDGET_S:-540}            # stop starting work after this many seconds (one call has 600)
TRAIN_ARGS=${TRAIN_ARGS---preset gpu}                                  # empty: skip the default recipe
CANDIDATE_ARGS=${CANDIDATE_ARGS-$TRAIN_ARGS --epochs 200}                # empty: skip the candidate
RESNET_ARGS=${RESNET_ARGS-$TRAIN_ARGS --arch resnet}                      # empty: skip the resnet
FINAL_ARGS=${FINAL_ARGS-$TRAIN_ARGS --val-fraction 0}                     # empty: skip the final fit
PIPELINE_ARGS=${PIPELINE_ARGS---steps 200 --warmup 20 --precision bfloat16}  # empty: skip
SIDE_BY_SIDE=${SIDE_BY_SIDE:-}                                            # empty: steps 3-6 as above
IFS=';' read -ra SIDE_ENTRIES <<< "$SIDE_BY_SIDE"                         # "NAME:ARGS" each
SEED=${SEED:-0}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT" "$MODELS"
LOG="$OUT/gpu.log"

if compgen -G ".whl/*.whl" > /dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export KERAS_BACKEND=${KERAS_BACKEND:-jax}

say() { echo "== $* ($SECONDS s)" | tee -a "$LOG"; }
left() { echo $((BUDGET_S - SECONDS)); }

# The train_cnn.py call of every training here, ended at the budget's end: NAME, then the recipe's arguments.
fit() {
    local name=$1; shift
    timeout "$(left)" "$PYTHON" train_cnn.py --train "$DATA" --model "$MODELS/$name.keras" --figures "$MODELS" "$@"
}

# Train one model within what is left of the budget; a killed run resumes on the next call.
train() {
    local name=$1 seed=$2 args=${3:-$TRAIN_ARGS}
    if [ "$(left)" -lt 30 ]; then say "no time left for $name"; return 1; fi
    say "train $name (seed $seed, $args, at most $(left) s)"
    # shellcheck disable=SC2086
    fit "$name" --seed "$seed" $args 2>&1 | tee -a "$LOG"
    local status=${PIPESTATUS[0]}
    if [ "$status" -ne 0 ]; then say "$name stopped with status $status: run again to resume"; return 1; fi
}

# Bring a model back in float16 without its optimizer state, with its history and summary, as one file.
bring_back() {
    local name=$1 tmp
    tmp=$(mktemp -d)
    # on the CPU: exports run at once, and each backend would take most of the GPU's memory for itself
    JAX_PLATFORMS=cpu CUDA_VISIBLE_DEVICES="" \
        "$PYTHON" export_model.py "$MODELS/$name.keras" --out "$tmp/$name.keras" --half >> "$LOG" 2>&1 &&
        tar -cf "$OUT/$name.tar.tmp" -C "$tmp" "$name.keras" "${name}_summary.json" "${name}_history.csv" &&
        mv "$OUT/$name.tar.tmp" "$OUT/$name.tar"
    rm -rf "$tmp"
}

# Whether NAME trained and held out validation faces (cnn_final and a side-by-side run may not): its summary says.
held_out_faces() {
    "$PYTHON" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["split"]["val_rows"] == 0)' \
        "$MODELS/${1}_summary.json" 2> /dev/null
}

# Train the SIDE_BY_SIDE runs at once, each timed to the budget's end, each in its own log, appended to the
# main log as each ends; each that ended well comes back like the others, exported side by side too.
side_by_side() {
    local names=() pids=() timing=() entry name args n=${#SIDE_ENTRIES[@]} minutes fraction i
    minutes=$(awk -v s="$(left)" 'BEGIN { printf "%.1f", (s - 30) / 60 }')  # 30 s to export after
    fraction=$(awk -v n="$n" 'BEGIN { printf "%.2f", 0.9 / n }')  # JAX takes 75% of the memory otherwise
    if awk -v m="$minutes" 'BEGIN { exit !(m < 1) }'; then say "no time left for $n runs side by side"; return; fi
    for entry in "${SIDE_ENTRIES[@]}"; do
        name=${entry%%:*} args=${entry#*:} timing=(--minutes "$minutes")
        [[ " $args " == *" --epochs "* ]] && timing=()  # a run given its epochs is not timed
        say "train $name side by side with $((n - 1)) others ($args${timing:+, $minutes min})"
        # shellcheck disable=SC2086
        XLA_PYTHON_CLIENT_MEM_FRACTION=$fraction fit "$name" ${timing[@]+"${timing[@]}"} $args \
            > "$OUT/$name.log.tmp" 2>&1 &
        names+=("$name"); pids+=($!)
    done
    for i in "${!pids[@]}"; do
        name=${names[$i]}
        if wait "${pids[$i]}"; then say "$name done"; else say "$name stopped: run again to resume"; fi
        cat "$OUT/$name.log.tmp" >> "$LOG" && rm -f "$OUT/$name.log.tmp"
        [ -f "$MODELS/${name}_summary.json" ] && bring_back "$name" &  # one at a time would take minutes
    done
    wait
}

say "device: $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'), backend $KERAS_BACKEND"
if [ -n "$TRAIN_ARGS" ] && train cnn_gpu "$SEED"; then
    "$PYTHON" bench/speed.py --reuse --data "$DATA" --model "$MODELS/cnn_gpu.keras" 2>&1 | tee -a "$LOG"
    bring_back cnn_gpu
fi
if [ -n "$PIPELINE_ARGS" ] && [ "$(left)" -gt 60 ]; then
    say "pipeline overhead"
    # shellcheck disable=SC2086
    timeout "$(left)" "$PYTHON" bench/pipeline.py --data "$DATA" $PIPELINE_ARGS 2>&1 | tee -a "$LOG"
fi
if [ -n "$SIDE_BY_SIDE" ]; then
    side_by_side
    CANDIDATE_ARGS="" RESNET_ARGS="" FINAL_ARGS=""
fi
if [ -n "$CANDIDATE_ARGS" ] && [ -f "$MODELS/cnn_gpu_summary.json" ] && train cnn_candidate 0 "$CANDIDATE_ARGS"; then
    "$PYTHON" bench/speed.py --reuse --data "$DATA" --model "$MODELS/cnn_candidate.keras" 2>&1 | tee -a "$LOG"
    bring_back cnn_candidate
fi
if [ -z "$SIDE_BY_SIDE" ] && [ -f "$MODELS/cnn_gpu_summary.json" ] && train cnn_gpu_s1 1; then
    bring_back cnn_gpu_s1
fi
if [ -n "$RESNET_ARGS" ] && [ -f "$MODELS/cnn_gpu_s1_summary.json" ] && train cnn_resnet 0 "$RESNET_ARGS"; then
    "$PYTHON" bench/speed.py --reuse --data "$DATA" --model "$MODELS/cnn_resnet.keras" 2>&1 | tee -a "$LOG"
    bring_back cnn_resnet
fi
if [ -n "$FINAL_ARGS" ] && [ -f "$MODELS/cnn_gpu_s1_summary.json" ] &&
        { [ -z "$RESNET_ARGS" ] || [ -f "$MODELS/cnn_resnet_summary.json" ]; } && train cnn_final 0 "$FINAL_ARGS"; then
    bring_back cnn_final
fi
trained=()
for name in cnn_gpu cnn_gpu_s1 cnn_candidate cnn_resnet ${SIDE_ENTRIES[@]+"${SIDE_ENTRIES[@]%%:*}"}; do
    held_out_faces "$name" && trained+=(--model "$MODELS/$name.keras")
done
if [ ${#trained[@]} -ge 4 ]; then  # two models or more; seconds on a GPU, so even past the budget
    say "validation: each model and the ensemble, plain and with each TTA"
    "$PYTHON" predict.py "${trained[@]}" --tta \
        --test data/sample/test.csv.xz --out /tmp/sample_submission.csv --validate "$DATA" 2>&1 | tee -a "$LOG"
fi
say "done; in $OUT: $(ls "$OUT" | tr '\n' ' ')"
