import numpy as np
import pytest

from medviz.ui import handlers


def test_phantom_preview_tints_only_the_changed_region():
    factual, counterfactual, text = handlers.phantom_preview("cxr", 3, "add pacemaker", size=128)
    assert factual.shape == (128, 128) and factual.dtype == np.uint8
    assert counterfactual.shape == (128, 128, 3)
    red = (counterfactual[..., 0].astype(int) - counterfactual[..., 1]) > 40
    assert 0 < red.mean() < 0.2
    assert "pacemaker" in text
    with pytest.raises(ValueError, match="unknown intervention"):
        handlers.phantom_preview("cxr", 0, "add tumour")


def test_app_launches_and_serves_the_phantom_endpoint():
    gradio_client = pytest.importorskip("gradio_client")
    import app
    from medviz.ui.layout import build_demo

    assert app.parse_args([]).host == "127.0.0.1"
    demo = build_demo()
    demo.queue(default_concurrency_limit=1, max_size=8)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                run_history=False, enable_monitoring=False)
    try:
        client = gradio_client.Client(demo.local_url, verbose=False)
        factual, counterfactual, text = client.predict("skin", 4, "add ruler", api_name="/phantom")
        from medviz.io import read_image
        assert read_image(factual).pixels.shape == (256, 256, 3)
        assert read_image(counterfactual).pixels.shape == (256, 256, 3)
        assert "ruler" in text
        with pytest.raises(Exception, match="unknown intervention"):
            client.predict("skin", 4, "add pacemaker", api_name="/phantom")
    finally:
        demo.close()
