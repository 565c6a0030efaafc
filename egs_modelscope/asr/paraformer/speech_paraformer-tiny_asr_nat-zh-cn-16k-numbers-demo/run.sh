#!/usr/bin/env bash
# Reproduce the bundled demo model: synthesize the corpus, build an init model dir,
# train it with finetune.py, bundle the chosen (dev-selected) checkpoint as model/,
# and decode the test set.
#
# Usage:
#   bash run.sh                                  # the whole recipe, in this folder
#   bash run.sh --stage 2 --stop_stage 4         # from training on
#   bash run.sh --work /tmp/demo --num_train 24 --num_dev 6 --num_test 6 --max_epoch 2   # a quick check
#
# Stages: 0 corpus (tools/make_demo_corpus.py), 1 init model (tools/make_model_dir.py),
# 2 training (finetune.py), 3 bundle WORK/model from the chosen checkpoint, 4 decode WORK/data/test.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/../../../../tools" && pwd)
stage=0
stop_stage=4
work=$here
num_train=500
num_dev=60
num_test=60
max_epoch=100
checkpoint=valid.cer.ave_5best.pb   # chosen on dev CER, never on test
seed=0

while [ $# -gt 0 ]; do
  case "$1" in
    --stage) stage=$2 ;;
    --stop_stage) stop_stage=$2 ;;
    --work) work=$2 ;;
    --num_train) num_train=$2 ;;
    --num_dev) num_dev=$2 ;;
    --num_test) num_test=$2 ;;
    --max_epoch) max_epoch=$2 ;;
    --checkpoint) checkpoint=$2 ;;
    --seed) seed=$2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 1 ;;
  esac
  shift 2
done
mkdir -p "$work"
work=$(cd "$work" && pwd)

if [ "$stage" -le 0 ] && [ "$stop_stage" -ge 0 ]; then
  echo "stage 0: synthesize the corpus into $work/data"
  python "$tools/make_demo_corpus.py" --out "$work/data" --num_train "$num_train" --num_dev "$num_dev" \
    --num_test "$num_test" --seed "$seed"
fi

if [ "$stage" -le 1 ] && [ "$stop_stage" -ge 1 ]; then
  echo "stage 1: init model dir $work/exp/init_model"
  python "$tools/make_model_dir.py" --config "$here/conf/paraformer_tiny.yaml" --train_data "$work/data/train" \
    --out "$work/exp/init_model" --seed "$seed"
fi

if [ "$stage" -le 2 ] && [ "$stop_stage" -ge 2 ]; then
  echo "stage 2: train into $work/exp/finetune"
  # from-scratch hyper-parameters, all explicit: finetune.py's own defaults are for finetuning model/
  python "$here/finetune.py" --model "$work/exp/init_model" --data_path "$work/data" \
    --output_dir "$work/exp/finetune" --max_epoch "$max_epoch" --seed "$seed" --no_progress_bar \
    --optim adam --lr 0.002 --scheduler warmuplr --scheduler_conf '{warmup_steps: 300}' \
    --batch_bins 1500 --accum_grad 1 --specaug none --keep_nbest_models 1 5 --dataset_type small \
    --num_workers 1 --final_checkpoint valid.acc.ave.pb
fi

if [ "$stage" -le 3 ] && [ "$stop_stage" -ge 3 ]; then
  echo "stage 3: bundle $checkpoint as $work/model"
  mkdir -p "$work/model"
  for f in config.yaml tokens.json am.mvn configuration.json; do
    cp "$work/exp/finetune/$f" "$work/model/$f"
  done
  cp "$work/exp/finetune/$checkpoint" "$work/model/model.pt"
  cp "$work/exp/finetune/${checkpoint%.pb}.yaml" "$work/model/training_record.yaml"
fi

if [ "$stage" -le 4 ] && [ "$stop_stage" -ge 4 ]; then
  echo "stage 4: decode $work/data/test"
  python "$here/infer.py" --model "$work/model" --data_dir "$work/data/test" --output_dir "$work/exp/decode_test"
fi
