"""What the benches share about phantoms: labelled held-out sets and true counterfactuals of one attribute."""

from __future__ import annotations

import numpy as np

from .. import domains
from ..phantoms import get_domain, mask_between, shrink_mask
from ..phantoms.effects import switch
from ..train.data import render_phantoms
from ..train.oracle import HELD_OUT_FIRST_SEED


def toggled_region(domain: str, seed: int, attribute: str, size: int) -> np.ndarray:
    """Bool (size, size): the pixels that switching ``attribute`` to its other value changes in phantom ``seed``.

    Below the renderer's 128 px (test-sized models): drawn at 128 px and shrunk (``shrink_mask``).
    """
    module = get_domain(domain)
    graph = module.build_graph()
    sample = graph.sample(seed)
    present = domains.get(domain).attributes_of(sample.factors)[attribute]
    other = graph.intervene(sample, **switch(domain, sample, attribute, not present))
    drawn = max(size, 128)
    return shrink_mask(mask_between(module.render(sample.factors, sample.seed, drawn),
                                    module.render(other.factors, other.seed, drawn)), size)


def labelled_phantoms(domain: str, n: int, size: int, seed_offset: int, attribute: str):
    """(first seed, ``n`` rendered phantoms (uint8) from ``HELD_OUT_FIRST_SEED + seed_offset``, whether each has
    ``attribute``)."""
    first_seed = HELD_OUT_FIRST_SEED + seed_offset
    images, factors = render_phantoms(domain, n, size, first_seed, workers=1)
    attributes_of = domains.get(domain).attributes_of
    return first_seed, images, np.array([attributes_of(f)[attribute] for f in factors])
