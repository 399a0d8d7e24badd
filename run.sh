#!/usr/bin/env bash
# The main job: set up, train the CNN and a DNN with as many parameters, write their figures
# (training curves, confusion matrices), histories and Kaggle submission. Uses data/train.csv and data/test.csv (or .gz/.xz) when present,
# otherwise the bundled 700-row sample. Extra arguments go to train_cnn.py (e.g. --preset gpu).
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
test_args=()
[ -n "$test" ] && test_args=(--test "$test")

"$PY" train_cnn.py --train "$train" "${test_args[@]}" "${preset[@]}" "$@"
"$PY" train_dnn.py --train "$train" --match models/cnn.keras "${test_args[@]}" "${preset[@]}"
"$PY" confusion.py --data "$train" --model models/cnn.keras --model models/dnn.keras
if [ -n "$test" ]; then
  "$PY" predict.py --model models/cnn.keras --test "$test" --out submission.csv
fi
