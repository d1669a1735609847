"""The models bench's VAE round trip: the oracle's readout of phantoms after encode -> decode."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medviz.models import MODELS_DIR  # noqa: E402

needs_models = pytest.mark.skipif(not (MODELS_DIR / "cxr-phantom").is_dir(), reason="bundled models not present")


def test_caption_conditional_reads_prompts_as_the_training_captions_do():
    from medviz import domains
    from medviz.bench.models import FIDELITY_PROMPTS
    from medviz.prompts import caption_conditional

    # Unnamed findings are absent, an unnamed sex is free, named devices fix only what is named.
    female = caption_conditional("cxr", "Chest X-ray of a female patient")
    assert female["female"] is True and not any(v for k, v in female.items() if k != "female")
    assert caption_conditional("cxr", "Chest X-ray of a male patient")["female"] is False
    effusion = caption_conditional("cxr", "Chest X-ray showing pleural effusion")
    assert effusion["pleural_effusion"] is True and effusion["cardiomegaly"] is False and "female" not in effusion
    devices = caption_conditional("cxr", "Chest X-ray showing support devices")
    assert devices["support_devices"] is True and "pacemaker" not in devices
    named = caption_conditional("cxr", "Chest X-ray with a pacemaker and no cardiomegaly")
    assert named["pacemaker"] is True and named["support_devices"] is True and named["cardiomegaly"] is False
    assert "ett" not in named
    no_devices = caption_conditional("cxr", "Chest X-ray with no support devices")
    assert not any(no_devices[k] for k in ("support_devices", "pacemaker", "ett", "cvc", "ngt"))
    skin = caption_conditional("skin", "Dermoscopy image of a benign nevus with hair")
    assert skin == {"melanoma": False, "ruler": False, "hair": True, "gel_bubbles": False, "ink": False,
                    "vignette": False}
    # Every fidelity prompt fixes its own row's attribute as asked, and only oracle attributes.
    for domain, rows in FIDELITY_PROMPTS.items():
        for attribute, pair in rows.items():
            for wanted, prompt in zip((True, False), pair):
                fixed = caption_conditional(domain, prompt)
                assert fixed[attribute] is wanted and set(fixed) <= set(domains.get(domain).oracle_labels)


@pytest.mark.bundled
@needs_models
def test_vae_round_trip_measures_what_the_decoder_keeps(cxr_model):
    import copy

    from medviz import domains
    from medviz.bench.models import print_round_trips, vae_round_trip
    from medviz.train.data import render_phantoms

    labels = domains.get("cxr").oracle_labels
    images, factors = render_phantoms("cxr", 12, 128, 10_000_000 + 900_000, workers=1)
    truth = np.array([[domains.get("cxr").attributes_of(f)[k] for k in labels] for f in factors])
    oracle = cxr_model.oracle.model
    bundled = vae_round_trip(cxr_model.pipe.vae, oracle, images, truth, labels)
    assert set(bundled["attributes"]) == set(labels)
    effusion = bundled["attributes"]["pleural_effusion"]
    assert effusion["n_positive"] == int(truth[:, 0].sum()) > 0
    assert effusion["recall"] == 1.0 and bundled["attributes"]["female"]["specificity"] == 1.0
    assert bundled["psnr_db"] > 30.0
    # A decoder that draws nothing (flat gray) reads as the same finding for every image, so
    # recall and specificity cannot both hold: the measure is not vacuous.
    blank = copy.deepcopy(cxr_model.pipe.vae)
    with torch.no_grad():
        blank.decoder.conv_out.weight.zero_()
        blank.decoder.conv_out.bias.zero_()
    broken = vae_round_trip(blank, oracle, images, truth, labels)
    assert broken["psnr_db"] < 15.0
    balanced = {name: [(a["recall"] + a["specificity"]) / 2 for a in trip["attributes"].values()]
                for name, trip in (("bundled", bundled), ("blank", broken))}
    assert all(value == 0.5 for value in balanced["blank"] if not np.isnan(value))
    large = [labels.index(name) for name in ("pleural_effusion", "cardiomegaly", "female")]
    assert all(balanced["bundled"][k] == 1.0 for k in large if not np.isnan(balanced["bundled"][k]))
    result = {"domain": "cxr", "config": {"n_reference": len(images)},
              "vae_round_trip": {"bundled": bundled, "/tmp/blank-vae": broken}}
    print_round_trips(result)


def test_decode_matches_the_pipelines_own_output(tiny_cxr):
    """The bench generates latents once and decodes them with each VAE: with the pipeline's own VAE that must be
    exactly what the pipeline itself returns, so a candidate's row differs from the bundled one only by its decoder."""
    from medviz.bench.models import _decode

    pipe = tiny_cxr.pipe
    ask = dict(num_inference_steps=2, guidance_scale=4.0, height=32, width=32)
    latents = pipe(["Chest X-ray showing support devices"] * 2, generator=torch.Generator().manual_seed(3),
                   output_type="latent", **ask).images
    direct = pipe(["Chest X-ray showing support devices"] * 2, generator=torch.Generator().manual_seed(3),
                  output_type="np", **ask).images
    ours = _decode(pipe, pipe.vae, latents)
    assert ours.shape == (2, 32, 32, 3) and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - (np.clip(direct, 0, 1) * 255).round().astype(int)).max() <= 1
    assert ours.std() > 0           # an image, not a flat field


