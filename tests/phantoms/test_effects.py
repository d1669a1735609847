import numpy as np
import pytest

from medviz import domains
from medviz.models import MODELS_DIR
from medviz.oracle import load_oracle
from medviz.phantoms import get_domain
from medviz.phantoms.effects import link_parameters, switched, true_effects


def test_the_true_effect_of_devices_is_on_the_device_readout_and_not_on_the_heart():
    oracle = load_oracle(MODELS_DIR / "cxr-oracle", "cxr")
    devices, heart = (oracle.attributes.index(a) for a in ("support_devices", "cardiomegaly"))
    effects = true_effects("cxr", "support_devices", lambda images: oracle.readout(images)[:, devices],
                           range(10_000_000, 10_000_012), 128)
    assert effects["effect"].shape == (12,) and effects["present"].dtype == bool
    assert np.allclose(effects["effect"], effects["on"] - effects["off"])
    assert effects["effect"].mean() > 0.8                                 # switching devices on reads as devices
    on_heart = true_effects("cxr", "support_devices", lambda images: oracle.readout(images)[:, heart],
                            range(10_000_000, 10_000_012), 128)
    assert np.abs(on_heart["effect"]).mean() < 0.1                        # and leaves the heart's readout alone
    # One of each pair is the phantom itself, as drawn: its score is the phantom's own.
    from medviz.phantoms import get_domain

    module = get_domain("cxr")
    sample = module.build_graph().sample(10_000_000)
    own = oracle.readout([module.render(sample.factors, sample.seed, 128).image])[0, devices]
    assert own == pytest.approx((effects["on"] if effects["present"][0] else effects["off"])[0], rel=1e-3, abs=1e-6)


@pytest.mark.parametrize("domain, attribute, other", [("cxr", "pleural_effusion", "support_devices"),
                                                      ("skin", "melanoma", "ruler")])
def test_a_held_switch_changes_one_attribute_where_do_would_change_its_effect_too(domain, attribute, other):
    graph = get_domain(domain).build_graph(**link_parameters(domain, 0.9))
    attributes_of = domains.get(domain).attributes_of
    moved_without_hold = 0
    for seed in range(60):
        sample = graph.sample(seed)
        before = attributes_of(sample.factors)
        on = not before[attribute]
        held = attributes_of(switched(domain, graph, sample, attribute, on, hold=(other,)).factors)
        assert held[attribute] == on and held[other] == before[other]
        moved_without_hold += (
            attributes_of(switched(domain, graph, sample, attribute, on).factors)[other] != before[other]
        )
    assert moved_without_hold > 10  # the planted link: do(attribute) alone drags its effect along
