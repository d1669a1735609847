import numpy as np
import pytest

from medviz.engines import Interrupted
from medviz.engines.generate import GenerateConfig, generate

PROMPT = "Chest X-ray of a female patient showing pleural effusion"


def test_fixed_seed_is_bit_identical_and_seeds_follow_a1111(tiny_cxr):
    config = GenerateConfig(PROMPT, batch_size=2, seed=41, steps=6)
    first, second = generate(tiny_cxr, config), generate(tiny_cxr, config)
    assert first.seeds == [41, 42]
    assert all(np.array_equal(a, b) for a, b in zip(first.images, second.images))
    other = generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=42, steps=6))
    # Image 1 of the batch is seed 42's image: the same up to batched-convolution rounding.
    np.testing.assert_allclose(other.images[0], first.images[1], atol=2e-3)
    assert not np.array_equal(first.images[0], first.images[1])
    assert first.image_parameters(1)["seed"] == 42 and first.image_parameters(1)["batch_size"] == 1


def test_random_seed_is_reported_and_reproduces(tiny_cxr):
    result = generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=None, steps=4))
    seed = result.parameters["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    again = generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=seed, steps=4))
    assert np.array_equal(result.images[0], again.images[0])


@pytest.mark.parametrize("scheduler", ["DDIM", "DPM-Solver++", "Euler ancestral"])
def test_every_scheduler_gives_contract_images_and_does_not_touch_the_model(tiny_cxr, scheduler):
    before = type(tiny_cxr.pipe.scheduler)
    result = generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=3, steps=5, scheduler=scheduler))
    image = result.images[0]
    assert image.shape == (32, 32, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0 and image.std() > 0
    assert type(tiny_cxr.pipe.scheduler) is before
    assert result.parameters["scheduler"] == scheduler and result.parameters["steps"] == 5


def test_progress_per_step_and_interrupt(tiny_cxr):
    seen = []
    generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=0, steps=5), progress=lambda d, t: seen.append((d, t)))
    assert seen == [(i, 5) for i in range(1, 6)]
    with pytest.raises(Interrupted, match="after 2 of 7 steps"):
        generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=0, steps=7),
                 should_stop=lambda: len(seen) >= 7, progress=lambda d, t: seen.append(d))


@pytest.mark.bundled
def test_prompt_steers_the_oracle_readout(cxr_model):
    with_effusion = generate(cxr_model, GenerateConfig(PROMPT, batch_size=4, seed=10, steps=12))
    without = generate(cxr_model, GenerateConfig("Chest X-ray of a female patient with no pleural effusion",
                                                 batch_size=4, seed=10, steps=12))
    assert np.mean([r["pleural_effusion"] for r in with_effusion.readouts]) > 0.7
    assert np.mean([r["pleural_effusion"] for r in without.readouts]) < 0.3


@pytest.mark.parametrize("change, message", [({"batch_size": 0}, "batch size"), ({"steps": 0}, "steps"),
                                             ({"scheduler": "PLMS"}, "unknown scheduler"), ({"seed": -1}, "seed")])
def test_bad_parameters_have_clear_messages(tiny_cxr, change, message):
    with pytest.raises(ValueError, match=message):
        generate(tiny_cxr, GenerateConfig(PROMPT, **change))


def _prompt_record(**settings):
    """A models-bench card record (``medviz.bench.models.card_record``) with one row per attribute and polarity."""
    def row(attribute, wanted, agreement, prompt):
        return {"attribute": attribute, "wanted": wanted, "agreement": agreement, "prompt": prompt,
                "diversity_ratio": 0.9, "meets": {"agreement": agreement >= 0.9, "diversity_ratio": True}}

    return {"rows": [row("pleural_effusion", True, 0.97, "Chest X-ray showing pleural effusion"),
                     row("pleural_effusion", False, 1.0, "Chest X-ray with no pleural effusion"),
                     row("support_devices", True, 0.98, "Chest X-ray showing support devices"),
                     row("female", True, 1.0, "Chest X-ray of a female patient"),
                     row("female", False, 1.0, "Chest X-ray of a male patient")],
            "n": 64, "bars": {"agreement": 0.9, "diversity_ratio": 0.5}, "date": "2026-12-03",
            "settings": {"steps": 25, "guidance_scale": 4.0, "scheduler": "DDIM", "negative_prompt": "", **settings}}


def test_measured_prompt_finds_the_rows_of_what_the_prompt_names():
    from medviz.engines.generate import measured_prompt

    card = {"models_bench": _prompt_record()}
    found = measured_prompt(
        card, "cxr", GenerateConfig("Chest X-ray of a male patient showing pleural effusion, pacemaker")
    )
    assert [(r["attribute"], r["wanted"], r["phrase"]) for r in found["rows"]] == [
        ("pleural_effusion", True, "pleural effusion"), ("support_devices", True, "support devices"),
        ("female", False, "male")]
    assert found["unmeasured"] == ["pacemaker"]           # a device kind: the bench asked only the generic phrase
    assert found["warnings"] == []
    assert found["same_settings"] and found["n"] == 64 and found["date"] == "2026-12-03"
    negated = measured_prompt(card, "cxr", GenerateConfig("Chest X-ray with no pleural effusion", steps=50,
                                                          negative_prompt="blurry"))
    assert [(r["attribute"], r["wanted"], r["phrase"]) for r in negated["rows"]] == [
        ("pleural_effusion", False, "no pleural effusion")]
    assert negated["differences"] == {"steps": (25, 50), "negative_prompt": ("", "blurry")}
    assert measured_prompt(card, "cxr", GenerateConfig("Chest X-ray"))["rows"] == []
    # No record, or a checkpoint of unknown domain (no phantoms to measure it on): nothing to say.
    assert measured_prompt({}, "cxr", GenerateConfig(PROMPT)) is None
    assert measured_prompt(card, None, GenerateConfig(PROMPT)) is None


def test_a_generation_carries_its_cards_prompt_figures(tiny_cxr):
    result = generate(tiny_cxr, GenerateConfig(PROMPT, batch_size=1, seed=0, steps=2))
    assert [(r["attribute"], r["wanted"]) for r in result.measured["rows"]] == [
        ("pleural_effusion", True), ("female", True)]


def test_measured_prompt_warns_of_rows_below_a_bar_in_the_prompts_words():
    from medviz.engines.generate import measured_prompt

    record = _prompt_record()
    record["rows"][1].update(agreement=0.75, diversity_ratio=0.3)          # "no pleural effusion"
    record["rows"][4].update(agreement=0.5)                                 # "male"
    found = measured_prompt({"models_bench": record}, "cxr",
                            GenerateConfig("Chest X-ray of a male patient with no pleural effusion"))
    assert found["warnings"] == [
        "On this model, asked for no pleural effusion, it still drew pleural effusion in 25% of samples; asked for no "
        "pleural effusion, its samples were much alike (diversity 0.30 of the phantoms'); asked for male, it drew it "
        "in only 50% of samples."]
