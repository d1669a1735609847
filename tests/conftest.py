import os

# Tests never reach the network: the default path is offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# xdist runs one worker per core: each worker's torch takes its share of the cores, not all of them (set before torch
# is imported; threads that fight over the same cores make the whole run slower than one worker).
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    workers = int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // workers)))

import pytest  # noqa: E402

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
    # Longest first, as a scheduler should: the slow tests (5-25 s each), then the UI tests (a request through a
    # server, ~0.1-5 s each), then the unit tests. xdist hands out the last tests in chunks, and a long test or a
    # chunk of UI tests at the end left one worker idle for seconds. A stable sort, the same in every worker, as
    # xdist requires.
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, not item.nodeid.startswith("tests/ui/")))


@pytest.fixture(scope="session")
def tiny_cxr():
    """A random 32-px CXR pipeline and oracle carrying the bundled CXR card: behaviour, wiring, errors."""
    from tests.tiny import tiny_model     # here, not at the top: xdist's controller loads this file and runs no test

    return tiny_model("cxr")


@pytest.fixture(scope="session")
def tiny_skin():
    from tests.tiny import tiny_model

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
