from dataclasses import replace

import numpy as np
import pytest

from medviz.engines import Interrupted
from medviz.engines.common import decode_latents, encode_image
from medviz.engines.counterfactual import (EditConfig, EditDefaults, counterfactual, edit_defaults, edit_prompts,
                                          measured_edit)
from medviz.metrics import change_metrics
from medviz.phantoms import get_domain

FAST = dict(steps=10, strength=0.5, mask_draws=2, seed=3)


def _phantom(effusion: bool, devices: bool = False, seed: int = 10_000_321, size: int = 128):
    cxr = get_domain("cxr")
    graph = cxr.build_graph()
    sample = graph.intervene(graph.sample(seed), effusion="bilateral" if effusion else "none", effusion_severity=0.8,
                             support_devices=devices)
    return cxr.render(sample.factors, sample.seed, size).image


def _psnr(a, b):
    return 10 * np.log10(1.0 / float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


def test_empty_edit_reconstructs_the_vae_round_trip_exactly(tiny_cxr):
    image = _phantom(True)
    round_trip = decode_latents(tiny_cxr.pipe, encode_image(tiny_cxr.pipe, image, 32))[0].mean(-1)
    result = counterfactual(tiny_cxr, image, EditConfig(mask_mode="none", **FAST))
    assert result.target_prompt == result.source_prompt
    assert image.shape == (128, 128) and result.counterfactual.shape == (32, 32)    # gray in, gray out, model size
    assert _psnr(result.counterfactual, round_trip) > 60                      # exact up to float rounding
    ddim = counterfactual(tiny_cxr, image, EditConfig(mask_mode="none", inversion="ddim", **FAST))
    assert _psnr(ddim.counterfactual, round_trip) < _psnr(result.counterfactual, round_trip)   # DDIM: approximate
    # Residual mode adds only the edit's change to the input: an empty edit returns the input itself,
    # which the decoded result (the round trip) does not.
    residual = counterfactual(tiny_cxr, image, EditConfig(mask_mode="none", residual=True, **FAST))
    assert _psnr(residual.counterfactual, result.input) > 60 > _psnr(result.counterfactual, result.input)
    edited = counterfactual(tiny_cxr, image, EditConfig(remove=("pleural_effusion",), mask_mode="none", residual=True,
                                                        **FAST))
    assert np.abs(edited.counterfactual - result.input).max() > 0.01           # a real edit still changes pixels


@pytest.mark.bundled
def test_ddim_inversion_reconstructs_approximately_on_the_bundled_model(cxr_model):
    image = _phantom(True)
    round_trip = decode_latents(cxr_model.pipe, encode_image(cxr_model.pipe, image, 128))[0].mean(-1)
    ddim = counterfactual(cxr_model, image, EditConfig(mask_mode="none", inversion="ddim", **FAST))
    assert 25 < _psnr(ddim.counterfactual, round_trip) < 60


def test_unet_passes_stay_within_three_per_step(tiny_cxr):
    config = EditConfig(remove=("pleural_effusion",), mask_mode="auto", **FAST)    # 5 edited steps, 2 mask draws
    result = counterfactual(tiny_cxr, _phantom(True), config)
    assert result.unet_passes == 5 + 2 + 2 * 5 <= 3 * config.steps
    ddim = counterfactual(tiny_cxr, _phantom(True), EditConfig(remove=("pleural_effusion",), inversion="ddim", **FAST))
    assert ddim.unet_passes == 5 + 2 * 2 + 2 * 5


def test_painted_mask_keeps_every_pixel_outside_it(tiny_cxr):
    image = _phantom(False, size=256)                                   # any size: edited at the model's 32 px
    painted = np.zeros((256, 256), bool)
    painted[150:240, 20:120] = True
    config = EditConfig(add=("pleural_effusion",), mask_mode="painted", change_threshold=0.0, **FAST)
    result = counterfactual(tiny_cxr, image, config, mask=painted)
    assert result.mask.shape == (32, 32) and result.mask[20:29, 4:14].all() and result.mask.mean() < 0.2
    outside = ~result.mask
    assert np.array_equal(result.counterfactual[outside], result.input[outside])
    assert result.l1_outside == 0.0 and result.ssim_outside > result.ssim_inside     # (7-px windows reach inside)
    assert np.abs(result.difference[outside]).max() == 0 and np.abs(result.difference[result.mask]).max() > 0.01
    # With a change threshold the painted region is narrowed to what the edit redrew.
    narrowed = counterfactual(tiny_cxr, image, replace(config, change_threshold=0.3), mask=painted)   # (a random UNet)
    assert np.array_equal(narrowed.mask, result.mask) and np.array_equal(result.edited, result.mask)
    assert 0 < narrowed.edited.sum() < narrowed.mask.sum() and not (narrowed.edited & ~narrowed.mask).any()
    assert np.array_equal(narrowed.counterfactual[~narrowed.edited], narrowed.input[~narrowed.edited])


def test_an_edit_that_changes_nothing_past_the_threshold_says_so(tiny_cxr):
    painted = np.ones((32, 32), bool)
    result = counterfactual(tiny_cxr, _phantom(False), EditConfig(add=("pleural_effusion",), mask_mode="painted",
                                                                  change_threshold=0.99, **FAST), mask=painted)
    assert not result.edited.any() and np.array_equal(result.counterfactual, result.input)
    assert any("changed no pixel by more than the change threshold 0.99" in w for w in result.warnings)


@pytest.mark.bundled
def test_the_composite_takes_only_the_pixels_the_edit_changed(cxr_model):
    cxr = get_domain("cxr")
    graph = cxr.build_graph()
    sample = graph.intervene(graph.sample(10_000_321), effusion="bilateral", effusion_severity=0.8)
    image = cxr.render(sample.factors, sample.seed, 128).image
    truth = cxr.render(graph.intervene(sample, effusion="none").factors, sample.seed, 128).image    # the SCM's
    config = EditConfig(remove=("pleural_effusion",), seed=0)
    whole = counterfactual(cxr_model, image, replace(config, change_threshold=0.0))    # the whole DiffEdit mask
    changed = counterfactual(cxr_model, image, config)                                 # the CXR default
    assert changed.parameters["change_threshold"] == edit_defaults("cxr").change_threshold > 0
    # Same edit and mask, fewer pixels taken from it: a subset of the mask; the rest is the input exactly.
    assert np.array_equal(changed.mask, whole.mask) and np.array_equal(whole.edited, whole.mask)
    assert 0 < changed.edited.sum() < 0.6 * changed.mask.sum() and not (changed.edited & ~changed.mask).any()
    assert np.array_equal(changed.counterfactual[~changed.edited], changed.input[~changed.edited])
    assert changed.readout_after["pleural_effusion"] < 0.5 < changed.readout_before["pleural_effusion"]
    # The VAE's round-trip error is no longer pasted over the whole mask: closer to the true counterfactual.
    l1 = {name: float(np.abs(r.counterfactual - truth).mean()) for name, r in [("whole", whole), ("changed", changed)]}
    assert l1["changed"] < l1["whole"] and l1["changed"] < float(np.abs(image - truth).mean())


@pytest.mark.bundled
def test_removing_an_effusion_lowers_its_readout_and_keeps_the_rest(cxr_model):
    config = EditConfig(remove=("pleural_effusion",), seed=0)                 # the defaults: 30 steps, strength 0.8
    result = counterfactual(cxr_model, _phantom(True), config)
    assert result.readout_before["pleural_effusion"] > 0.5 > result.readout_after["pleural_effusion"]
    assert (result.readout_after["female"] > 0.5) == (result.readout_before["female"] > 0.5)
    assert "no pleural effusion" in result.target_prompt and "pleural effusion" in result.source_prompt
    assert 0 < result.mask.mean() < 1 and result.mask_score.shape == (128, 128)
    assert result.parameters["seed"] == 0 and result.parameters["target_prompt"] == result.target_prompt
    assert result.parameters["guidance_scale"] == edit_defaults("cxr").guidance_scale   # the domain's, recorded


def test_guidance_defaults_per_domain_and_an_explicit_value_wins():
    assert EditConfig().for_domain("cxr").guidance_scale == 3.0
    assert EditConfig().for_domain("skin").guidance_scale == 6.0
    assert EditConfig().for_domain(None).guidance_scale == EditDefaults().guidance_scale == 6.0
    assert EditConfig(guidance_scale=7.5).for_domain("cxr").guidance_scale == 7.5
    with pytest.raises(ValueError, match="guidance scale must be >= 1"):
        EditConfig(guidance_scale=0.5).validate("cxr")
    # The automatic mask: tighter for a CXR edit that only adds, 0.4 for removals, free prompts and skin.
    assert EditConfig(add=("pleural_effusion",)).for_domain("cxr").mask_threshold == 0.6
    assert EditConfig(remove=("pleural_effusion",)).for_domain("cxr").mask_threshold == 0.4
    assert EditConfig(add=("ett",), remove=("pleural_effusion",)).for_domain("cxr").mask_threshold == 0.4
    assert EditConfig(add=("cvc",), target_prompt="Chest X-ray").for_domain("cxr").mask_threshold == 0.4
    assert EditConfig(add=("melanoma",)).for_domain("skin").mask_threshold == 0.4
    assert EditConfig(add=("ett",), mask_threshold=0.3).for_domain("cxr").mask_threshold == 0.3
    with pytest.raises(ValueError, match="mask_threshold must lie in"):
        EditConfig(mask_threshold=1.5).validate("cxr")
    # The change-restricted composite: on for CXR, off for skin and other checkpoints; 0 turns it off.
    assert EditConfig().for_domain("cxr").change_threshold == 0.04
    assert EditConfig().for_domain("skin").change_threshold == EditConfig().for_domain(None).change_threshold == 0
    assert EditConfig(change_threshold=0.0).for_domain("cxr").change_threshold == 0
    with pytest.raises(ValueError, match="change_threshold must lie in"):
        EditConfig(change_threshold=1.0).validate("cxr")
    # Skin edits start later in the trajectory, with fewer mask draws (within 3 x steps UNet passes).
    skin, cxr = EditConfig().for_domain("skin"), EditConfig().for_domain("cxr")
    assert (skin.strength, skin.mask_draws, cxr.strength, cxr.mask_draws) == (0.9, 8, 0.8, 10)
    assert EditConfig(strength=0.5, mask_draws=3).for_domain("skin").edit_steps == 15
    assert skin.edit_steps + skin.mask_draws + 2 * skin.edit_steps <= 3 * skin.steps      # the pass count


def test_prompts_from_the_readout():
    readout = {"pleural_effusion": 0.9, "cardiomegaly": 0.1, "support_devices": 0.95, "pacemaker": 0.9, "ett": 0.2,
               "cvc": 0.1, "ngt": 0.0, "female": 0.2}
    source, target = edit_prompts("cxr", readout, EditConfig(remove=("support_devices",)))
    assert source == "Chest X-ray of a male patient showing pleural effusion, support devices, pacemaker"
    assert target == "Chest X-ray of a male patient showing pleural effusion, no support devices"
    _, added = edit_prompts("cxr", {**readout, "support_devices": 0.0, "pacemaker": 0.0},
                            EditConfig(add=("support_devices",)))
    assert added == "Chest X-ray of a male patient showing pleural effusion, support devices"   # no device named
    assert edit_prompts("cxr", readout, EditConfig(target_prompt="Chest X-ray"))[1] == "Chest X-ray"
    with pytest.raises(ValueError, match="no oracle"):
        edit_prompts(None, None, EditConfig(target_prompt="x"))


@pytest.mark.parametrize("config, message", [
    (EditConfig(add=("ruler",)), "cannot edit"),
    (EditConfig(add=("cardiomegaly",), remove=("cardiomegaly",)), "both add and remove"),
    (EditConfig(strength=0.0), "strength"),
    (EditConfig(inversion="null-text"), "unknown inversion"),
])
def test_bad_requests_say_what_is_wrong(tiny_cxr, config, message):
    with pytest.raises(ValueError, match=message):
        counterfactual(tiny_cxr, _phantom(False), config)


def test_painted_mode_needs_a_painted_region(tiny_cxr):
    with pytest.raises(ValueError, match="paint"):
        counterfactual(tiny_cxr, _phantom(False), EditConfig(add=("pleural_effusion",), mask_mode="painted"),
                       mask=np.zeros((128, 128), bool))


def test_progress_and_stop(tiny_cxr):
    seen = []
    counterfactual(tiny_cxr, _phantom(False), EditConfig(add=("pleural_effusion",), **FAST),
                   progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] == 2 * 5 + 1 and len(seen) >= 5
    calls = []
    with pytest.raises(Interrupted):
        counterfactual(tiny_cxr, _phantom(False), EditConfig(add=("pleural_effusion",), **FAST),
                       should_stop=lambda: calls.append(1) or len(calls) > 3)


def test_change_metrics_inside_and_outside():
    before = np.zeros((32, 32), np.float32)
    after = before.copy()
    after[:16] = 0.5
    mask = np.zeros((32, 32), bool)
    mask[:16] = True
    l1_in, l1_out, ssim_in, ssim_out = change_metrics(before, after, mask)
    assert l1_in == pytest.approx(0.5) and l1_out == 0.0 and ssim_in < 0.5 < ssim_out
    assert np.isnan(change_metrics(before, after, np.ones((32, 32), bool))[1])


def test_skin_edits_keep_colour_and_name_the_artifact(tiny_skin):
    skin = get_domain("skin")
    graph = skin.build_graph()
    sample = graph.intervene(graph.sample(10_000_777), ruler=True, melanoma=False)
    image = skin.render(sample.factors, sample.seed, 128).image
    result = counterfactual(tiny_skin, image, EditConfig(remove=("ruler",), **FAST))
    assert result.counterfactual.shape == (32, 32, 3) and result.input.shape == (32, 32, 3)
    assert result.source_prompt.startswith("Dermoscopy image of a ")         # the random oracle reads the lesion
    assert result.target_prompt.endswith("no ruler markings") and "ruler" in result.readout_after
    with pytest.raises(ValueError, match="cannot edit"):
        counterfactual(tiny_skin, image, EditConfig(remove=("pleural_effusion",), **FAST))


CXR_SETTINGS = {"steps": 30, "strength": 0.8, "guidance_scale": 3.0, "mask_mode": "auto", "mask_threshold": 0.6,
                "mask_draws": 10, "change_threshold": 0.04}
BENCHED = {"edit_bench": {
    "add support devices": {"action": "add", "attributes": ["support_devices", "pacemaker", "ett", "cvc", "ngt"],
                            "faithfulness": 0.01, "settings": CXR_SETTINGS},
    "remove support devices": {"action": "remove", "attributes": ["support_devices"], "faithfulness": 0.99,
                               "settings": {**CXR_SETTINGS, "mask_threshold": 0.4}}}}


def test_measured_edit_finds_the_cards_record_of_the_edit_asked_for():
    def lookup(**request):
        return measured_edit(BENCHED, EditConfig(**request).for_domain("cxr"))

    # Adding a named device kind is the benched "add support devices" (its request names the kinds).
    found = lookup(add=("pacemaker",))
    assert found["edit"] == "add_support_devices" and found["faithfulness"] == 0.01 and found["same_settings"]
    assert lookup(remove=("support_devices",))["same_settings"]          # its own mask threshold, resolved
    assert lookup(add=("ett",))["differences"] == {}
    assert lookup(add=("ett",), strength=0.6)["differences"] == {"strength": (0.8, 0.6)}
    assert not lookup(add=("ett",), mask_mode="painted")["same_settings"]
    # Not benched: removing one kind, a free target prompt, two attributes at once, a card without records.
    assert lookup(remove=("pacemaker",)) is None
    assert lookup(add=("ett",), target_prompt="Chest X-ray with an ETT") is None
    # A record below a bar says so, in one sentence naming every bar it misses.
    missed = {name: {**record, "meets": {"effectiveness": False, "preservation_all": True, "faithfulness": False}}
              for name, record in BENCHED["edit_bench"].items()}
    assert measured_edit({"edit_bench": missed}, EditConfig(add=("ett",)).for_domain("cxr"))["warnings"] == [
        "On this model this edit often fails to make the change and rarely looks like this image's true "
        "counterfactual."]
    assert lookup(add=("ett",))["warnings"] == []
    assert lookup(add=("ett", "cvc")) is None and lookup(add=("pleural_effusion",)) is None
    assert measured_edit({}, EditConfig(add=("ett",)).for_domain("cxr")) is None


def test_an_edit_carries_the_record_of_the_model_it_ran_on(tiny_cxr):
    benched = replace(tiny_cxr, card={**tiny_cxr.card, **BENCHED})
    result = counterfactual(benched, _phantom(False, devices=True), EditConfig(remove=("support_devices",), **FAST))
    assert result.measured["edit"] == "remove_support_devices" and not result.measured["same_settings"]   # FAST
    bare = replace(tiny_cxr, card={k: v for k, v in tiny_cxr.card.items() if k != "edit_bench"})
    assert (
        counterfactual(bare, _phantom(False, devices=True), EditConfig(remove=("support_devices",), **FAST)).measured
        is None
    )
