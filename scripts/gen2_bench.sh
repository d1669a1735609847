#!/usr/bin/env bash
# Issue 52's generation figures for one candidate pipeline beside the first generation's, on the same prompts and
# seeds, on one core: the device kinds (CXR), prompt fidelity with diversity, FD and thin-line shapes, the paraphrases,
# each read by the domain's judge (runs/judge/DOMAIN-decoded, scripts/gen2_judges.sh), and the VAE round trip by the
# bundled oracle too. Each bench writes runs/bench/gen2/TAG_WHAT.json (TAG: the candidate folder's name, gen1 for the
# bundled model) and its table to the log; a bench whose JSON is there is skipped, so the same command resumes.
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

bench() {   # bench TAG WHAT ARGS...: python -m medviz.bench models ARGS, unless runs/bench/gen2/TAG_WHAT.json is there
    local out=runs/bench/gen2/$1_$2.json; shift 2
    if [ -f "$out" ]; then echo "== $out: done"; return; fi
    echo "== $out: $(date -u +%FT%TZ) python -m medviz.bench models --domain $domain $*"
    python -m medviz.bench models --domain "$domain" --threads 1 --json "$out.part" "$@"
    mv "$out.part" "$out"
}

tag=$(basename "$candidate")
for model in "$candidate" gen1; do
    [ "$model" = gen1 ] && { tag=gen1; model=$domain-phantom; }
    options=(--model "$model")
    [ "$model" = "$domain-phantom" ] && options=()         # the bundled model: the bench's default
    [ "$domain" = cxr ] && bench "$tag" kinds "${options[@]}" --device-kinds --oracle "$judge" \
        --sheet "runs/bench/gen2/${tag}_kinds.png"
    bench "$tag" prompts "${options[@]}" --oracle "$judge"
    bench "$tag" round_trip_oracle "${options[@]}" --round-trip-only
    bench "$tag" paraphrases "${options[@]}" --paraphrases --oracle "$judge"
done
echo "== gen2 bench ($domain, $candidate and gen1) done $(date -u +%FT%TZ)"
