import sys, time, torch, numpy as np
torch.set_num_threads(1)
from medviz.models import load_model
from medviz.engines.counterfactual import counterfactual, EditConfig
from medviz.phantoms import get_domain
from medviz.phantoms.effects import link_parameters as graph_parameters
from medviz.train.oracle import HELD_OUT_FIRST_SEED
dom, attr, action = sys.argv[1:4]
m = load_model(f"{dom}-phantom")
mod = get_domain(dom)
g = mod.build_graph(**graph_parameters(dom, 0.0))
import medviz.domains as D
n=0; ok=0; t=time.time()
for seed in range(HELD_OUT_FIRST_SEED+950_000, HELD_OUT_FIRST_SEED+950_100):
    s = g.sample(seed)
    has = D.get(dom).attributes_of(s.factors)[attr]
    if has != (action == "remove"): continue
    img = mod.render(s.factors, s.seed, 128).image
    cfg = EditConfig(**{action: (attr,)}, seed=0, domain_check=False)
    r = counterfactual(m, img, cfg)
    n += 1; ok += r.effect.passed
    print(seed, r.effect.verdict, r.unet_passes, round(r.seconds,2), flush=True)
    if n >= 12: break
print(dom, attr, action, ok, "/", n, "s/edit", (time.time()-t)/n)
