import sys, time, json
from medviz.models import load_model
from medviz.classifiers import load_classifier
from medviz.engines.audit import AuditConfig, phantom_images, audit, report
dom = sys.argv[1]; n = int(sys.argv[2])
sp, tg = {"cxr": ("support_devices", "pleural_effusion"), "skin": ("ruler", "melanoma")}[dom]
clf = {"cxr": "cxr-effusion-erm", "skin": "skin-melanoma-erm"}[dom]
t0 = time.time()
m = load_model(f"{dom}-phantom")
imgs = phantom_images(dom, n, 40_000_000, attributes=(sp, tg))
r = audit(m, load_classifier(clf), imgs, AuditConfig(spurious=sp, target=tg))
rec = report(r)
print(json.dumps({"domain": dom, "images": n, "wall_seconds": round(time.time() - t0, 1), "unet_passes_per_image": rec["unet_passes_per_image"],
                  "reliance": rec["reliance"], "truth": rec["truth"]["reliance"], "excluded": rec["excluded"]}))
