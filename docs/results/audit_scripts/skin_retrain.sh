cd /work/main
t() { PYTHONPATH=. taskset -c $1 .venv/bin/python -m medviz.train classifier --domain skin --target melanoma --spurious ruler --workers 1 "${@:2}" > /dev/null 2>&1; }
(for s in 0.0 0.3 0.6 0.9; do t 0 --out runs/audit_classifiers/skin-erm-$s-s0 --strength $s --method erm --seed 0; done; t 0 --out runs/audit_classifiers/skin-groupdro-0.9-s0 --strength 0.9 --method groupdro --seed 0; t 0 --out assets/models/skin-melanoma-erm --strength 0.9 --method erm --seed 0) &
(for s in 0.0 0.3 0.6 0.9; do t 1 --out runs/audit_classifiers/skin-erm-$s-s1 --strength $s --method erm --seed 1; done; t 1 --out runs/audit_classifiers/skin-groupdro-0.9-s1 --strength 0.9 --method groupdro --seed 1; t 1 --out assets/models/skin-melanoma-groupdro --strength 0.9 --method groupdro --seed 0) &
wait; echo done > runs/skin_retrain.done
