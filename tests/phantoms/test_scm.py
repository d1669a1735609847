import numpy as np
import pytest

from medviz import domains
from medviz.phantoms import cxr, get_domain, intervention_mask, skin
from medviz.phantoms.export import measure_planted_link, measure_planted_links
from medviz.phantoms.scm import CausalGraph, Variable

DOMAINS = [cxr, skin]

# One intervention per factor: a value that differs from most samples' own.
CXR_CHANGES = {
    "sex": lambda f: {"sex": "M" if f["sex"] == "F" else "F"},
    "age": lambda f: {"age": 85 if f["age"] < 60 else 25},
    "habitus": lambda f: {"habitus": 1.1 if f["habitus"] < 1.0 else 0.9},
    "bone_density": lambda f: {"bone_density": 0.5},
    "cardiomegaly": lambda f: {"cardiomegaly": not f["cardiomegaly"]},
    "ctr": lambda f: {"ctr": 0.62},
    "effusion": lambda f: {"effusion": "none" if f["effusion"] != "none" else "left"},
    "effusion_severity": lambda f: {"effusion": "right", "effusion_severity": 0.9},
    "support_devices": lambda f: {"support_devices": not f["support_devices"]},
    "devices": lambda f: {"support_devices": True, "devices": ("ngt",) if "ngt" not in f["devices"] else ("cvc",)},
    "exposure": lambda f: {"exposure": 1.25},
    "contrast": lambda f: {"contrast": 0.75},
    "noise_level": lambda f: {"noise_level": 0.05},
    "rotation": lambda f: {"rotation": 6.0},
    "shift_x": lambda f: {"shift_x": 0.08},
    "shift_y": lambda f: {"shift_y": -0.08},
    "marker": lambda f: {"marker": "R" if f["marker"] == "L" else "L"},
}
SKIN_CHANGES = {
    "skin_type": lambda f: {"skin_type": 6 if f["skin_type"] < 4 else 1},
    "melanoma": lambda f: {"melanoma": not f["melanoma"]},
    "diameter_mm": lambda f: {"diameter_mm": 12.0},
    "asymmetry": lambda f: {"asymmetry": 0.9},
    "border_irregularity": lambda f: {"border_irregularity": 1.0},
    "color_variegation": lambda f: {"color_variegation": 1.0},
    "ruler": lambda f: {"ruler": not f["ruler"]},
    "hair": lambda f: {"hair": not f["hair"]},
    "hair_density": lambda f: {"hair": True, "hair_density": 35},
    "gel_bubbles": lambda f: {"gel_bubbles": not f["gel_bubbles"]},
    "ink": lambda f: {"ink": not f["ink"]},
    "vignette": lambda f: {"vignette": 0.0 if f["vignette"] > 0 else 0.8},
    "illumination": lambda f: {"illumination": 1.2},
}
# Factors whose effect is local: the mask must leave most of the picture alone.
LOCAL = {"cxr": {"cardiomegaly", "ctr", "effusion", "effusion_severity", "support_devices", "devices", "marker"},
         "skin": {"melanoma", "diameter_mm", "asymmetry", "border_irregularity", "color_variegation", "ruler",
                  "gel_bubbles", "ink", "vignette"}}


def test_every_factor_has_an_intervention_case():
    assert set(CXR_CHANGES) == set(cxr.build_graph().names)
    assert set(SKIN_CHANGES) == set(skin.build_graph().names)