@pytest.mark.bundled
@needs_models
def test_contact_sheet_puts_each_prompts_samples_beside_real_phantoms(cxr_model, tmp_path):
    from PIL import Image

    from medviz.bench.models import FIDELITY_PROMPTS, SheetLayout, contact_sheet

    out = contact_sheet(cxr_model.pipe, "cxr", str(tmp_path / "sheet.png"), "cxr-phantom",
                        SheetLayout(per_prompt=2, real=1, steps=2, pool=80))
    sheet = np.asarray(Image.open(out).convert("L"), dtype=np.float32)
    # One row per prompt (eight for cxr) and a column per image (three): a tall sheet that holds
    # pictures (bright lungs and bones on the black page), not a blank canvas.
    assert len(FIDELITY_PROMPTS["cxr"]) == 4
    assert sheet.shape[0] > 1.6 * sheet.shape[1]
    assert sheet.std() > 20 and (sheet > 100).mean() > 0.1
    with pytest.raises(ValueError, match="phantoms fit"):
        contact_sheet(cxr_model.pipe, "cxr", str(tmp_path / "too_many.png"), "cxr-phantom",
                      SheetLayout(per_prompt=1, real=20, steps=1, pool=20))
    # Samples the bench already generated are shown as they are: nothing is sampled again (this "pipeline"
    # cannot be called), and a row holds exactly the first ``per_prompt`` of them.
    from types import SimpleNamespace

    prompts = [p for pair in FIDELITY_PROMPTS["cxr"].values() for p in pair]
    given = {p: np.full((5, 128, 128, 3), 255, np.uint8) for p in prompts}
    frozen = SimpleNamespace(unet=cxr_model.pipe.unet, vae_scale_factor=cxr_model.pipe.vae_scale_factor)
    reused = contact_sheet(frozen, "cxr", str(tmp_path / "reused.png"), "cxr-phantom",
                           SheetLayout(per_prompt=2, real=1, pool=80), samples=given)
    white = np.asarray(Image.open(reused).convert("L"), dtype=np.float32)
    assert white.shape == sheet.shape and (white > 250).mean() > (sheet > 250).mean() + 0.2


def test_models_bench_refuses_a_sheet_without_samples():
    from medviz.bench.__main__ import main

    for only in ("--round-trip-only", "--paraphrases"):
        with pytest.raises(SystemExit, match="--sheet draws the fidelity prompts' or the device kinds' samples"):
            main(["models", "--domain", "cxr", only, "--sheet", "x.png"])


