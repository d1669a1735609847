"""Lever 2 for a skin shortcut: random zoom (magnification varies between dermoscopes), so lesion size in pixels
stops being a cue, optionally gray (no colour variegation). Experiment only."""
import sys, json, numpy as np, torch
torch.set_num_threads(1)
from PIL import Image
import medviz.train.classifier as C
from medviz.classifiers import load_classifier
from medviz.phantoms.effects import true_effects
from medviz.train.oracle import HELD_OUT_FIRST_SEED
zoom, gray, name = float(sys.argv[1]), sys.argv[2] == "gray", sys.argv[3]
orig = C.to_model_batch
rng = np.random.default_rng(0)
def jitter(batch, device):
    out = []
    for im in batch:
        s = im.shape[0]
        f = rng.uniform(1 - zoom, 1 + zoom)
        n = max(8, int(round(s * f)))
        z = np.asarray(Image.fromarray(im).resize((n, n), Image.BILINEAR))
        if n >= s:
            o = (n - s) // 2; z = z[o:o + s, o:o + s]
        else:
            p = (s - n) // 2; z = np.pad(z, ((p, s - n - p), (p, s - n - p), (0, 0)), mode="edge")
        if gray:
            z = np.repeat(z.mean(-1, keepdims=True), 3, -1).astype(np.uint8)
        out.append(z)
    return orig(np.stack(out), device)
C.to_model_batch = jitter
cfg = C.ClassifierConfig(domain="skin", out=f"runs/skinzoom/{name}", target="melanoma", spurious="ruler", strength=0.9, workers=1)
r = C.train_classifier(cfg)
clf = load_classifier(cfg.out)
score = clf.score
if gray:
    clf_score = clf.score
    score = lambda ims: clf_score([np.repeat(np.asarray(i).mean(-1, keepdims=True), 3, -1) for i in ims])
t = true_effects("skin", "ruler", score, range(HELD_OUT_FIRST_SEED + 950_000, HELD_OUT_FIRST_SEED + 950_200), 32, C.link_parameters("skin", 0.0))
print(name, "worst(test, colour)", round(r["balanced_test"]["worst_group_accuracy"], 3), "true reliance", round(float(t["effect"].mean()), 3), flush=True)
