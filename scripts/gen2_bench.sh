#!/usr/bin/env bash
# Issue 52's figures for one candidate pipeline beside the first generation's, on the same prompts, seeds and
# phantoms, on one core: the device kinds (CXR), prompt fidelity with diversity, FD and thin-line shapes, the
# paraphrases, each read by the domain's judge (runs/judge/DOMAIN-decoded, scripts/gen2_judges.sh), the VAE round trip
# by the bundled oracle too; then every edit (100 held-out phantoms each, judge-read; ~20 min an edit here).
# Each bench writes runs/bench/gen2/TAG_WHAT.json (TAG: the candidate folder's name, gen1 for the bundled model) and
# its table to the log; a bench whose JSON is there is skipped, so the same command resumes.
#   taskset -c 0 env OMP_NUM_THREADS=1 nohup bash scripts/gen2_bench.sh cxr runs/gen2/cxr-B-final >> runs/bench/gen2/log.txt 2>&1 &
. "$(dirname "$0")/gen2_stage.sh"
if [ $# -ne 2 ] || { [ "$1" != cxr ] && [ "$1" != skin ]; } || [ ! -f "$2/model_index.json" ]; then
    echo "usage: bash scripts/gen2_bench.sh cxr|skin PIPELINE_FOLDER (a bundled-layout pipeline: train bundle)" >&2
    exit 2
fi
domain=$1 candidate=$2
judge=runs/judge/$domain-decoded/oracle
if [ ! -d "$judge" ]; then echo "$judge not found: train the judge first (bash scripts/gen2_judges.sh $domain)" >&2; exit 1; fi
mkdir -p runs/bench/gen2

bench() {   # bench BENCH TAG WHAT ARGS...: python -m medviz.bench BENCH ARGS, unless runs/bench/gen2/TAG_WHAT.json is
    local name=$1 out=runs/bench/gen2/$2_$3.json; shift 3
    if [ -f "$out" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ) python -m medviz.bench $name --domain $domain $*"
    python -m medviz.bench "$name" --domain "$domain" --threads 1 --json "$out.part" "$@" < /dev/null
    mv "$out.part" "$out"
}
edits=$(python -c "from medviz.bench.counterfactual import EDITS; print('\n'.join(e for e in EDITS if EDITS[e][0] == '$domain'))")

tag=$(basename "$candidate")
for model in "$candidate" gen1; do
    [ "$model" = gen1 ] && { tag=gen1; model=$domain-phantom; }
    options=(--model "$model")
    [ "$model" = "$domain-phantom" ] && options=()         # the bundled model: the bench's default
    [ "$domain" = cxr ] && bench models "$tag" kinds "${options[@]}" --device-kinds --oracle "$judge" \
        --sheet "runs/bench/gen2/${tag}_kinds.png"
    bench models "$tag" prompts "${options[@]}" --oracle "$judge"
    bench models "$tag" round_trip_oracle "${options[@]}" --round-trip-only
    bench models "$tag" paraphrases "${options[@]}" --paraphrases --oracle "$judge"
    reconstruction=100                                   # the empty edits' PSNR, once per model
    while IFS= read -r edit; do
        bench counterfactual "$tag" "edit_${edit// /_}" "${options[@]}" --oracle "$judge" --edit "$edit" --n 100 \
            --n-reconstruction "$reconstruction"
        reconstruction=0
    done <<< "$edits"
done
echo "== gen2 bench ($domain, $candidate and gen1) done $(date -u +%FT%TZ)"
