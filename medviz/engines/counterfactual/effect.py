"""Did the edit do what was asked (``effect_check``), and how far the model card says this kind of edit can be trusted
(``measured_edit``)."""

from __future__ import annotations

from dataclasses import dataclass

from ...card import edit_phrase, edit_record
from ..common import setting_differences
from .config import EditConfig

@dataclass(frozen=True)
class EffectCheck:
    """Did the edited attribute's readout move the way asked? ``passed``: it ends on the asked side of 0.5."""

    attribute: str
    action: str                        # "add" or "remove"
    before: float
    after: float
    passed: bool
    verdict: str                       # one plain sentence

    def record(self) -> dict:
        return {"attribute": self.attribute, "action": self.action, "before": round(self.before, 4),
                "after": round(self.after, 4), "passed": self.passed, "verdict": self.verdict}


#: A readout change smaller than this is "did not move" (the oracle's readouts of one image vary by less).
EFFECT_MOVE = 0.1


def effect_check(config: EditConfig, before: dict | None, after: dict | None) -> EffectCheck | None:
    """The effect check of a one-attribute add/remove edit (None: a free prompt, several attributes, no oracle)."""
    edits = [(name, "add") for name in config.add] + [(name, "remove") for name in config.remove]
    if config.target_prompt is not None or len(edits) != 1 or before is None or edits[0][0] not in before:
        return None
    (name, action), sign = edits[0], 1 if edits[0][1] == "add" else -1
    start, end = float(before[name]), float(after[name])
    moved = sign * (end - start)
    passed = end >= 0.5 if action == "add" else end < 0.5
    reading = f"the {name} readout went from {start:.2f} to {end:.2f}"
    if passed and (start >= 0.5) == (action == "add"):
        verdict = f"Nothing to {action}: {reading}; it already read {'present' if action == 'add' else 'absent'}."
    elif passed:
        verdict = f"The edit did what was asked: {reading}."
    elif moved <= -EFFECT_MOVE:
        verdict = f"The edit moved the other way: {reading}, the opposite of {action}."
    elif moved < EFFECT_MOVE:
        verdict = f"The edit did not {action} {name}: {reading}."
    else:
        verdict = f"The edit only partly did what was asked: {reading}, not past 0.5."
    return EffectCheck(name, action, start, end, passed, verdict)


def measured_edit(card: dict, config: EditConfig) -> dict | None:
    """The model card's counterfactual-bench record of the edit ``config`` asks for, or None.

    A record (medviz.json ``edit_bench``, written by ``python -m medviz.bench counterfactual --write-card``)
    holds for an add/remove request of one of its ``attributes`` with no free target prompt. The returned copy
    adds ``edit`` (the bench's name for it), ``differences`` ({setting: (measured at, this request)} wherever
    ``config``, resolved for the model's domain, differs from the settings the figures hold for),
    ``same_settings`` (no differences) and ``warnings`` (one sentence naming every bar the edit misses, or none).
    """
    names = config.add or config.remove
    if config.target_prompt is not None or len(names) != 1 or (config.add and config.remove):
        return None
    record = edit_record(card, "add" if config.add else "remove", names[0])
    if record is None:
        return None
    differences = setting_differences(record.settings, config)
    return {**record.figures, "edit": record.edit, "phrase": edit_phrase(record.figures, (card or {}).get("domain")),
            "differences": differences, "same_settings": not differences, "warnings": _shortfalls(record.figures)}


#: What a benched edit that misses a bar does.
EDIT_SHORTFALLS = {"effectiveness": "often fails to make the change",
                   "preservation_all": "often changes other attributes too",
                   "faithfulness": "rarely looks like this image's true counterfactual"}


def _shortfalls(record: dict) -> list[str]:
    """['On this model this edit often fails to make the change and ...'] for the bars a record misses; [] for none."""
    failed = [EDIT_SHORTFALLS[name] for name, met in record.get("meets", {}).items() if not met]
    if not failed:
        return []
    listed = failed[0] if len(failed) == 1 else ", ".join(failed[:-1]) + " and " + failed[-1]
    return [f"On this model this edit {listed}."]


def edit_warnings(checked, effect: EffectCheck | None, measured: dict | None, config: EditConfig,
                  changed_nothing: bool) -> tuple[str, ...]:
    """What a user should know first, in order: an image outside the model's domain, an edit that did not do what
    was asked, the bench's shortfalls for this kind of edit, an edit that changed no pixel past the threshold."""
    warnings = [checked.warning] if checked is not None and checked.warning else []
    if effect is not None and not effect.passed:
        warnings.append(effect.verdict)
    warnings += list((measured or {}).get("warnings", ()))
    if changed_nothing:
        warnings.append(
            f"The edit changed no pixel by more than the change threshold {config.change_threshold:g}: the "
            "result is the input; try a higher guidance or strength, or a lower threshold."
        )
    return tuple(warnings)
