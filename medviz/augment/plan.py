"""A plan: which edit for which rows of a dataset, and the default plan that balances a target against a spurious
attribute.

A rule reads ``ACTION ATTRIBUTE [where CONDITION [and CONDITION ...]] [max N]``, a condition being ``NAME`` (present)
or ``no NAME`` (absent), e.g. "remove support_devices where pleural_effusion and support_devices max 300". The
jobs are the rules applied in order, each to the rows that meet its conditions in CSV order; job ``i`` edits with
seed ``seed + i``, so a plan gives the same images whatever the number of processes that share it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

ACTIONS = ("add", "remove")


@dataclass(frozen=True)
class Rule:
    """``action`` ("add"/"remove") ``attribute`` on rows whose labels meet ``where`` (attribute -> present);
    at most ``limit`` rows (None: all)."""

    action: str
    attribute: str
    where: tuple[tuple[str, bool], ...] = ()
    limit: int | None = None

    @property
    def edit(self) -> str:
        return f"{self.action} {self.attribute}"

    def text(self) -> str:
        conditions = " and ".join(name if present else f"no {name}" for name, present in self.where)
        return (
            self.edit
            + (f" where {conditions}" if conditions else "")
            + (f" max {self.limit}" if self.limit is not None else "")
        )

    def applies(self, labels: Mapping[str, bool | None]) -> bool:
        """The row meets every condition, and the edit changes it (no removal of what is absent); a row without
        the label a condition needs does not."""
        present = labels.get(self.attribute)
        if present is None or present == (self.action == "add"):
            return False
        return all(labels.get(name) == wanted for name, wanted in self.where)


@dataclass(frozen=True)
class Job:
    """Edit ``index`` of a run: ``rule``'s edit of dataset row ``row`` with seed ``seed``."""

    index: int
    row: int
    rule: Rule
    seed: int


def parse_rule(text: str, attributes: Sequence[str]) -> Rule:
    """A ``Rule`` from its text; an unknown action or attribute is named with the choices."""
    words = text.replace(",", " ").split()
    if len(words) < 2 or words[0] not in ACTIONS:
        raise ValueError(f"plan rule {text!r}: start with 'add' or 'remove' and an attribute, e.g. 'remove ruler "
                         "where melanoma and ruler'")
    limit = None
    if len(words) >= 2 and words[-2] == "max":
        if not words[-1].isdigit():
            raise ValueError(f"plan rule {text!r}: 'max' takes a whole number")
        limit, words = int(words[-1]), words[:-2]
    action, attribute, rest = words[0], words[1], words[2:]
    where: list[tuple[str, bool]] = []
    if rest:
        if rest[0] != "where":
            raise ValueError(f"plan rule {text!r}: expected 'where' after the attribute, got {rest[0]!r}")
        for clause in " ".join(rest[1:]).split(" and "):
            parts = clause.split()
            negated = parts[:1] == ["no"]
            if len(parts) != 1 + negated:
                raise ValueError(f"plan rule {text!r}: a condition is 'NAME' or 'no NAME', got {clause!r}")
            where.append((parts[-1], not negated))
    for name in [attribute, *(name for name, _ in where)]:
        if name not in attributes:
            raise ValueError(f"plan rule {text!r}: unknown attribute {name!r}; choose among {', '.join(attributes)}")
    return Rule(action, attribute, tuple(where), limit)


def make_jobs(labels: Sequence[Mapping[str, bool | None]], rules: Sequence[Rule], seed: int) -> list[Job]:
    """The jobs of ``rules`` over rows with ``labels`` (row -> attribute -> present, None where unknown)."""
    jobs: list[Job] = []
    for rule in rules:
        rows = [row for row, row_labels in enumerate(labels) if rule.applies(row_labels)]
        for row in rows[:rule.limit]:
            jobs.append(Job(len(jobs), row, rule, seed + len(jobs)))
    return jobs


def group_counts(
    labels: Sequence[Mapping[str, bool | None]], target: str, spurious: str
) -> dict[tuple[bool, bool], int]:
    """Rows per (target, spurious) group; rows missing either label are not counted."""
    counts = {(t, s): 0 for t in (False, True) for s in (False, True)}
    for row in labels:
        if row.get(target) is not None and row.get(spurious) is not None:
            counts[(bool(row[target]), bool(row[spurious]))] += 1
    return counts


def default_plan(labels: Sequence[Mapping[str, bool | None]], target: str, spurious: str,
                 faithfulness: Mapping[str, float | None], faithful_enough: float) -> list[Rule]:
    """Rules that fill the two smaller (target, spurious) groups up to the smaller of the two larger ones, the
    under-represented groups a shortcut feeds on (PRISM arXiv 2503.00196, DeCoDEx arXiv 2405.09288).

    Each small group can be reached by switching the spurious attribute of the group that differs in it, or the
    target of the group that differs in that. Of the two, the edit the model card measures most faithful is taken
    (``faithfulness``: "add ruler" -> the counterfactual bench's figure, None where unmeasured, which ranks after
    any measured edit at or above ``faithful_enough``); an edit measured below it is never planned. Rows a rule
    cannot supply are taken, where they exist, by the other edit.
    """
    counts = group_counts(labels, target, spurious)
    ranked = sorted(counts, key=lambda g: counts[g])
    small, large = ranked[:2], ranked[2:]
    goal = min(counts[g] for g in large)
    rules: list[Rule] = []
    for group in small:
        has_target, has_spurious = group
        candidates = []
        for attribute, source in ((spurious, (has_target, not has_spurious)), (target, (not has_target, has_spurious))):
            action = "add" if group[0 if attribute == target else 1] else "remove"
            measured = faithfulness.get(f"{action} {attribute}")
            if measured is not None and measured < faithful_enough:
                continue
            rank = -(measured if measured is not None else faithful_enough - 1e-6)
            candidates.append((rank, len(candidates), action, attribute, source))
        need = goal - counts[group]
        for _, _, action, attribute, source in sorted(candidates):
            if need <= 0:
                break
            take = min(need, counts[source])
            where = ((target, source[0]), (spurious, source[1]))
            rules.append(Rule(action, attribute, where, take))
            need -= take
    return rules
