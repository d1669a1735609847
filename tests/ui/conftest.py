from contextlib import contextmanager

import pytest


@contextmanager
def served_with_models_folder(root):
    """A gradio_client on the app whose models folder is ``root`` (tiny CXR model as the default), closed after."""
    from gradio_client import Client

    from medviz.ui.layout import build_demo
    from medviz.ui.session import ModelRegistry
    from tests.tiny import tiny_model

    demo = build_demo(ModelRegistry("cxr-phantom", device="cpu", preloaded=tiny_model("cxr"), models_dir=root))
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True, run_history=False,
                enable_monitoring=False, show_error=True)
    try:
        yield Client(demo.local_url, verbose=False)
    finally:
        demo.close()


@pytest.fixture(scope="module")
def app_url(tiny_cxr, tiny_skin):
    """The app on the tiny random models (under the bundled names, with the bundled cards), on a free port."""
    from medviz.ui.layout import build_demo
    from medviz.ui.session import ModelRegistry

    registry = ModelRegistry("cxr-phantom", device="cpu", preloaded=tiny_cxr, others={"skin-phantom": tiny_skin})
    demo = build_demo(registry)
    demo.queue(default_concurrency_limit=1, max_size=32)
    demo.launch(server_name="127.0.0.1", server_port=None, prevent_thread_lock=True, quiet=True,
                run_history=False, enable_monitoring=False, show_error=True)
    try:
        yield demo.local_url
    finally:
        demo.close()


@pytest.fixture()
def client(app_url):
    """A gradio_client session of its own (session state, such as the loaded image, is per session)."""
    from gradio_client import Client

    return Client(app_url, verbose=False)