@pytest.mark.parametrize("module,changes", [(cxr, CXR_CHANGES), (skin, SKIN_CHANGES)], ids=["cxr", "skin"])
def test_intervention_changes_pixels_only_inside_its_mask(module, changes):
    graph = module.build_graph()
    size = 160
    for factor, make in changes.items():
        changed_any = False
        for seed in (3, 11):
            sample = graph.sample(seed)
            counterfactual = graph.intervene(sample, **make(sample.factors))
            before = module.render(sample.factors, sample.seed, size).image
            after = module.render(counterfactual.factors, counterfactual.seed, size).image
            mask = intervention_mask(sample, counterfactual, size)
            differs = np.any(before != after, axis=-1) if before.ndim == 3 else before != after
            outside = differs & ~mask
            assert not outside.any(), f"{module.DOMAIN}.{factor}: {outside.sum()} pixels changed outside the mask"
            changed_any |= bool(differs.any())
            if factor in LOCAL[module.DOMAIN] and mask.any():
                assert mask.mean() < 0.6, f"{module.DOMAIN}.{factor}: mask covers {mask.mean():.0%}, not local"
        assert changed_any, f"{module.DOMAIN}.{factor}: intervention changed no pixel"


@pytest.mark.parametrize("module", DOMAINS, ids=["cxr", "skin"])
def test_render_from_seed_is_bit_identical(module):
    graph = module.build_graph()
    for seed in (0, 1, 12345):
        a = graph.sample(seed)
        b = graph.sample(seed)
        assert a.factors == b.factors
        first = module.render(a.factors, a.seed, 192).image
        second = module.render(b.factors, b.seed, 192).image
        assert first.dtype == np.float32 and first.min() >= 0 and first.max() <= 1
        assert np.array_equal(first, second)
    assert graph.sample(0).factors != graph.sample(1).factors


def test_render_sizes_and_shapes():
    graph = cxr.build_graph()
    sample = graph.sample(5)
    for size in (128, 256, 512):
        assert cxr.render(sample.factors, sample.seed, size).image.shape == (size, size)
    s = skin.build_graph().sample(5)
    assert skin.render(s.factors, s.seed, 128).image.shape == (128, 128, 3)
    with pytest.raises(ValueError, match="between 128 and 512"):
        cxr.render(sample.factors, sample.seed, 64)


def test_intervene_recomputes_descendants_with_same_noise():
    graph = cxr.build_graph(effusion_device_strength=0.8, device_base_rate=0.1)
    # Find a sample with devices only because of its effusion (u between 0.1 and 0.9).
    for seed in range(500):
        sample = graph.sample(seed)
        u = sample.noise["support_devices"][0]
        if sample["effusion"] != "none" and 0.1 < u < 0.9:
            break
    assert sample["support_devices"]
    healed = graph.intervene(sample, effusion="none")
    assert healed["effusion_severity"] == 0.0
    assert not healed["support_devices"] and healed["devices"] == ()
    # Upstream and unrelated factors keep their values.
    for name in ("sex", "age", "habitus", "cardiomegaly", "ctr", "exposure", "rotation", "marker"):
        assert healed[name] == sample[name]
    # Setting the descendant explicitly keeps it (do() on both).
    kept = graph.intervene(sample, effusion="none", support_devices=True, devices=sample["devices"])
    assert kept["devices"] == sample["devices"]
    # Interventions accumulate.
    again = graph.intervene(healed, cardiomegaly=not sample["cardiomegaly"])
    assert again["effusion"] == "none" and set(again.interventions) == {"effusion", "cardiomegaly"}


def test_single_device_share_gives_that_share_one_kind_and_changes_nothing_else():
    def drawn_before(u):                     # the mechanism before the share existed, on the same noise
        present = [d for d, ui in zip(cxr.DEVICES, u[:4]) if ui < cxr.DEVICE_RATES[d]]
        return tuple(present or [cxr.DEVICES[min(int(u[4] * 4), 3)]])

    own, single = cxr.build_graph(), cxr.build_graph(single_device_share=0.5)
    pairs = [(own.sample(seed), single.sample(seed)) for seed in range(1500)]
    with_devices = [(a, b) for a, b in pairs if a["support_devices"]]
    assert len(with_devices) > 400
    assert all(a["devices"] == drawn_before(a.noise["devices"]) for a, _ in with_devices)     # share 0: as before
    assert all(b["devices"] == () for a, b in pairs if not a["support_devices"])
    assert all({k: v for k, v in a.factors.items() if k != "devices"} ==
               {k: v for k, v in b.factors.items() if k != "devices"} for a, b in pairs)
    alone = {kind: np.mean([b["devices"] == (kind,) for _, b in with_devices]) for kind in cxr.DEVICES}
    before = {kind: np.mean([a["devices"] == (kind,) for a, _ in with_devices]) for kind in cxr.DEVICES}
    assert sum(alone.values()) > 0.5 + 0.5 * sum(before.values()) - 0.06, alone
    assert min(alone.values()) > 0.11 and min(before.values()) < 0.08, (alone, before)
    assert single.parameters["single_device_share"] == 0.5
    with pytest.raises(ValueError, match=r"single_device_share must be in \[0, 1\), got 1.0"):
        cxr.build_graph(single_device_share=1.0)


