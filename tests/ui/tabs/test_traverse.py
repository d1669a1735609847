import numpy as np
from PIL import Image

from medviz.ui.common import Job
from medviz.ui.tabs.traverse import TraverseRequest, compute_trajectories, readout_figure, slider_attributes


def test_traverse_then_sliders_show_cached_frames(client):
    frame, chart, summary, gif, *sliders = client.predict(
        model_name="cxr-phantom", targets=["pleural_effusion", "cardiomegaly"], seed=4, frames=3, steps=4,
        api_name="/traverse")
    assert sliders[0]["visible"] and sliders[0]["label"] == "pleural_effusion" and sliders[0]["maximum"] == 2
    assert sliders[1]["visible"] and not sliders[2]["visible"]
    assert "pleural_effusion" in summary and "cardiomegaly" in summary
    assert Image.open(gif).n_frames >= 3
    first, _ = client.predict(index=0, api_name="/frame_0")
    last, _ = client.predict(index=2, api_name="/frame_0")
    a, b = (np.asarray(Image.open(p), dtype=float) for p in (first, last))
    assert a.shape == b.shape == (384, 384, 3) and np.abs(a - b).mean() > 1.0     # 32 px shown 12x (nearest)
    again, _ = client.predict(index=0, api_name="/frame_0")
    assert np.array_equal(np.asarray(Image.open(again)), a.astype(np.uint8))


def test_a_moved_slider_makes_no_model_call(client, tiny_cxr, monkeypatch):
    client.predict(model_name="cxr-phantom", targets=["pleural_effusion"], seed=5, frames=3, steps=4,
                   api_name="/traverse")

    def forbidden(*args, **kwargs):
        raise AssertionError("a cached frame must not call the model")

    monkeypatch.setattr(tiny_cxr.pipe.unet, "forward", forbidden)
    monkeypatch.setattr(tiny_cxr.pipe.vae, "decode", forbidden)
    monkeypatch.setattr(tiny_cxr.oracle, "readout", forbidden)
    frames = [np.asarray(Image.open(client.predict(index=i, api_name="/frame_0")[0])) for i in (2, 0)]
    assert frames[0].shape == frames[1].shape and not np.array_equal(*frames)


def test_a_patient_walk_and_the_chart_shows_only_the_scms_factors(tiny_cxr):
    cache = compute_trajectories(tiny_cxr, TraverseRequest(kind="interpolate", frames=3, steps=2), Job("t"))
    assert list(cache.frames) == ["walk"] and cache.frames["walk"].shape == (3, 32, 32, 3)
    drawn = [trace.name for trace in readout_figure(cache, "walk", 1).data]
    assert drawn == slider_attributes("cxr") == ["pleural_effusion", "cardiomegaly", "support_devices", "female"]
    assert slider_attributes(None) == []
