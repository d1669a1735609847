import sys, json, torch
torch.set_num_threads(1)
from medviz.train.__main__ import main
from medviz.classifiers import load_classifier
from medviz.phantoms.effects import true_effects
from medviz.phantoms.effects import link_parameters as graph_parameters
from medviz.train.oracle import HELD_OUT_FIRST_SEED
name, extra = sys.argv[1], sys.argv[2:]
out = f"runs/skinlever/{name}"
main(['classifier', '--domain', 'skin', '--out', out, '--target', 'melanoma', '--spurious', 'ruler', '--workers', '1', '--n-test', '800'] + extra)
clf = load_classifier(out)
t = true_effects('skin', 'ruler', clf.score, range(HELD_OUT_FIRST_SEED + 950_000, HELD_OUT_FIRST_SEED + 950_200), clf.image_size, graph_parameters('skin', 0.0))
card = json.load(open(f"{out}/medviz_classifier.json"))
bt = card['balanced_test'] if 'balanced_test' in card else card['result']['balanced_test']
print(name, extra, 'worst', round(bt['worst_group_accuracy'], 3), 'mean', round(bt['mean_accuracy'], 3), bt['groups'], 'true reliance', round(float(t['effect'].mean()), 3), flush=True)
