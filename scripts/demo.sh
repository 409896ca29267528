#!/usr/bin/env bash
# The main job of `make demo`: the whole livermets pipeline on a synthetic cohort, then the paper's reproduction
# from its published features (when ../shared/data is present). Every step is an ordinary CLI command; re-running
# the script reuses what is already there (synth --resume, resumable radiomics, an existing model).
set -euo pipefail
out=${1:-demo_output}
patients=${DEMO_PATIENTS:-24}
train_minutes=${DEMO_TRAIN_MINUTES:-10}
lm=(.venv/bin/livermets)
cohort=$out/cohort
manifest=$cohort/manifest.csv
published=../shared/data/nih_mip_msclc/Final_ResampledClassificationData.csv

step() { printf '\n== %s\n' "$*"; }

step "1/8 synthetic cohort ($patients patients, demo size)"
if [ -f "$manifest" ]; then echo "reusing $manifest"; else
  "${lm[@]}" synth --out "$cohort" --patients "$patients" --size demo --seed 0 --resume; fi
"${lm[@]}" cohort validate "$manifest"
"${lm[@]}" cohort summary "$manifest"

step "2/8 train a 3D U-Net (cpu preset, at most $train_minutes min)"
if [ -f "$out/model/model.safetensors" ]; then echo "reusing $out/model"; else
  "${lm[@]}" seg train --model unet --config cpu --manifest "$manifest" --out "$out/model" \
    --max-minutes "$train_minutes"; fi

step "3/8 segment the test split"
"${lm[@]}" seg predict --model "$out/model" --manifest "$manifest" --split test --out "$out/predictions"

step "4/8 lesion detection metrics (paper rule and LiTS rule)"
"${lm[@]}" seg evaluate --pred-dir "$out/predictions" --manifest "$manifest" --out "$out/evaluation" \
  --skip-missing --size-strata 10 --figures
"${lm[@]}" seg evaluate --pred-dir "$out/predictions" --manifest "$manifest" --out "$out/evaluation_lits" \
  --skip-missing --rule lits --iou 0.5
cat "$out/evaluation/table3.md"

step "5/8 radiomics of the reference lesions of every series (the paper's 108 features)"
"${lm[@]}" radiomics extract --manifest "$manifest" --out "$out/features.csv"

step "6/8 radiomics of the predicted lesions (test split)"
"${lm[@]}" radiomics extract --manifest "$manifest" --split test --masks "$out/predictions" \
  --out "$out/features_predicted.csv" \
  || echo "(no predicted lesion could be measured)"

step "7/8 tumour burden vs NE score on the synthetic cohort (its generator links them with Spearman ~0.25)"
"${lm[@]}" stats burden --features "$out/features.csv" --out "$out/burden"

step "8/8 the paper's Table 4 from its published features, and the grouped protocol beside it"
if [ -f "$published" ]; then
  "${lm[@]}" reproduce paper --features "$published" --out "$out/reproduce" --tables 4
  "${lm[@]}" phenotype evaluate --features "$published" --protocol grouped --out "$out/phenotype_grouped" \
    --n-permutations 50 --n-repeats 2
else
  echo "skipped: $published not found (the published feature table is read from ../shared/data)"
fi

printf '\nDemo outputs in %s:\n' "$out"
printf '  %s\n' "$cohort/overview.png" "$out/model/training_curve.png" "$out/evaluation/table3.md" \
  "$out/features.csv" "$out/burden" "$out/reproduce/REPORT.md" "$out/phenotype_grouped/summary.json"
