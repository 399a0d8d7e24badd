#!/usr/bin/env bash
# The main job: set up, train the CNN and a DNN with as many parameters, write the Kaggle submission,
# run the ablation and the semi-supervised study on a small budget, and end with the report
# (figures/report.md and figures/report.html). Uses data/train.csv and data/test.csv (or .gz/.xz)
# when present, otherwise the bundled 700-row sample. Extra arguments go to train_cnn.py (e.g. --preset gpu).
set -euo pipefail
cd "$(dirname "$0")"
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
# The ablation (4 runs) and the semi-supervised study (7 runs) are sized to take minutes, not hours:
# a 4,000-face subset of the training split and 5 epochs a run. Run the scripts yourself for more.
if [ "${#preset[@]}" -gt 0 ]; then
  small=(--preset sample --epochs 4)
else
  small=(--limit 4000 --epochs 5)
fi
test_args=()
[ -n "$test" ] && test_args=(--test "$test")

"$PY" train_cnn.py --train "$train" "${test_args[@]}" "${preset[@]}" "$@"
"$PY" train_dnn.py --train "$train" --match models/cnn.keras "${test_args[@]}" "${preset[@]}"
if [ -n "$test" ]; then
  "$PY" predict.py --model models/cnn.keras --test "$test" --out submission.csv
fi
"$PY" ablation.py --data "$train" "${small[@]}"
"$PY" semi_supervised.py --data "$train" "${small[@]}" --fractions 0.1 0.2 0.5 --rounds 1
"$PY" report.py --data "$train" --cnn models/cnn.keras --dnn models/dnn.keras