def test_models_table_shows_each_prompts_line_shapes_beside_the_phantoms(capsys):
    from medviz.bench.models import print_table

    trip = {"psnr_db": 32.0, "attributes": {"hair": {"n_positive": 10, "recall": 1.0, "specificity": 1.0}}}
    lines = {"junctions_per_100px": 3.31, "segment_px": 14.4, "straightness": 0.922, "line_px": 1136.0}
    real = {"junctions_per_100px": 1.83, "segment_px": 18.6, "straightness": 0.940, "line_px": 682.0}
    row = {"attribute": "hair", "prompt": "Dermoscopy image of a benign nevus with hair", "wanted": True,
           "agreement": 1.0, "fits_all": 0.98, "diversity_ratio": 1.05, "n_matching": 166,
           "diversity_ratio_named_only": 0.9, "lines": lines, "lines_real": real}
    result = {"domain": "skin", "config": {"n_reference": 10, "n": 64, "steps": 25, "guidance_scale": 4.0},
              "vae_round_trip": {"bundled": trip}, "rows": [row], "fd_generated_vs_held_out": 263.6,
              "fd_blurred_held_out_vs_held_out": 290.5, "fd_held_out_half_vs_half": 5.0,
              "generation_seconds": 999.0, "images_generated": 64}
    print_table(result)
    printed = capsys.readouterr().out
    shapes = next(line for line in printed.splitlines() if line.startswith(row["prompt"]) and "(1.83)" in line)
    assert shapes.split()[-8:] == ["3.31", "(1.83)", "14.4", "(18.6)", "0.922", "(0.940)", "1136", "(682)"]


@pytest.mark.bundled
@needs_models
def test_device_kinds_ask_each_kind_alone_and_read_the_phantoms_given_exactly_it(cxr_model, capsys, tmp_path):
    from PIL import Image

    from medviz import domains
    from medviz.bench.models import ModelsBenchConfig, device_kinds, print_table

    config = ModelsBenchConfig(domain="cxr", n=3, steps=2, device_kinds=True, sheet=str(tmp_path / "kinds.png"))
    rows = device_kinds(cxr_model.pipe, cxr_model.oracle.model, config, 128)
    assert [r["kind"] for r in rows] == list(domains.get("cxr").kinds("support_devices"))
    assert rows[2]["prompt"] == "Chest X-ray showing support devices, central venous line"
    for row in rows:
        # Phantoms given exactly one device: the oracle reads that kind and no other, so whatever other kind
        # the samples show is the model's, not the oracle's.
        assert row["phantoms"] == {k: float(k == row["kind"]) for k in domains.get("cxr").kinds("support_devices")}
        assert all(v in (0.0, 1 / 3, 2 / 3, 1.0) for v in row["generated"].values())
        # The phantoms' lines less their twins' without devices: the device alone (bright catheters, some px).
        assert row["lines_real"]["line_px"] > 20 and set(row["lines"]) == set(row["lines_real"])
    # The sheet: a row per kind asked, 3 samples (the same noise in each column) beside 2 phantoms given it.
    sheet = np.asarray(Image.open(config.sheet).convert("L"), dtype=np.float32)
    assert 1.3 < sheet.shape[1] / sheet.shape[0] < 1.6 and sheet.std() > 20 and (sheet > 100).mean() > 0.1
    print_table({"domain": "cxr", "config": config.__dict__, "rows": [], "vae_round_trip": {}, "device_kinds": rows})
    out = capsys.readouterr().out
    assert "kind asked" in out and "(100%)" in out and out.count("\ncvc ") == 1
    assert "thin bright lines, generated (phantoms given exactly that device; each image's lines less those" in out
    with pytest.raises(ValueError, match="CXR measurement"):
        device_kinds(cxr_model.pipe, cxr_model.oracle.model, ModelsBenchConfig(domain="skin", device_kinds=True), 128)


def test_paraphrases_are_read_as_asked_and_tabled_per_attribute(tiny_skin, capsys, monkeypatch):
    from medviz.bench import models
    from medviz.bench.paraphrases import paraphrases

    chosen = [row for row in paraphrases("skin") if row[0] == "ruler"]          # 5 asked present, 2 absent
    monkeypatch.setattr(models, "paraphrases", lambda domain: chosen)
    config = models.ModelsBenchConfig(domain="skin", n=2, steps=1, paraphrases=True)
    rows = models.paraphrase_rows(tiny_skin.pipe, tiny_skin.oracle.model, config, 32)
    assert [(r["attribute"], r["prompt"], r["asked"]) for r in rows] == chosen
    assert all(r["as_asked"] in (0.0, 0.5, 1.0) for r in rows)
    result = {"domain": "skin", "config": config.__dict__, "rows": [], "vae_round_trip": {}, "paraphrases": rows}
    models.print_table(result)                          # what main prints first: nothing for a paraphrase run
    assert capsys.readouterr().out == ""
    models.print_paraphrases(result)
    out = capsys.readouterr().out
    assert "worded unlike the training captions (2 samples each)" in out
    assert "ruler             present  5 prompts:" in out and "ruler             absent   2 prompts:" in out


