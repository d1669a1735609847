"""The edit's source and target prompts, in the training captions' words."""

from __future__ import annotations

from ... import domains
from ...prompts import describe
from .config import EditConfig


def edit_prompts(domain: str | None, readout: dict | None, config: EditConfig) -> tuple[str, str]:
    """(source, target) prompts of an edit: from the user's text or from the oracle readout.

    The source is the caption of what the oracle reads; the target switches the requested attributes,
    removed ones named after "no" as in the training captions. Kinds follow their parent: no support
    devices means no device kind, a device kind means support devices, removing devices removes every kind.
    Adding the generic attribute names no kind: the model picks (its card: mostly tubes).
    """
    if config.source_prompt and config.target_prompt:
        return config.source_prompt, config.target_prompt
    if domain is None or readout is None:
        if config.source_prompt is None or config.target_prompt is None:
            raise ValueError("this model has no oracle to read what the image shows: type the source prompt as well as "
                             "the target prompt")
    vocabulary = domains.get(domain)
    parents = [a.name for a in vocabulary.attributes if vocabulary.kinds(a.name)]
    present = {k: v > 0.5 for k, v in (readout or {}).items()}
    for parent in parents:
        if present.get(parent) is False:
            present.update({kind: False for kind in vocabulary.kinds(parent)})
    source = config.source_prompt or describe(domain, present)
    if config.target_prompt:
        return source, config.target_prompt
    target = dict(present)
    negated = list(config.remove)
    for name in config.add:
        target[name] = True
    for name in config.remove:
        target[name] = False
        target.update({kind: False for kind in vocabulary.kinds(name)})
    for parent in parents:
        if any(target.get(kind) for kind in vocabulary.kinds(parent)):
            target[parent] = True
    return source, describe(domain, target, negated=negated)
