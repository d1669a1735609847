from contextlib import contextmanager

import pytest


def local_client(url, **options):
    """A gradio_client on an app served on this machine (plain http on 127.0.0.1, so there is no TLS to verify).

    ``ssl_verify=False`` because gradio_client makes a new httpx client for each request, and each one with
    verification loads the whole CA bundle (~40 ms on this CPU, about a third of the UI tests' time); with no TLS in
    play it changes nothing else."""
    from gradio_client import Client

    return Client(url, verbose=False, ssl_verify=False, **options)


@contextmanager
def served_with_models_folder(root):
    """A gradio_client on the app whose models folder is ``root`` (tiny CXR model as the default), closed after."""
    from medviz.ui.layout import build_demo, serve
    from medviz.ui.session import ModelRegistry
    from tests.tiny import tiny_model

    demo = build_demo(ModelRegistry("cxr-phantom", device="cpu", preloaded=tiny_model("cxr"), models_dir=root))
    try:
        yield local_client(serve(demo, block=False))
    finally:
        demo.close()


@pytest.fixture(scope="session")
def app_url(tiny_cxr, tiny_skin):
    """The app on the tiny random models (under the bundled names, with the bundled cards), on a free port.

    One server for the whole run (per xdist worker), as one server serves many users: each test's ``client`` is a
    session of its own, so state a test leaves (a loaded image, a trajectory) is not seen by the next."""
    from medviz.ui.layout import build_demo, serve
    from medviz.ui.session import ModelRegistry

    registry = ModelRegistry("cxr-phantom", device="cpu", preloaded=tiny_cxr, others={"skin-phantom": tiny_skin})
    demo = build_demo(registry)
    try:
        yield serve(demo, block=False)
    finally:
        demo.close()


@pytest.fixture()
def client(app_url):
    """A gradio_client session of its own (session state, such as the loaded image, is per session)."""
    return local_client(app_url)