def test_device_kinds_refuse_the_skin_domain():
    from medviz.bench.__main__ import main

    with pytest.raises(SystemExit, match="--device-kinds is a CXR measurement"):
        main(["models", "--domain", "skin", "--device-kinds"])


def _models_result(agreement_hair=0.03):
    trip = {"psnr_db": 28.8, "attributes": {"hair": {"n_positive": 212, "recall": 0.0, "specificity": 1.0}}}
    rows = [{"attribute": "hair", "prompt": "Dermoscopy image of a benign nevus with hair", "wanted": True,
             "agreement": agreement_hair, "fits_all": 0.03, "diversity_ratio": 0.83, "n_matching": 166,
             "diversity_ratio_named_only": 0.18, "lines": {"junctions_per_100px": 3.0}, "lines_real": {}},
            {"attribute": "hair", "prompt": "Dermoscopy image of a benign nevus with no hair", "wanted": False,
             "agreement": 1.0, "fits_all": 1.0, "diversity_ratio": 0.4, "n_matching": 248,
             "diversity_ratio_named_only": 0.1}]
    from medviz.bench.models import ModelsBenchConfig

    return {"domain": "skin", "config": ModelsBenchConfig(domain="skin").__dict__, "rows": rows,
            "fd_generated_vs_held_out": 398.2, "fd_blurred_held_out_vs_held_out": 290.5,
            "fd_held_out_half_vs_half": 5.0, "vae_round_trip": {"bundled": trip}, "scheduler": "DDIMScheduler"}


def test_models_card_record_keeps_the_figures_the_bars_they_meet_and_the_settings():
    from medviz.bench.models import card_record

    record = card_record(_models_result(), "2026-12-03", "python -m medviz.bench models --domain skin --write-card")
    hair, no_hair = record["rows"]
    assert hair["meets"] == {"agreement": False, "diversity_ratio": True}
    assert no_hair["meets"] == {"agreement": True, "diversity_ratio": False}
    assert record["bars"] == {"agreement": 0.9, "diversity_ratio": 0.5}
    assert record["settings"] == {"steps": 25, "guidance_scale": 4.0, "scheduler": "DDIM", "negative_prompt": ""}
    assert record["n"] == 64 and record["n_reference"] == 512 and record["vae_round_trip"]["psnr_db"] == 28.8
    assert hair["lines"] == {"junctions_per_100px": 3.0} and record["date"] == "2026-12-03"
    # A pipeline whose own scheduler the Generate tab has no name for keeps its class name.
    assert card_record({**_models_result(), "scheduler": "PNDMScheduler"}, "d", "c")["settings"]["scheduler"] == \
        "PNDMScheduler"


@pytest.mark.parametrize("args, message", [
    (["--round-trip-only"], "a full run"), (["--vae", "runs/x"], "candidate VAE"),
    (["--n", "8"], "at least 64 samples per prompt, not 8"), (["--steps", "10"], "this run sets steps"),
    (["--guidance-scale", "2"], "this run sets guidance_scale"),
    (["--model", "runs/x"], "name the model's --domain"), (["--paraphrases"], "a full run"),
    (["--oracle", "runs/judge"], "--oracle names another")])
def test_models_write_card_refuses_what_a_card_must_not_hold(args, message):
    from medviz.bench.__main__ import main

    domain = [] if "--model" in args else ["--domain", "cxr"]
    with pytest.raises(SystemExit, match=f"--write-card: .*{message}"):
        main(["models", *domain, *args, "--write-card"])


