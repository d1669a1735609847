"""Print the debias bench's table for docs/results/debias.md: python docs/results/debias_scripts/table.py cxr"""
import json
import sys

result = json.load(open(f"assets/bench/debias_{sys.argv[1]}.json"))
print("| arm | rows added | worst group (mean ± sd, 3 seeds) | mean accuracy | reliance, estimated | true | SCLS |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for arm, a in result["arms"].items():
    print(f"| {arm} | {a['augment_rows']} | {a['worst']['mean']:.3f} ± {a['worst']['sd']:.3f} | "
          f"{a['mean']['mean']:.3f} ± {a['mean']['sd']:.3f} | {a['reliance']['mean']:+.3f} ± {a['reliance']['sd']:.3f} | "
          f"{a['true_reliance']['mean']:+.3f} | {a['scls']['mean']:.3f} |")
