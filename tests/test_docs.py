"""docs/README.md indexes every document under docs/ (a candidate's folder counts as one entry)."""

from pathlib import Path

DOCS = Path(__file__).parents[1] / "docs"


def test_the_docs_index_names_every_doc():
    index = (DOCS / "README.md").read_text()
    entries = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*") if p.is_file() and p.name != "README.md"
               and "candidates" not in p.parts}
    entries |= {f"candidates/{p.name}/" for p in (DOCS / "candidates").iterdir() if p.is_dir()}
    assert sorted(e for e in entries if f"`{e}`" not in index) == []


def test_every_doc_the_index_names_exists():
    import re

    named = re.findall(r"^\| `([^`]+)`(?:, `([^`]+)`)? \|", (DOCS / "README.md").read_text(), re.M)
    assert named and [p for row in named for p in row if p and not (DOCS / p).exists()] == []