def test_models_write_card_puts_the_run_in_its_models_card(tmp_path, monkeypatch):
    import json
    import shutil

    from medviz.bench.__main__ import main
    from medviz.bench.cards import CALIBRATION_HEADING, EDIT_BENCH_HEADING, MODELS_BENCH_HEADING

    card = tmp_path / "skin-phantom"
    card.mkdir()
    for name in ("medviz.json", "README.md"):
        shutil.copy2(MODELS_DIR / "skin-phantom" / name, card / name)
    before = (card / "README.md").read_text()
    monkeypatch.setattr("medviz.models.MODELS_DIR", tmp_path)
    # Through the CLI, with the bench's run (64 samples per prompt) stood in for by its result.
    monkeypatch.setattr("medviz.bench.models.run", lambda config, progress=None: _models_result(0.25))
    monkeypatch.setattr("medviz.bench.models.print_table", lambda result: None)
    main(["models", "--domain", "skin", "--write-card"])
    stored = json.loads((card / "medviz.json").read_text())
    assert stored["models_bench"]["rows"][0]["agreement"] == 0.25
    assert stored["models_bench"]["command"] == "python -m medviz.bench models --domain skin --write-card"
    assert "edit_bench" in stored and "explain_calibration" in stored                 # the rest of the card stays
    text = (card / "README.md").read_text()
    section = text.split(MODELS_BENCH_HEADING)[1].split("\n## ")[0]
    assert "| hair | Dermoscopy image of a benign nevus with hair | **25.0%** | 3.0% | 0.83 (166) | 0.18 |" in section
    assert "| 100.0% | 100.0% | **0.40** (248) | 0.10 |" in section and "bold: below its bar" in section
    assert "PSNR 28.8 dB" in section and "| hair | 212 | 0.0% | 100.0% |" in section
    assert "`python -m medviz.bench models --domain skin --write-card`" in section
    for heading in (CALIBRATION_HEADING, EDIT_BENCH_HEADING, "## Limits"):          # other sections untouched
        assert text.split(heading)[1] == before.split(heading)[1]


@needs_models
def test_models_bench_refuses_an_oracle_that_reads_other_labels(tmp_path):
    from medviz import domains
    from medviz.bench.models import ModelsBenchConfig, run
    from medviz.train.architectures import PRESETS, make_oracle

    make_oracle(PRESETS["tiny"], domains.get("cxr").oracle_labels, "convnext").save_pretrained(str(tmp_path / "judge"))
    with pytest.raises(ValueError, match="the oracle reads .*'pleural_effusion'.*not the skin labels"):
        run(ModelsBenchConfig(domain="skin", n=1, steps=1, oracle=str(tmp_path / "judge")))


def test_attributes_pick_rows_and_keep_the_card_out():
    from medviz.bench.models import ModelsBenchConfig, card_problem, fidelity_prompts

    picked = fidelity_prompts(ModelsBenchConfig(domain="skin", attributes=("ink",)))
    assert picked == {"ink": ("Dermoscopy image of a benign nevus with ink markings",
                              "Dermoscopy image of a benign nevus with no ink markings")}
    every = ["melanoma", "ruler", "hair", "gel_bubbles", "ink", "vignette"]      # every skin attribute (issue 52)
    assert list(fidelity_prompts(ModelsBenchConfig(domain="skin"))) == every
    with pytest.raises(ValueError, match="--attributes: pacemaker not among the skin rows"):
        fidelity_prompts(ModelsBenchConfig(domain="skin", attributes=("pacemaker",)))
    assert "drop --attributes" in card_problem(ModelsBenchConfig(domain="skin", attributes=("ink",)))


