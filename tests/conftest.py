import os

# Tests never reach the network: the default path is offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from tests.tiny import tiny_model  # noqa: E402

#: What makes a test slow; ``slow`` is given to any test with one of them, so ``-m "not slow"`` is the quick run.
SLOW_KINDS = {
    "bundled": "needs the bundled models' quality",
    "browser": "drives a browser over the app",
    "multiprocess": "starts other processes (a server, accelerate launch)",
    "statistical": "draws thousands of samples for a statistical bar",
}
#: Fixtures that load a bundled model: a test using one is ``bundled`` whether or not it says so.
BUNDLED_FIXTURES = {"cxr_model", "skin_model"}


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: any of " + ", ".join(SLOW_KINDS) + " (deselect with -m 'not slow')")
    for name, meaning in SLOW_KINDS.items():
        config.addinivalue_line("markers", f"{name}: {meaning}")


def pytest_collection_modifyitems(items):
    for item in items:
        if BUNDLED_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.bundled)
        if any(item.get_closest_marker(kind) for kind in SLOW_KINDS):
            item.add_marker(pytest.mark.slow)


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
