#!/usr/bin/env bash
# The recipe of the segmentation model shipped in src/livermets/segmentation/models/default (docs/segmentation.md):
# realistic training CT from the real 3 mm TotalSegmentator example (the DICOM example stays held out for the
# benchmark; generator realistic-2: metastases of 5-120 mm, confluent and exophytic ones, cysts as hard negatives),
# a few phantoms, then `seg train --config default` (8,000 iterations of 2 crops of 128 x 128 x 32, seeded; about an
# hour on 2 CPU cores). Re-running reuses what exists. Usage: scripts/train_default_model.sh [WORK_DIR]
set -euo pipefail
work=${1:-default_model_work}
ts=${SHARED_DATA:-../shared/data}/totalsegmentator
lm=(.venv/bin/livermets)

[ -f "$work/realistic/manifest.csv" ] || "${lm[@]}" synth --mode realistic --patients 150 --seed 0 --workers 2 \
  --source-ct "$ts/example_ct_sm.nii.gz" --source-labels "$ts/example_seg.nii.gz" --out "$work/realistic" --resume
[ -f "$work/phantoms/manifest.csv" ] || "${lm[@]}" synth --out "$work/phantoms" --patients 6 --size small --seed 1 \
  --no-overview --resume
"${lm[@]}" cohort merge "$work/realistic/manifest.csv" "$work/phantoms/manifest.csv" --out "$work/train.csv"
if [ -f "$work/model/checkpoint/state.json" ]; then resume=(--resume); else resume=(--model unet --config default); fi
"${lm[@]}" seg train "${resume[@]}" --manifest "$work/train.csv" --out "$work/model"
echo "model in $work/model; copy config.yaml, model.safetensors, train_log.csv, training_curve.png,"
echo "lesion_threshold.csv and provenance.json into src/livermets/segmentation/models/default/"