def test_a_vae_for_another_side_is_read_at_the_oracles_side_beside_its_own_phantoms():
    """Issue 52's f = 8 VAE codes 256-px images for a 128-px oracle: its round trip of the same seeds rendered at its
    side is box-reduced for the oracle, beside those phantoms reduced the same way (the ceiling), and its structure
    PSNR is given on both grids; generation with it is refused, its latents are not the pipeline's."""
    from dataclasses import replace

    from medviz import domains
    from medviz.bench.models import ModelsBenchConfig, _other_vae_round_trip, print_round_trips
    from medviz.train.architectures import PRESETS, make_oracle, make_vae
    from medviz.train.data import render_phantoms
    from medviz.train.oracle import HELD_OUT_FIRST_SEED

    tiny = PRESETS["tiny"]
    labels = domains.get("skin").oracle_labels
    oracle = make_oracle(tiny, labels).eval()                       # reads 32-px images
    vae = make_vae(replace(tiny, image_size=64)).eval()             # codes 64-px ones
    images, factors = render_phantoms("skin", 6, 32, HELD_OUT_FIRST_SEED + 500_000, workers=1)
    truth = np.array([[domains.get("skin").attributes_of(f)[k] for k in labels] for f in factors])
    config = ModelsBenchConfig(domain="skin", vae="/tmp/vae-64", round_trip_only=True, n_reference=6)
    masks = np.zeros(images.shape[:3], np.uint8)
    rows = _other_vae_round_trip(config, vae, oracle, (images, truth, masks), 32)
    assert list(rows) == ["phantoms at 64 px", "/tmp/vae-64"]
    assert rows["phantoms at 64 px"]["psnr_db"] is None and np.isfinite(rows["/tmp/vae-64"]["psnr_db"])
    for row in rows.values():
        assert [a["n_positive"] for a in row["attributes"].values()] == [int(v) for v in truth.sum(0)]
        assert all(0.0 <= a["specificity"] <= 1.0 for a in row["attributes"].values() if not np.isnan(a["specificity"]))
    skin_structures = ("hair", "ruler", "ink", "bubbles")
    assert list(rows["/tmp/vae-64"]["structure_psnr_db"]) == list(skin_structures)
    assert list(rows["/tmp/vae-64"]["structure_psnr_db_at_64_px"]) == list(skin_structures)
    same_side = _other_vae_round_trip(config, make_vae(tiny).eval(), oracle, (images, truth, masks), 32)
    assert all(np.isnan(v) for v in same_side["/tmp/vae-64"]["structure_psnr_db"].values())     # no structure drawn
    assert list(same_side) == ["/tmp/vae-64"]
    with pytest.raises(ValueError, match="--round-trip-only"):
        _other_vae_round_trip(replace(config, round_trip_only=False), vae, oracle, (images, truth, masks), 32)
    print_round_trips({"domain": "skin", "config": {"n_reference": 6}, "vae_round_trip": {"bundled": same_side[
        "/tmp/vae-64"], **rows}})


def test_structure_psnr_is_the_error_on_each_structures_pixels_only():
    from medviz.bench.models import structure_psnr

    images = np.full((2, 16, 16, 3), 100, np.uint8)
    masks = np.zeros((2, 16, 16), np.uint8)
    masks[0, 8, :] = 1                      # image 0: a line of structure 0
    masks[1, :, 3] = 2                      # image 1: a line of structure 1
    decoded = images.copy()
    decoded[0, 7:10, :] = 100 + 51          # the line and its 1-px neighbours off by 0.2: PSNR 20 log10(5) = 13.98 dB
    decoded[1, 12:, 12:] = 0                # an error far from structure 1: not counted
    psnr = structure_psnr(decoded, images, masks, ("line", "column", "absent"))
    assert psnr["line"] == pytest.approx(13.98, abs=0.01)
    assert psnr["column"] == pytest.approx(100.0)          # exact on its pixels (the 1e-10 floor)
    assert np.isnan(psnr["absent"])


def test_twin_phantoms_change_what_is_asked_and_keep_the_rest():
    from medviz.bench.models import POOL_FIRST_SEED, twin_phantoms
    from medviz.metrics import thin_line_shapes
    from medviz.phantoms import get_domain
    from medviz.train.data import render_phantoms

    graph = get_domain("skin").build_graph()
    seeds = [s for s in range(POOL_FIRST_SEED, POOL_FIRST_SEED + 60) if graph.sample(s).factors["hair"]][:3]
    assert len(seeds) == 3
    phantoms = np.concatenate([render_phantoms("skin", 1, 128, s, workers=1)[0] for s in seeds])
    assert np.array_equal(twin_phantoms("skin", seeds, 128), phantoms)        # no change: the phantoms themselves
    assert twin_phantoms("skin", [], 128, hair=False).shape == (0, 128, 128, 3)
    bare = twin_phantoms("skin", seeds, 128, hair=False)
    changed = np.abs(bare.astype(int) - phantoms).max(-1) > 8
    assert 0.002 < changed.mean() < 0.2                                       # the hairs, not the scene
    # The hair alone: what the phantoms' lines less their twins' keep is mostly hair, long and little branched.
    alone = thin_line_shapes(phantoms, background=bare)
    assert 0.3 * thin_line_shapes(phantoms)["line_px"] < alone["line_px"] < thin_line_shapes(phantoms)["line_px"]
    assert alone["segment_px"] > 10 and alone["junctions_per_100px"] < 4


