import os

# Tests never reach the network: the default path is offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from tests.tiny import tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_cxr():
    """A random 32-px CXR pipeline and oracle carrying the bundled CXR card: behaviour, wiring, errors."""
    return tiny_model("cxr")


@pytest.fixture(scope="session")
def tiny_skin():
    return tiny_model("skin")


@pytest.fixture(scope="session")
def cxr_model():
    """The bundled CXR model on the CPU, loaded once for all tests (for what needs its quality)."""
    from medviz.models import load_model

    return load_model("cxr-phantom", device="cpu")


@pytest.fixture(scope="session")
def skin_model():
    """The bundled skin model on the CPU, loaded once for all tests."""
    from medviz.models import load_model

    return load_model("skin-phantom", device="cpu")
