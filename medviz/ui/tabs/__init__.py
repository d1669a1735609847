"""One module per tab: its controls, its request (a frozen dataclass of the controls' values), its handlers
(the model and one request in, what the widgets show out) and its events.

Each module's ``build(page, domain)`` lays the tab out, wires its events and returns a ``Tab``: the
components a model change updates and how (``on_model``), and what follows that change (``after_model``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Tab:
    outputs: list = field(default_factory=list)               # components a model change updates
    on_model: Callable = lambda model: []                     # model -> one update per output
    after_model: Callable = lambda event: None                # wires what follows a model change (``event.then``)
    on_load: Callable = lambda demo: None                     # wires what runs when the page loads
