#!/usr/bin/env bash
# The main job of `make demo`: the whole livermets pipeline on a synthetic cohort, then the paper's reproduction
# from its published features and the analysis of a real DICOM CT. The public data (livermets data list) comes from
# LIVERMETS_DATA_DIR (a local mirror folder, e.g. CI's ../shared/data) or the data home, or is downloaded once and
# checked by SHA-256; a step whose data cannot be had says so in one line. Every step is an ordinary CLI command;
# re-running the script reuses what is already there (synth --resume, resumable radiomics, an existing model).
set -euo pipefail
out=${1:-demo_output}
patients=${DEMO_PATIENTS:-24}
train_iterations=${DEMO_TRAIN_ITERATIONS:-1200}
lm=(.venv/bin/livermets)
cohort=$out/cohort
manifest=$cohort/manifest.csv

step() { printf '\n== %s\n' "$*"; }
# fetch DATASET: 0 when the data set is here (mirror folder, data home, or downloaded now: what, from where, licence
# and where it is kept are printed); else one line why not.
fetch() {
  local said
  if said=$("${lm[@]}" data fetch "$1" 2>&1); then
    printf '%s\n' "$said"
    return 0
  fi
  echo "skipped: ${said##*error: }"
  return 1
}

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
phenotype=()
if fetch nih_mip_msclc; then
  "${lm[@]}" reproduce paper --out "$out/reproduce" --tables 4
  "${lm[@]}" phenotype evaluate --published --protocol grouped --out "$out/phenotype_grouped" \
    --n-permutations 50 --n-repeats 2
  phenotype=(--phenotype-model paper)  # built once from the published features (grouped CV AUC near chance)
fi

step "9/9 analyze: one synthetic CT and the real DICOM CT -> label map, lesions, features, NE probability, report"
synthetic_ct=$(.venv/bin/python -c "import pandas as p, sys; m = p.read_csv(sys.argv[1]); \
print(m.loc[m['split'] == 'test', 'image'].iloc[0])" "$manifest")
"${lm[@]}" analyze "$cohort/$synthetic_ct" --out "$out/analyze_synthetic" --overwrite "${phenotype[@]}"
if fetch totalsegmentator; then
  real_dicom=$("${lm[@]}" data path totalsegmentator/example_ct_dicom)
  "${lm[@]}" analyze "$real_dicom" --out "$out/analyze_real_dicom" --overwrite "${phenotype[@]}"
fi

printf '\nDemo outputs in %s:\n' "$out"
for written in "$cohort/overview.png" "$out/evaluation/table3.md" "$out/evaluation_showcase/table3.md" \
  "$out/model/training_curve.png" "$out/analyze_synthetic/report.html" "$out/analyze_real_dicom/report.html" \
  "$out/features.csv" "$out/burden" "$out/reproduce/REPORT.md" "$out/phenotype_grouped/summary.json"; do
  if [ -e "$written" ]; then printf '  %s\n' "$written"; fi
done
