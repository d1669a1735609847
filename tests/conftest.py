import os

# Tests never reach the network: the default path is offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest


@pytest.fixture(scope="session")
def cxr_model():
    """The bundled CXR model on the CPU, loaded once for all tests."""
    from medviz.models import load_model

    return load_model("cxr-phantom", device="cpu")


@pytest.fixture(scope="session")
def skin_model():
    """The bundled skin model on the CPU, loaded once for all tests."""
    from medviz.models import load_model

    return load_model("skin-phantom", device="cpu")
