#!/usr/bin/env bash
# The main job of `make demo`: the whole livermets pipeline on a synthetic cohort, then the paper's reproduction
# from its published features (when ../shared/data is present). Every step is an ordinary CLI command; re-running
# the script reuses what is already there (synth --resume, resumable radiomics, an existing model).
set -euo pipefail
out=${1:-demo_output}
patients=${DEMO_PATIENTS:-24}
train_iterations=${DEMO_TRAIN_ITERATIONS:-1200}
lm=(.venv/bin/livermets)
cohort=$out/cohort
manifest=$cohort/manifest.csv
published=../shared/data/nih_mip_msclc/Final_ResampledClassificationData.csv
real_dicom=../shared/data/totalsegmentator/example_ct_dicom

step() { printf '\n== %s\n' "$*"; }

step "1/9 synthetic cohort ($patients patients, demo size)"
if [ -f "$manifest" ]; then echo "reusing $manifest"; else
  "${lm[@]}" synth --out "$cohort" --patients "$patients" --size demo --seed 0 --resume; fi
"${lm[@]}" cohort validate "$manifest"
"${lm[@]}" cohort summary "$manifest"

step "2/9 segment the test split with the model shipped with livermets (no --model)"
"${lm[@]}" seg predict --manifest "$manifest" --split test --out "$out/predictions"

step "3/9 lesion detection metrics of the shipped model (paper rule and LiTS rule)"
"${lm[@]}" seg evaluate --pred-dir "$out/predictions" --manifest "$manifest" --out "$out/evaluation" \
  --skip-missing --size-strata 10 --figures
"${lm[@]}" seg evaluate --pred-dir "$out/predictions" --manifest "$manifest" --out "$out/evaluation_lits" \
  --skip-missing --rule lits --iou 0.5
cat "$out/evaluation/table3.md"

step "4/9 showcase: train a 3D U-Net on this cohort (cpu preset, $train_iterations iterations) and compare"
if [ -f "$out/model/model.safetensors" ]; then echo "reusing $out/model"; else
  "${lm[@]}" seg train --model unet --config cpu --manifest "$manifest" --out "$out/model" \
    --iterations "$train_iterations" --max-minutes 45; fi  # the cap only guards against a very slow machine
"${lm[@]}" seg predict --model "$out/model" --manifest "$manifest" --split test --out "$out/predictions_showcase"
"${lm[@]}" seg evaluate --pred-dir "$out/predictions_showcase" --manifest "$manifest" \
  --out "$out/evaluation_showcase" --skip-missing --size-strata 10
cat "$out/evaluation_showcase/table3.md"

step "5/9 radiomics of the reference lesions of every series (the paper's 108 features)"
"${lm[@]}" radiomics extract --manifest "$manifest" --out "$out/features.csv"

step "6/9 radiomics of the lesions the shipped model found (test split)"
"${lm[@]}" radiomics extract --manifest "$manifest" --split test --masks "$out/predictions" \
  --out "$out/features_predicted.csv" \
  || echo "(no predicted lesion could be measured)"

step "7/9 tumour burden vs NE score on the synthetic cohort (its generator links them with Spearman ~0.25)"
"${lm[@]}" stats burden --features "$out/features.csv" --out "$out/burden"

step "8/9 the paper's Table 4 from its published features, and the grouped protocol beside it"
if [ -f "$published" ]; then
  "${lm[@]}" reproduce paper --features "$published" --out "$out/reproduce" --tables 4
  "${lm[@]}" phenotype evaluate --features "$published" --protocol grouped --out "$out/phenotype_grouped" \
    --n-permutations 50 --n-repeats 2
else
  echo "skipped: $published not found (the published feature table is read from ../shared/data)"
fi

step "9/9 analyze: one synthetic CT and the real DICOM CT -> label map, lesions, features, NE probability, report"
phenotype=()
if [ -f "$published" ]; then
  if [ ! -f "$out/ne_model/config.json" ]; then
    "${lm[@]}" phenotype train --features "$published" --protocol grouped --model LR --out "$out/ne_model"; fi
  phenotype=(--phenotype-model "$out/ne_model")
fi
synthetic_ct=$(.venv/bin/python -c "import pandas as p, sys; m = p.read_csv(sys.argv[1]); \
print(m.loc[m['split'] == 'test', 'image'].iloc[0])" "$manifest")
"${lm[@]}" analyze "$cohort/$synthetic_ct" --out "$out/analyze_synthetic" --overwrite "${phenotype[@]}"
if [ -d "$real_dicom" ]; then
  "${lm[@]}" analyze "$real_dicom" --out "$out/analyze_real_dicom" --overwrite "${phenotype[@]}"
else
  echo "skipped: $real_dicom not found"
fi

printf '\nDemo outputs in %s:\n' "$out"
printf '  %s\n' "$cohort/overview.png" "$out/evaluation/table3.md" "$out/evaluation_showcase/table3.md" \
  "$out/model/training_curve.png" "$out/analyze_synthetic/report.html" "$out/analyze_real_dicom/report.html" \
  "$out/features.csv" "$out/burden" "$out/reproduce/REPORT.md" "$out/phenotype_grouped/summary.json"
