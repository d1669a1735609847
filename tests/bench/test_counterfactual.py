import pytest

from medviz.bench.__main__ import main


def test_unknown_edit_type_is_refused_with_the_known_ones():
    with pytest.raises(SystemExit, match="unknown edit type 'add cats'; known: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "add cats"])


def test_an_edit_of_another_domain_is_refused_instead_of_an_empty_table():
    with pytest.raises(SystemExit, match="no edit of --domain cxr among remove ruler; cxr edits: add pleural effusion"):
        main(["counterfactual", "--domain", "cxr", "--edit", "remove ruler"])


def test_a_model_folder_is_benched_on_its_own_domains_edits_only():
    with pytest.raises(ValueError, match="one domain's pipeline, but the edits span cxr and skin"):
        main(["counterfactual", "--domain", "all", "--model", "cxr-phantom"])
    # The bundled CXR pipeline given for skin edits is refused once loaded, before any edit runs.
    with pytest.raises(ValueError, match="'cxr-phantom' is a cxr pipeline; the edits are skin edits"):
        main(["counterfactual", "--domain", "skin", "--edit", "remove ruler", "--model", "cxr-phantom"])


def test_ceilings_redraw_only_unseen_noise_and_go_through_the_models_own_vae(cxr_model):
    import numpy as np

    from medviz.bench.counterfactual import decoder_ceiling, eligible_seeds, redrawn_truths, true_counterfactual
    from medviz.engines.counterfactual import EditConfig

    seed = eligible_seeds("add support devices", 1, 10_000_000)[0]                # a phantom without devices
    before, after, changed, truth = true_counterfactual("cxr", seed, "add support devices", 128)
    assert redrawn_truths("cxr", "add pleural effusion", truth, 128) == []      # nothing unseen to draw
    draws = redrawn_truths("cxr", "add support devices", truth, 128, draws=3)
    assert len(draws) == 3 and not np.array_equal(draws[0], draws[1])
    devices = np.zeros_like(changed)
    for name in truth.factors["devices"]:
        devices |= after.supports[name]
    for draw in draws:                           # the devices wander a little; the rest of the phantom is the truth
        differs = draw != after.image
        assert differs.any() and not (differs & ~_grown(devices)).any()
    engine = EditConfig(add=("support_devices",)).for_domain("cxr")
    ceiling = decoder_ceiling(cxr_model, before.image, after.image, changed, engine)
    assert ceiling.shape == (128, 128, 3) and 0 <= ceiling.min() and ceiling.max() <= 1
    # Outside the true change (grown to latent cells) the input comes back exactly; inside, the truth's decode.
    cells = _grown(changed, 4)
    assert np.array_equal(ceiling[..., 0][~cells], before.image[~cells])
    assert np.abs(ceiling.mean(-1) - after.image).mean() < np.abs(before.image - after.image).mean()


def _grown(mask, cell=None):
    import numpy as np
    from scipy.ndimage import binary_dilation

    if cell is None:                             # a few px of path jitter
        return binary_dilation(mask, iterations=4)
    cells = mask.reshape(mask.shape[0] // cell, cell, -1, cell).any(axis=(1, 3))
    return np.kron(cells, np.ones((cell, cell), bool)).astype(bool)
