"""Rewrite model cards (medviz.json) with identifier keys: edits as ``remove_support_devices``, classifier tasks as
``pleural_effusion`` (cards written before 2026-12-06 keyed them by phrase). Readers rename old keys on the fly
(``medviz.card.read_card``); this makes the files themselves current.

    python scripts/migrate_cards.py assets/models/*-phantom
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from medviz.card import CARD_FILE, normalise


def migrate(folder: str | Path) -> bool:
    """Rewrite ``folder``'s card with identifier keys; True when anything changed."""
    path = Path(folder) / CARD_FILE
    card = json.loads(path.read_text())
    current = normalise(card)
    if current == card:
        return False
    path.write_text(json.dumps(current, indent=2, default=str))
    return True


def main(folders: list[str]) -> int:
    for folder in folders:
        print(f"{folder}: {'migrated' if migrate(folder) else 'already current'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
