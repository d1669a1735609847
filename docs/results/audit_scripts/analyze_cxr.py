import pickle, numpy as np, sys
from medviz.classifiers import load_classifier
dom = sys.argv[1]
made = pickle.load(open(f"runs/audit_counterfactuals/{dom}-200.pkl", "rb"))
sp = made.spurious
for name in ["erm-0.3-s0", "erm-0.6-s0", "erm-0.9-s0", "groupdro-0.9-s0"]:
    c = load_classifier(f"runs/sweep32/{dom}-{name}")
    ims = made.images
    before = c.score([i.input for i in ims]); after = c.score([i.switches[sp].image for i in ims])
    on = c.score([i.truth[sp][0] for i in ims]); off = c.score([i.truth[sp][1] for i in ims])
    act = np.array([i.switches[sp].action for i in ims]); ok = np.array([i.switches[sp].passed is not False for i in ims])
    sign = np.where(act == "add", 1, -1)
    est = sign * (after - before); tru = on - off
    # recon-only: score of input vs truth image itself
    for a in ("add", "remove"):
        m = (act == a) & ok
        print(name, a, m.sum(), "est", est[m].mean().round(3), "true", tru[m].mean().round(3))
    print(name, "input==truth check", np.abs(np.where(act=="add", off, on) - before).max().round(4))
