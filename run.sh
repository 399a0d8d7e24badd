#!/usr/bin/env bash
# The main job: set up, train the CNN and two DNNs with as many parameters (with and without augmentation),
# write the Kaggle submission, run the ablation and the semi-supervised study on a budget sized to learn,
# and end with the report (figures/report.md and figures/report.html), which states the time it all took. Uses data/train.csv and data/test.csv (or .gz/.xz)
# when present, otherwise the bundled 700-row sample. Extra arguments go to train_cnn.py (e.g. --preset gpu).
set -euo pipefail
cd "$(dirname "$0")"
started=$(date +%s)
source ./setup.sh requirements.txt

find_data() {
  for f in "data/$1.csv" "data/$1.csv.gz" "data/$1.csv.xz"; do [ -e "$f" ] && { echo "$f"; return; }; done
  return 0  # none: the caller falls back to the sample
}
train="${TRAIN:-$(find_data train)}"
test="${TEST:-$(find_data test)}"
preset=()
if [ -z "$train" ]; then
  echo "no data/train.csv: using the bundled sample (data/sample/, 700 training and 140 test faces)"
  train=data/sample/train.csv.xz
  test="${test:-data/sample/test.csv.xz}"
  preset=(--preset sample)
fi
# The ablation (4 runs) and the semi-supervised study (5 runs) are sized to take minutes, not hours, and
# still learn: an 8,000-face subset of the training split and 8 epochs a run. Run the scripts yourself for
# more. On the 700-face sample nothing this small learns much: the report flags what did not.
if [ "${#preset[@]}" -gt 0 ]; then
  small=(--preset sample --epochs 4)
else
  small=(--limit 8000 --epochs 8)
fi
test_args=()
[ -n "$test" ] && test_args=(--test "$test")

"$PY" train_cnn.py --train "$train" "${test_args[@]}" "${preset[@]}" "$@"
"$PY" train_dnn.py --train "$train" --match models/cnn.keras "${test_args[@]}" "${preset[@]}"
"$PY" train_dnn.py --train "$train" --match models/cnn.keras --no-augment --model models/dnn_noaug.keras "${preset[@]}"
if [ -n "$test" ]; then
  "$PY" predict.py --model models/cnn.keras --test "$test" --out submission.csv
fi
"$PY" ablation.py --data "$train" "${small[@]}"
"$PY" semi_supervised.py --data "$train" "${small[@]}" --fractions 0.25 0.5 --rounds 1
"$PY" report.py --data "$train" --cnn models/cnn.keras --dnn models/dnn.keras --dnn models/dnn_noaug.keras \
  --started "$started"
