import json
import pickle

import pytest

from medviz.bench.__main__ import main
from medviz.bench.audit import classifier_runs, spearman
from medviz.engines.audit import AuditConfig, make_counterfactuals, phantom_images
from medviz.engines.counterfactual import EditConfig
from medviz.train.classifier import make_classifier


def test_the_bench_audits_every_classifier_on_one_set_of_counterfactuals_and_reports_spearman(tiny_cxr, tmp_path):
    """Tiny random classifiers (with cards, as the trainer writes them) and a cached stage 1 from the tiny model:
    the bench's scoring, summary and JSON, without its training and edits."""
    runs = classifier_runs("cxr", [0.0, 0.9], 1)
    assert runs == [("erm", 0.0, 0), ("erm", 0.9, 0), ("groupdro", 0.9, 0)]
    folder = tmp_path / "classifiers"
    for i, (method, strength, seed) in enumerate(runs):
        out = folder / f"cxr-{method}-{strength}-s{seed}"
        make_classifier((8, 16), "pleural_effusion", 32).save_pretrained(str(out))
        (out / "medviz_classifier.json").write_text(
            json.dumps(
                {
                    "target": "pleural_effusion",
                    "balanced_test": {"worst_group_accuracy": 0.5 + 0.1 * i, "mean_accuracy": 0.9},
                }
            )
        )
    images = phantom_images("cxr", 4, 123, attributes=("support_devices", "pleural_effusion"), size=32)
    config = AuditConfig(spurious="support_devices", target="pleural_effusion",
                         edit=EditConfig(steps=4, strength=0.5, mask_draws=1, domain_check=False))
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "cxr-4.pkl").write_bytes(pickle.dumps(make_counterfactuals(tiny_cxr, images, config)))
    out = tmp_path / "audit.json"
    assert (
        main(
            [
                "audit",
                "--domain",
                "cxr",
                "--n-images",
                "4",
                "--strengths",
                "0.0",
                "0.9",
                "--seeds",
                "1",
                "--classifiers-dir",
                str(folder),
                "--cache",
                str(tmp_path / "cache"),
                "--json",
                str(out),
                "--figure-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    assert [c["name"] for c in result["classifiers"]] == ["cxr-erm-0.0-s0", "cxr-erm-0.9-s0", "cxr-groupdro-0.9-s0"]
    estimated = [c["reliance"]["mean"] for c in result["classifiers"]]
    true = [c["true_reliance"]["mean"] for c in result["classifiers"]]
    assert result["spearman"] == pytest.approx(spearman(estimated, true), abs=1e-4)
    assert result["max_abs_error"] == pytest.approx(max(abs(e - t) for e, t in zip(estimated, true)), abs=2e-4)
    assert result["erm_worst_by_strength"] == {"0.0": 0.5, "0.9": 0.6} and result[
        "groupdro_gain_points"
    ] == pytest.approx(10.0)
    assert result["n_images"] == 4 and result["unet_passes_per_image"] > 0
    from PIL import Image

    assert Image.open(tmp_path / "audit_cxr.png").size[0] > 1000


def test_spearman_is_the_rank_correlation():
    assert spearman([0.1, 0.2, 0.3], [1, 5, 9]) == pytest.approx(1.0)
    assert spearman([0.1, 0.2, 0.3], [9, 5, 1]) == pytest.approx(-1.0)


def test_a_candidate_pipeline_is_audited_from_its_own_cached_edits_and_never_carded(tmp_path):
    from medviz.bench.audit import weights_digest
    from medviz.models import MODELS_DIR

    with pytest.raises(SystemExit, match="drop --model"):
        main(["audit", "--domain", "cxr", "--model", "x", "--write-card"])
    with pytest.raises(SystemExit, match="name its --domain"):
        main(["audit", "--model", "x"])
    # The cache key follows the weights: a folder rewritten in place (a training snapshot) is another model.
    candidate = tmp_path / "snapshot"
    for part in ("unet", "vae"):
        (candidate / part).mkdir(parents=True)
        (candidate / part / "diffusion_pytorch_model.safetensors").write_bytes(part.encode())
    first = weights_digest(str(candidate))
    (candidate / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"unet, trained on")
    assert len(first) == 12 and weights_digest(str(candidate)) != first
    assert weights_digest(str(MODELS_DIR / "cxr-phantom")) != weights_digest(str(MODELS_DIR / "skin-phantom"))
