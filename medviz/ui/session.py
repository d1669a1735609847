"""State the UI keeps outside the engines: loaded models (shared) and per-session stop flags."""

from __future__ import annotations

import threading

from ..models import Model, ModelLoadError, bundled_models, load_model


class ModelRegistry:
    """Loads each model once (bundled name or local path) and hands the same instance to every tab."""

    def __init__(self, default: str = "cxr-phantom", device: str | None = None, preloaded: Model | None = None,
                 others: dict[str, Model] | None = None):
        """``preloaded``: the default model, already loaded; ``others``: more loaded models by name."""
        self.default = default
        self.device = device
        self._models: dict[str, Model] = dict(others or {})
        self._lock = threading.Lock()
        if preloaded is not None:
            self._models[default] = preloaded

    def choices(self) -> list[str]:
        names = list(bundled_models())
        return names if self.default in names else [self.default, *names]

    def warm(self) -> None:
        """Load the default model now (e.g. in a background thread at start-up); errors surface on first use."""
        try:
            self.get(self.default)
        except ModelLoadError:
            pass

    def get(self, name: str | None) -> Model:
        name = (name or self.default).strip()
        if not name:
            raise ModelLoadError("choose a model: a bundled name or a local path")
        with self._lock:
            if name not in self._models:
                self._models[name] = load_model(name, device=self.device)
            return self._models[name]


class StopFlags:
    """A Stop button per browser session: the running engine polls ``should_stop(session)``."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def _event(self, session: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(session, threading.Event())

    def arm(self, session: str):
        """Clear the flag at the start of a job and return the check the engine polls."""
        event = self._event(session)
        event.clear()
        return event.is_set

    def stop(self, session: str) -> None:
        self._event(session).set()