def test_intervene_rejects_bad_values_with_clear_messages():
    graph = cxr.build_graph()
    sample = graph.sample(0)
    with pytest.raises(ValueError, match="unknown factor"):
        graph.intervene(sample, pneumothorax=True)
    with pytest.raises(ValueError, match="effusion must be one of"):
        graph.intervene(sample, effusion="both")
    with pytest.raises(ValueError, match="devices must be"):
        graph.intervene(sample, devices=("stent",))
    with pytest.raises(ValueError, match="strength"):
        cxr.build_graph(effusion_device_strength=0.95)
    with pytest.raises(ValueError, match="unknown phantom domain"):
        get_domain("mri")


def test_graph_declares_parents_before_children():
    with pytest.raises(ValueError, match="must be declared before"):
        CausalGraph("x", [Variable("b", ("a",), lambda p, u: 0, "binary", ""),
                          Variable("a", (), lambda p, u: 0, "binary", "")], {})
    graph = cxr.build_graph()
    assert ("effusion", "support_devices") in graph.edges()
    assert {"support_devices", "devices", "effusion_severity"} <= graph.descendants("effusion")


@pytest.mark.statistical                        # 10,000 samples each: a statistical check, in the full run
@pytest.mark.parametrize("domain", ["cxr", "skin"])
def test_planted_link_matches_configured_strength(domain):
    module = get_domain(domain)
    key = domains.get(domain).planted_link[0]
    strengths = (0.0, 0.2, 0.5)
    graphs = [module.build_graph(**{key: strength}) for strength in strengths]
    for strength, measured in zip(strengths, measure_planted_links(graphs, 10_000)):
        assert abs(measured["risk_difference"] - strength) <= 0.02, (strength, measured)
        assert measured["n"] == 10_000 and 0 < measured["n_cause"] < 10_000


def test_planted_links_of_several_graphs_are_those_of_each_graph_alone():
    graphs = [cxr.build_graph(effusion_device_strength=s) for s in (0.0, 0.5)]
    assert measure_planted_links(graphs, 200, first_seed=7) == [measure_planted_link(g, 200, 7) for g in graphs]
    with pytest.raises(ValueError, match="one domain only"):
        measure_planted_links([graphs[0], skin.build_graph()], 10)


def test_redrawn_render_noise_moves_only_that_component():
    from medviz.phantoms.render import redrawn

    graph = cxr.build_graph()
    sample = graph.intervene(graph.sample(5), support_devices=True, devices=("cvc", "pacemaker"))
    original = cxr.render(sample.factors, sample.seed, 128)
    with redrawn({"device-cvc": 99, "device-pacemaker": 99}):
        moved = cxr.render(sample.factors, sample.seed, 128)
    again = cxr.render(sample.factors, sample.seed, 128)
    assert np.array_equal(again.image, original.image)                  # the block leaves no trace
    differs = original.image != moved.image
    devices = (original.supports["cvc"] | original.supports["pacemaker"] | moved.supports["cvc"]
               | moved.supports["pacemaker"])
    assert differs.any() and not (differs & ~devices).any()  # the devices moved; nothing else did
    # A small jitter along the same anatomical path, not another device: most of the line stays put.
    overlap = (original.supports["cvc"] & moved.supports["cvc"]).sum() / original.supports["cvc"].sum()
    assert 0.2 < overlap < 1.0