def test_models_table_shows_a_line_structures_own_shapes_when_measured(capsys):
    from medviz.bench.models import card_record, print_table

    trip = {"psnr_db": 32.0, "attributes": {}}
    lines = {"junctions_per_100px": 3.31, "segment_px": 14.4, "straightness": 0.922, "line_px": 1136.0}
    alone = {"junctions_per_100px": 4.02, "segment_px": 9.9, "straightness": 0.901, "line_px": 812.0}
    real = {"junctions_per_100px": 0.95, "segment_px": 21.5, "straightness": 0.950, "line_px": 401.0}
    row = {"attribute": "hair", "prompt": "Dermoscopy image of a benign nevus with hair", "wanted": True,
           "agreement": 1.0, "fits_all": 0.98, "diversity_ratio": 1.05, "n_matching": 166,
           "diversity_ratio_named_only": 0.9, "lines": lines, "lines_real": lines,
           "structure_lines": alone, "structure_lines_real": real}
    result = {"domain": "skin", "config": {"n_reference": 10, "n": 64, "steps": 25, "guidance_scale": 4.0,
                                           "seed": 0}, "vae_round_trip": {"bundled": trip}, "rows": [row],
              "fd_generated_vs_held_out": 263.6, "fd_blurred_held_out_vs_held_out": 290.5,
              "fd_held_out_half_vs_half": 5.0, "generation_seconds": 9.0, "images_generated": 64,
              "scheduler": "DDIMScheduler"}
    print_table(result)
    printed = capsys.readouterr().out
    assert "less those of their twins without the structure" in printed
    shapes = next(line for line in printed.splitlines() if line.startswith(row["prompt"]) and "(0.95)" in line)
    assert shapes.split()[-8:] == ["4.02", "(0.95)", "9.9", "(21.5)", "0.901", "(0.950)", "812", "(401)"]
    assert card_record(result, "d", "c")["rows"][0]["structure_lines_real"] == real
    tone = {"p10": 134.2, "p50": 149.0, "p90": 175.4}
    print_table({**result, "rows": [{**row, "tone": tone, "tone_real": {"p10": 84.0, "p50": 165.0, "p90": 202.0}}]})
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(row["prompt"]) and
                "(84)" in line)
    assert line.split()[-6:] == ["134", "(84)", "149", "(165)", "175", "(202)"]


@pytest.mark.bundled
@needs_models
def test_a_line_structures_asked_row_carries_its_own_shapes_beside_its_phantoms():
    from medviz.bench.models import ModelsBenchConfig, run

    result = run(ModelsBenchConfig(domain="skin", n=2, steps=1, attributes=("hair",), n_reference=16,
                                   n_diversity_reference=48))
    asked, absent = result["rows"]
    assert (asked["wanted"], absent["wanted"]) == (True, False) and "structure_lines" not in absent
    real = asked["structure_lines_real"]
    # The phantoms' hair alone: fewer line px than their whole images' lines, long segments, few junctions.
    assert 0 < real["line_px"] < asked["lines_real"]["line_px"] and real["segment_px"] > 12
    assert real["junctions_per_100px"] < asked["lines_real"]["junctions_per_100px"]
    assert set(asked["structure_lines"]) == set(real)
    assert result["vae_round_trip"]["bundled"]["psnr_db"] > 20
    for row in result["rows"]:                            # mean intensity, samples beside the fitting phantoms
        assert 0 < row["tone"]["p10"] <= row["tone"]["p50"] <= row["tone"]["p90"] < 255
        assert row["tone_real"]["p10"] < row["tone_real"]["p90"]
