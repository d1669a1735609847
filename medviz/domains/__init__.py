"""The one vocabulary: each domain's attributes, phrases, interventions, presets and defaults.

After torchxrayvision's single pathology list: every module that names an attribute (captions, the
prompt parser, the oracle's labels, sliders, edits, classifier presets, the UI's choices, the benches)
reads it from here. A domain is one ``Domain`` in a small registry; ``cxr`` and ``skin`` register on
import, and a new one needs only ``register`` (see ``tests/test_domains.py``).

    >>> from medviz import domains
    >>> cxr = domains.get("cxr")
    >>> [a.name for a in cxr.factors]
    ['pleural_effusion', 'cardiomegaly', 'support_devices', 'female']
"""

from __future__ import annotations

from . import cxr, skin  # noqa: E402,I001  (each registers itself)
from .base import Attribute, ClassifierPreset, Domain, Shift, find, get, names, register, registered, unregister

__all__ = ["Attribute", "ClassifierPreset", "Domain", "Shift", "find", "get", "names", "register", "registered",
           "unregister", "cxr", "skin"]
