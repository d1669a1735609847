"""The app as a person uses it: Playwright (pip) driving Debian's chromium (``.ci/run`` installs it with apt).

Uploads an example X-ray on the Edit tab and runs an edit, computes a trajectory and moves its slider
(the displayed frame must change), and saves a screenshot of every tab (to ``$MEDVIZ_SCREENSHOTS`` when
set, e.g. ``assets/screenshots``, else to pytest's temporary folder). The page runs on the tiny random
models (``tests/ui/conftest.py``); a screenshot run uses the bundled models at the app's defaults, so that
the pictures show what a user gets.
"""

import os
import shutil
from pathlib import Path

import pytest

from medviz.ui.common import EXAMPLES_DIR

pytestmark = [pytest.mark.browser,     # a browser end to end: in the full run, not in the quick one (-m "not slow")
              pytest.mark.xdist_group("browser")]      # one worker starts the servers and the browser once

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT_MS = 300_000        # a CPU edit with few steps takes seconds; leave room for a busy CI machine
#: Tests run few denoising steps; a screenshot run ($MEDVIZ_SCREENSHOTS) keeps the app's defaults so that
#: the pictures show what a user gets.
FEW_STEPS = not os.environ.get("MEDVIZ_SCREENSHOTS")


@pytest.fixture(scope="module")
def page_url(request):
    if FEW_STEPS:
        yield request.getfixturevalue("app_url")                   # the tiny random models
        return
    from medviz.models import load_model
    from medviz.ui.layout import build_demo, serve
    from medviz.ui.session import ModelRegistry

    demo = build_demo(ModelRegistry("cxr-phantom", device="cpu", preloaded=load_model("cxr-phantom", device="cpu")))
    try:
        yield serve(demo, block=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def page(page_url):
    sync_api = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM, "chromium is not installed: apt-get install chromium (see .ci/run)"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(page_url)
        page.get_by_text("research use only", exact=False).first.wait_for()
        yield page
        browser.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("MEDVIZ_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _settle(page, ms: int) -> None:
    """Let charts finish drawing before a screenshot that is kept; a test run's screenshots need not wait."""
    if not FEW_STEPS:
        page.wait_for_timeout(ms)


def _set_number(page, elem_id: str, value, speed_only: bool = False) -> None:
    """Type into a Gradio slider's or number's number box (the range input follows).

    ``speed_only``: a setting that only makes the test faster, skipped on a screenshot run.
    """
    if speed_only and not FEW_STEPS:
        return
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def _open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def _paint_lung_bases(page) -> None:
    """Two brush strokes across the lower lungs of the loaded X-ray, as a clinician would paint them."""
    page.locator("#edit-canvas button[aria-label=Brush]").click()
    box = page.locator("#edit-canvas canvas").first.bounding_box()
    for height in (0.60, 0.68, 0.76):
        y = box["y"] + box["height"] * height
        page.mouse.move(box["x"] + box["width"] * 0.25, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=5)       # the editor joins them with a line
        page.mouse.up()


def test_edit_tab_uploads_an_example_paints_a_mask_and_edits(page, shots):
    _open_tab(page, "Edit")
    page.locator("#edit-upload input[type=file]").set_input_files(str(EXAMPLES_DIR / "cxr_effusion.png"))
    page.locator("#edit-input-info").get_by_text("PNG").wait_for()
    expect = page.locator("#edit-expect")                # the card's figures for the edit, before it runs
    expect.get_by_text("for remove pleural effusion (100 held-out phantoms").wait_for()
    page.get_by_label("painted with the brush").check()
    expect.get_by_text("mask mode painted (measured at auto)").wait_for()
    _set_number(page, "edit-steps", 10, speed_only=True)
    summary = page.locator("#edit-summary")
    done = summary.get_by_text("Source prompt")
    refused = page.get_by_text("paint the region to edit first").first
    for attempt in range(3):
        # The editor draws the uploaded background asynchronously and clears strokes made before it
        # arrives; on a busy machine that takes seconds. The app refuses an empty mask with a message,
        # so paint again after it.
        page.wait_for_timeout(2000 * (attempt + 1))
        _paint_lung_bases(page)
        page.wait_for_timeout(500)
        page.locator("#edit-button").click()
        done.or_(refused).first.wait_for()
        if done.is_visible():
            break
        refused.wait_for(state="hidden", timeout=30_000)
    text = summary.inner_text()
    assert "no pleural effusion" in text and "painted with the brush (" in text
    painted_share = int(text.split("painted with the brush (")[1].split("%")[0])
    assert 3 <= painted_share <= 40                                      # the strokes, not the whole image
    assert page.locator("#edit-slider img").count() >= 2                 # before / after slider shows both
    page.screenshot(path=str(shots / "edit.png"), full_page=True)


def test_traverse_slider_changes_the_displayed_frame(page, shots):
    _open_tab(page, "Traverse")
    _set_number(page, "traverse-steps", 6, speed_only=True)
    _set_number(page, "traverse-frames", 5)
    page.locator("#traverse-button").click()
    slider = page.locator("#frame-slider-0")
    slider.wait_for(state="visible")
    frame = page.locator("#traverse-frame img")
    frame.wait_for()
    before = frame.get_attribute("src")
    _set_number(page, "frame-slider-0", 4)
    page.wait_for_function(
        "previous => { const img = document.querySelector('#traverse-frame img'); "
        "return img && img.src !== previous; }",
        arg=before,
    )
    assert frame.get_attribute("src") != before
    page.locator("#traverse-chart .js-plotly-plot").first.wait_for()
    _settle(page, 1000)
    page.screenshot(path=str(shots / "traverse.png"), full_page=True)


def test_screenshots_of_the_other_tabs(page, shots):
    _open_tab(page, "Generate")
    # The card's prompt figures for what the default prompt names (a female patient), before anything runs.
    page.locator("#generate-expect").get_by_text("Measured on this model").wait_for()
    assert "*female* in" not in page.locator("#generate-expect").inner_text()         # rendered, not raw markdown
    page.locator("fieldset").filter(has_text="Findings and devices").get_by_label("pleural effusion").check()
    page.locator("#generate-expect").get_by_text("pleural effusion in").wait_for()
    _set_number(page, "generate-steps", 8, speed_only=True)
    page.locator("#generate-button").click()
    page.locator("#gallery img").first.wait_for()
    page.screenshot(path=str(shots / "generate.png"), full_page=True)
    _open_tab(page, "Explain")
    # The classify bench's word on the preset at the card's operating point, before anything runs.
    page.locator("#explain-expect").get_by_text("held-out phantoms").wait_for()
    page.wait_for_timeout(500)
    # At the card's own N (set by the model's load): no setting differs. The line once raced that load.
    assert "settings differ" not in page.locator("#explain-expect").inner_text()
    _set_number(page, "explain-trials", 15, speed_only=True)
    page.locator("#explain-button").click()
    page.locator("#explain-summary").get_by_text("UNet passes").wait_for()     # in every finished summary
    _settle(page, 1000)
    page.screenshot(path=str(shots / "explain.png"), full_page=True)
    for name, file in (("Phantoms", "phantoms.png"), ("Model & About", "about.png")):
        _open_tab(page, name)
        page.wait_for_timeout(500)      # the tab drawn: its screenshot is checked below
        page.screenshot(path=str(shots / file), full_page=True)
    assert all((shots / f).stat().st_size > 10_000 for f in
               ("edit.png", "traverse.png", "generate.png", "explain.png", "phantoms.png", "about.png"))


def test_the_audit_tab_audits_the_bundled_classifier_on_phantoms(page, shots):
    _open_tab(page, "Audit")
    assert page.locator("#audit-classifier input").first.input_value() == "cxr-effusion-erm"
    assert page.locator("#audit-compare input").first.input_value() == "cxr-effusion-erm-cfaug"   # its fix beside
    _set_number(page, "audit-phantoms", 4, speed_only=True)
    page.locator("#audit-button").click()
    page.locator("#audit-summary").get_by_text("UNet passes").wait_for()
    shown = page.locator("#audit-summary").inner_text()
    assert "Truth from the phantoms' causal model" in shown and "cxr-effusion-erm-cfaug" in shown
    _settle(page, 1000)
    page.screenshot(path=str(shots / "audit.png"), full_page=True)
    assert (shots / "audit.png").stat().st_size > 10_000


def test_the_stress_tab_draws_a_curve_per_shift(page, shots):
    _open_tab(page, "Stress test")
    _set_number(page, "stress-phantoms", 10, speed_only=True)
    if FEW_STEPS:
        page.get_by_label("Domain check's flag rate per level", exact=False).uncheck()
    page.locator("#stress-button").click()
    page.locator("#stress-summary").get_by_text("images per level").wait_for()
    shown = page.locator("#stress-summary").inner_text()
    assert "oracle" in shown and "rotation" in shown and "jpeg" in shown
    _settle(page, 1500)
    page.screenshot(path=str(shots / "stress.png"), full_page=True)
    assert (shots / "stress.png").stat().st_size > 10_000


def test_the_progression_tab_predicts_a_phantoms_courses_beside_its_truth(page, shots):
    _open_tab(page, "Progression")
    page.locator("#progression-button").click()
    page.locator("#progression-summary").get_by_text("effect against no treatment").wait_for()
    shown = page.locator("#progression-summary").inner_text()
    assert "chest drain" in shown and "true effect" in shown
    page.locator("#progression-plot .js-plotly-plot").first.wait_for()
    _settle(page, 1500)
    page.screenshot(path=str(shots / "progression.png"), full_page=True)
    assert (shots / "progression.png").stat().st_size > 10_000
