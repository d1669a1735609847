"""State the UI keeps outside the engines: loaded models (shared), per-session stop flags, the session's files."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

from gradio.utils import get_upload_folder

from ..classifiers import (CLASSIFIERS_DIR, AuditedClassifier, ClassifierLoadError, bundled_classifiers,
                           classifier_domain, load_classifier)
from ..ladine import CONFIG as LADINE_CONFIG
from ..ladine import LaDiNE
from ..ladine import load as load_ladine
from ..ladine import trained_domain as ladine_domain
from ..models import Model, ModelLoadError, bundled_models, load_model
from ..progression import CARD as PROGRESSION_CARD
from ..progression import load as load_progression

#: A session's files live at most this long after they were written (seconds); closing the page deletes them at once.
FILE_LIFETIME = 540
SWEEP_EVERY = 60                     # so a file is gone at the latest FILE_LIFETIME + SWEEP_EVERY = 10 min after


class ModelRegistry:
    """Loads each model once and hands the same instance to every tab. The model box takes the bundled names and
    the folders under ``models_dir`` (given at launch) and nothing else; its errors name nothing outside them."""

    def __init__(self, default: str = "cxr-phantom", device: str | None = None, preloaded: Model | None = None,
                 others: dict[str, Model] | None = None, models_dir: str | os.PathLike | None = None):
        """``default``: the launch model (any name or path: the operator's choice); ``preloaded``: the default model,
        already loaded; ``others``: more loaded models by name; ``models_dir``: the folder of users' models."""
        self.default = default
        self.device = device
        self.models_dir = Path(models_dir).expanduser().resolve() if models_dir else None
        self._models: dict[str, Model] = dict(others or {})
        self._lock = threading.Lock()
        if preloaded is not None:
            self._models[default] = preloaded

    def choices(self) -> list[str]:
        names = list(bundled_models()) + [p.name for p in self._user_folders() if (p / "model_index.json").is_file()]
        return names if self.default in names else [self.default, *names]

    def _user_folders(self) -> list[Path]:
        """The folders under the models folder, sorted by name (none without one)."""
        if self.models_dir is None or not self.models_dir.is_dir():
            return []
        return sorted((p for p in self.models_dir.iterdir() if p.is_dir()), key=lambda p: p.name)

    def _user_folder(self, name: str) -> Path | None:
        """The folder ``name`` names under the models folder; None when there is none, or the name leaves it."""
        if self.models_dir is None:
            return None
        candidate = (self.models_dir / name).resolve()
        return candidate if candidate.is_relative_to(self.models_dir) and candidate.is_dir() else None

    def _elsewhere(self, purpose: str) -> str:
        """The end of a 'not bundled' message: where else a name may point (never a server path)."""
        return (" or a folder under the models folder" if self.models_dir is not None else
                f" (start medviz with --models-dir FOLDER to {purpose} from that folder)")

    def _path(self, name: str) -> str:
        """What to load for a name typed in the model box (see the class docstring)."""
        if name == self.default or name in bundled_models():
            return name
        folder = self._user_folder(name)
        if folder is not None:
            return str(folder)
        raise ModelLoadError(f"{name!r} is not a bundled model ({', '.join(bundled_models())})"
                             f"{self._elsewhere('load your own models')}")

    def _load(self, name: str) -> Model:
        path = self._path(name)
        try:
            model = load_model(path, device=self.device)
        except ModelLoadError as error:
            text = str(error)
            if self.models_dir is not None:        # name the folder as the user typed it, not the server's path
                text = text.replace(str(self.models_dir) + os.sep, "")
            raise ModelLoadError(text) from None
        model.name = name
        return model

    def warm(self) -> None:
        """Load the default model now (e.g. in a background thread at start-up); errors surface on first use."""
        try:
            self.get(self.default)
        except ModelLoadError:
            pass

    def classifier_choices(self, domain: str | None) -> list[str]:
        """Bundled classifiers of ``domain`` and the classifier folders (no pipeline) under the models folder."""
        return [n for n in bundled_classifiers() if classifier_domain(n) in (domain, None)] + [
            p.name
            for p in self._user_folders()
            if (p / "config.json").is_file() and not (p / "model_index.json").is_file()
        ]

    def ladine_choices(self, domain: str | None = None) -> list[str]:
        """LaDiNE folders (``medviz_ladine.json``) trained on ``domain`` (or not saying): bundled ones, then those
        under the models folder."""
        bundled = sorted(p.parent for p in CLASSIFIERS_DIR.glob(f"*/{LADINE_CONFIG}"))
        folders = [*bundled, *(p for p in self._user_folders() if (p / LADINE_CONFIG).is_file())]
        return [p.name for p in folders if domain is None or ladine_domain(p) in (domain, None)]

    def ladine(self, name: str) -> LaDiNE | None:
        """The LaDiNE folder ``name`` names (bundled, or under the models folder), loaded; None if it names none."""
        for folder in (CLASSIFIERS_DIR / name, self._user_folder(name)):
            if folder is not None and folder.resolve().parent in (CLASSIFIERS_DIR.resolve(), self.models_dir) and (
                    folder / LADINE_CONFIG).is_file():
                return load_ladine(folder, name)
        return None

    def progression_choices(self) -> list[str]:
        """Progression folders (``medviz_progression.json``): bundled ones, then those under the models folder."""
        bundled = sorted(p.parent.name for p in CLASSIFIERS_DIR.glob(f"*/{PROGRESSION_CARD}"))
        return [*bundled, *(p.name for p in self._user_folders() if (p / PROGRESSION_CARD).is_file())]

    def progression(self, name: str | None) -> tuple:
        """(network, config, card) of the progression folder ``name`` (bundled, or under the models folder)."""
        name = (name or "").strip()
        for folder in (CLASSIFIERS_DIR / name, self._user_folder(name)) if name else ():
            if folder is not None and folder.resolve().parent in (CLASSIFIERS_DIR.resolve(), self.models_dir) and (
                    folder / PROGRESSION_CARD).is_file():
                return load_progression(folder)
        choices = ", ".join(self.progression_choices()) or "none yet"
        raise ValueError(f"{name!r} is not a progression model folder ({choices})"
                         f"{self._elsewhere('use your own progression models')}")

    def classifier(self, name: str | None, label: str | None = None) -> AuditedClassifier:
        """A classifier for the classifier box: a bundled name or a folder under the models folder (errors name
        nothing outside them), loaded each time (small; a user may retrain it in place)."""
        name = (name or "").strip()
        if not name:
            raise ClassifierLoadError("choose a classifier: a bundled one or a folder under the models folder")
        if name in bundled_classifiers():
            return load_classifier(name, label or None)
        candidate = self._user_folder(name)
        if candidate is None:
            raise ClassifierLoadError(f"{name!r} is not a bundled classifier ({', '.join(bundled_classifiers())})"
                                      f"{self._elsewhere('audit your own classifiers')}")
        try:
            classifier = load_classifier(candidate, label or None)
        except ClassifierLoadError as error:            # name the folder as the user typed it, not the server's path
            raise ClassifierLoadError(str(error).replace(str(candidate), name)) from None
        classifier.name = name
        return classifier

    def get(self, name: str | None) -> Model:
        name = (name or self.default).strip()
        if not name:
            raise ModelLoadError("choose a model: a bundled name or a local path")
        with self._lock:
            if name not in self._models:
                self._models[name] = self._load(name)
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


def exports_root() -> Path:
    """The private folder of every session's exports, inside Gradio's cache (app.py makes it a private temp dir)."""
    return Path(get_upload_folder()) / "medviz-exports"


def forget_session(session: str) -> int:
    """Delete a session's export folder and the copies gradio cached of its files (found by their names, which
    carry run ids). Returns how many files were deleted."""
    folder = exports_root() / "".join(c for c in session if c.isalnum())[:64]
    if not folder.is_dir():
        return 0
    names = {p.name for p in folder.iterdir()}
    deleted = len(names)
    shutil.rmtree(folder, ignore_errors=True)
    cache = exports_root().parent
    copies = [Path(folder) / name for folder, _, files in os.walk(cache) for name in files if name in names]
    for path in copies:                       # gradio keeps each served copy in a folder of its own
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()
        except OSError:
            pass
    return deleted + len(copies)


class CacheSweeper:
    """Deletes every file in gradio's cache folder (uploads, the copies gradio serves, the editor's background
    image, our exports) at the latest ``max_age`` + ``every`` seconds after it was made.

    gradio's own ``delete_cache`` covers only the files it tracks, and ages them by a time it resets whenever it
    hands a cached copy out again, so a file in use (the Edit tab's background) outlived it. Here a file's birth
    is the earlier of its modification time and the sweep before the one that first saw it (it was not there
    then), so touching a file does not keep it. app.py makes the cache folder a private temporary folder.
    """

    def __init__(self, max_age: float = FILE_LIFETIME, every: float = SWEEP_EVERY):
        self.max_age, self.every = max_age, every
        self._first_seen: dict[str, float] = {}

    def sweep(self, now: float | None = None) -> int:
        """One pass over the cache folder; returns how many files it deleted (and drops the folders left empty)."""
        root, now, deleted = Path(get_upload_folder()), time.time() if now is None else now, 0
        if not root.is_dir():
            return 0
        present = set()
        for folder, _, files in os.walk(root, topdown=False):
            for name in files:
                path = os.path.join(folder, name)
                present.add(path)
                try:
                    born = min(os.stat(path).st_mtime, self._first_seen.setdefault(path, now - self.every))
                    if now - born > self.max_age:
                        os.unlink(path)
                        deleted += 1
                        present.discard(path)
                except OSError:          # deleted under us (a closed session, gradio's own sweep)
                    present.discard(path)
            if folder != str(root) and not os.listdir(folder):
                try:
                    os.rmdir(folder)
                except OSError:
                    pass
        self._first_seen = {path: t for path, t in self._first_seen.items() if path in present}
        return deleted


_SWEEPER: list[threading.Thread] = []


def start_sweeper(every: float = SWEEP_EVERY, max_age: float = FILE_LIFETIME) -> threading.Thread:
    """The daemon thread that runs a ``CacheSweeper`` every ``every`` seconds; one per process, however many pages
    are built (they share gradio's cache folder)."""
    if _SWEEPER and _SWEEPER[0].is_alive():
        return _SWEEPER[0]
    sweeper = CacheSweeper(max_age, every)

    def loop():
        while True:
            try:
                sweeper.sweep()
            except OSError:          # the cache folder itself went away: the next pass looks again
                pass
            time.sleep(every)

    thread = threading.Thread(target=loop, name="medviz-cache-sweeper", daemon=True)
    thread.start()
    _SWEEPER[:] = [thread]
    return thread
