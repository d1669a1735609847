import numpy as np
import pytest

from medviz.models import MODELS_DIR
from medviz.oracle import load_oracle
from medviz.phantoms.effects import true_effects


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
