import os
import time

from medviz.ui import session
from medviz.ui.common import Job


def test_files_older_than_their_lifetime_are_swept_and_a_session_can_be_forgotten(tmp_path, monkeypatch):
    monkeypatch.setattr(session, "get_upload_folder", lambda: str(tmp_path))
    old, fresh = Job("old-session").file("medviz_1_0", ".png"), Job("fresh-session").file("medviz_2_0", ".png")
    for path in (old, fresh):
        path.write_bytes(b"png")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    assert session.sweep_exports() == 1 and not old.exists() and not old.parent.exists() and fresh.exists()
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
