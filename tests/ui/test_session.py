import os
import time
from pathlib import Path

import pytest

from medviz.ui import session
from medviz.ui.common import EXAMPLES_DIR, Job


def test_files_older_than_their_lifetime_are_swept_and_a_session_can_be_forgotten(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "get_upload_folder", lambda: str(tmp_path))
    old, fresh = Job("old-session").file("medviz_1_0", ".png"), Job("fresh-session").file("medviz_2_0", ".png")
    for path in (old, fresh):
        path.write_bytes(b"png")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert session.CacheSweeper().sweep() == 1 and not old.exists() and not old.parent.exists() and fresh.exists()
    copy = tmp_path / "0a1b2c" / fresh.name                  # gradio's cached copy of a served file
    copy.parent.mkdir()
    copy.write_bytes(b"png")
    assert session.forget_session("fresh-session") == 2
    assert not fresh.exists() and not copy.exists() and not copy.parent.exists()
    assert session.forget_session("never-seen") == 0


def test_every_job_names_its_files_apart():
    first, second = Job("s"), Job("s")
    assert first.run_id != second.run_id and len(first.run_id) == 8
    assert first.file("counterfactual-0", ".png").name == f"counterfactual-0-{first.run_id}.png"


def test_one_sweeper_per_process():
    assert session.start_sweeper() is session.start_sweeper()


def test_the_sweep_covers_every_file_in_the_cache_and_a_touched_file_is_not_kept(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "get_upload_folder", lambda: str(tmp_path))
    upload, background = tmp_path / "a1" / "scan.dcm", tmp_path / "b2" / "image.png"     # not medviz's exports
    for path in (upload, background):
        path.parent.mkdir()
        path.write_bytes(b"x")
    sweeper, start = session.CacheSweeper(max_age=100, every=10), time.time()
    assert sweeper.sweep(now=start) == 0                          # first seen: made at most 10 s before
    os.utime(background, (start + 95, start + 95))                # gradio hands the copy out again
    assert sweeper.sweep(now=start + 85) == 0 and upload.exists()
    assert sweeper.sweep(now=start + 95) == 2                     # 105 s since the sweep before it was first seen
    assert list(tmp_path.iterdir()) == []                         # their folders too


SERVER = """
import time
from medviz.ui import session
session.start_sweeper(every=1, max_age=3)              # the first sweeper of the process is the one that runs
from medviz.ui.layout import build_demo, serve
from tests.tiny import tiny_model
print(serve(build_demo(session.ModelRegistry("cxr-phantom", device="cpu", preloaded=tiny_model("cxr"))), block=False),
      flush=True)
time.sleep(120)
"""


@pytest.mark.multiprocess
def test_every_file_gradio_writes_for_an_upload_is_gone_within_the_lifetime(tmp_path):
    """A server of its own (its own cache folder, files kept 3 s): an upload and an edit leave files in the cache
    (gradio's delete_cache alone left the editor's background image), and a few seconds later none is left."""
    import subprocess
    import sys

    from gradio_client import handle_file

    from tests.ui.conftest import local_client

    cache = tmp_path / "cache"
    env = {**os.environ, "GRADIO_TEMP_DIR": str(cache), "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVER], cwd=Path(__file__).parents[2], env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1"), url
        client = local_client(url, download_files=False)
        client.predict(model_name="cxr-phantom", upload=handle_file(str(EXAMPLES_DIR / "cxr_effusion.png")),
                       center=None, width=None, api_name="/edit_load")
        client.predict(action="remove", attribute="pleural_effusion", model_name="cxr-phantom", canvas=None,
                       mask_mode="auto", strength=0.5, guidance_scale=4.0, steps=10, seed=0, opacity=0.6,
                       api_name="/edit")
        assert [p for p in cache.rglob("*") if p.is_file()]       # the editor's background, the results, the exports
        deadline = time.time() + 3 + 1 + 5                        # lifetime + one sweep + slack for this CPU
        while time.time() < deadline and any(p.is_file() for p in cache.rglob("*")):
            time.sleep(0.5)
        assert [p.name for p in cache.rglob("*") if p.is_file()] == []
    finally:
        server.kill()


def test_ladine_folders_are_offered_for_the_domain_they_were_trained_on(tmp_path):
    from medviz import ladine

    shape = ladine.LaDiNEConfig(image_size=32, patch_size=8, hidden=32, layers=2, heads=2, taps=(1, 2),
                                denoiser_width=16, timesteps=100)
    for name, record in (("lad-cxr", {"config": {"domain": "cxr"}}), ("lad-skin", {"config": {"domain": "skin"}}),
                         ("lad-unsaid", None)):
        ladine.save(ladine.build(shape), shape, tmp_path / name, record)
    registry = session.ModelRegistry("cxr-phantom", device="cpu", models_dir=tmp_path)
    mine = ["lad-cxr", "lad-skin", "lad-unsaid"]
    assert registry.ladine_choices("cxr")[-2:] == ["lad-cxr", "lad-unsaid"]
    assert registry.ladine_choices("skin")[-2:] == ["lad-skin", "lad-unsaid"]
    assert registry.ladine_choices()[-3:] == mine and ladine.trained_domain(tmp_path / "lad-skin") == "skin"
