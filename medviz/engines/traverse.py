"""Traverse: latent trajectories between attributes or patients, with the attributes read along the way.

Sliders in text-embedding space (mean with-minus-without caption embeddings, the others' directions projected
out as in InterfaceGAN's conditional manipulation), prompt switches joined by a Bezier curve (arXiv
2503.23623, sec. 3), and slerp between two patients' noise; every frame at once, shared prefixes computed
once (DDIM only: branches continue from a shared latent). Spearman, leakage and CFRT per trajectory from the
oracle's readout. Details: docs/traverse.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from math import comb

import numpy as np

from .. import backends, domains
from ..phantoms import get_domain
from ..prompts import attribute_prompt, start_prompt, training_caption
from .common import Progress, ShouldStop, StepControl, decode_latents, encode_prompts, initial_noise, make_scheduler

KINDS = ("slider", "prompt_switch", "interpolate")


@dataclass(frozen=True)
class TraverseConfig:
    """One traversal request.

    Args:
        kind: "slider", "prompt_switch" or "interpolate".
        target: the attribute walked (slider, prompt_switch), e.g. "pleural_effusion".
        prompt: the base (neutral) prompt; default: the domain's neutral prompt.
        target_prompt: prompt_switch only; default: the domain's prompt for ``target``.
        seeds: one trajectory per seed (initial noise). interpolate: walks seeds[i] -> seeds[i] + 1
            unless ``seed_b`` is given.
        frames: K frames per trajectory, 2..64.
        steps, guidance_scale, negative_prompt: DDIM sampling as in the generate engine.
        alpha_range: slider range (first, last alpha) along the attribute direction; alpha = 1 adds one
            mean with-minus-without difference to the prompt embedding.
        other_sliders: fixed offsets of other attributes' sliders, ((attribute, alpha), ...).
        conditional: project the other attributes' directions out of the target direction.
        start_step: slider only; steps before it use the unshifted prompt (shared by all frames).
        switch_fractions: prompt_switch; switch points as fractions of ``steps`` (lambda / steps).
        n_contexts: caption pairs per attribute for the slider directions.
        batch_size: samples per UNet call (x2 with guidance).
        phrase, negation: an attribute in the user's own words, for any model (its domain need not be known):
            a slider walks the embedding difference of the prompt with ``phrase`` and with ``negation`` (one
            context, no projection); a prompt switch goes to the prompt with ``phrase``. ``target`` is ignored.
        preview: sample and decode in bfloat16 where the CPU has AMX tiles (``medviz.backends``): faster,
            approximate; the result says so. The readouts and metrics are then of the preview's frames.
    """

    kind: str = "slider"
    target: str = "pleural_effusion"
    prompt: str | None = None
    target_prompt: str | None = None
    seeds: tuple[int, ...] = (0,)
    seed_b: int | None = None
    frames: int = 7
    steps: int = 25
    guidance_scale: float = 4.0
    negative_prompt: str = ""
    alpha_range: tuple[float, float] = (-1.0, 1.0)
    other_sliders: tuple[tuple[str, float], ...] = ()
    conditional: bool = True
    start_step: int = 0
    switch_fractions: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    n_contexts: int = 64
    batch_size: int = 64
    phrase: str | None = None
    negation: str | None = None
    preview: bool = False

    @property
    def typed(self) -> bool:
        """True when the attribute is the user's words (``phrase``) rather than one of the domain's."""
        return bool(self.phrase and self.phrase.strip())

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown trajectory kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if not 2 <= self.frames <= 64:
            raise ValueError(f"frames must be 2..64, got {self.frames}")
        if not 1 <= self.steps <= 200:
            raise ValueError(f"steps must be 1..200, got {self.steps}")
        if not self.seeds:
            raise ValueError("give at least one seed")
        if not 0 <= self.start_step < self.steps:
            raise ValueError(f"start step must be 0..{self.steps - 1}, got {self.start_step}")
        if any(not 0 < f < 1 for f in self.switch_fractions):
            raise ValueError("switch fractions must lie strictly between 0 and 1")
        if self.kind == "slider" and self.typed and not (self.negation or "").strip():
            raise ValueError("a slider in your own words needs the words for its absence too (e.g. 'with glasses' "
                             "and 'without glasses')")


@dataclass(frozen=True)
class TrajectoryMetrics:
    monotonicity: float     # Spearman of target probability vs. position (1 = rises steadily)
    leakage: float          # largest |change| from frame 0 of any non-target factor attribute
    target_change: float    # mean |change| of the target over the last 40% of frames
    other_change: float     # the same for the non-target factor attribute that changes most
    cfrt_success: bool      # target_change > other_change


@dataclass(frozen=True)
class TraverseResult:
    """frames: float32 (S, K, H, W, 3) in [0, 1]; readouts: (S, K, A) oracle probabilities or None."""

    frames: np.ndarray
    positions: np.ndarray                 # (K,) slider alpha, Bezier parameter or slerp fraction
    seeds: list[int]
    attributes: tuple[str, ...]
    readouts: np.ndarray | None
    metrics: list[TrajectoryMetrics] | None
    parameters: dict
    unet_passes: int                      # sample-steps actually run (x2 with guidance: one each branch)
    unet_passes_unshared: int             # the same work without sharing common prefixes
    seconds: float
    control_points: int = 0               # prompt_switch: latents the Bezier curve passes near
    warnings: tuple[str, ...] = ()        # what a user should know first (a preview)

    def summary(self) -> dict:
        """Median monotonicity, max leakage and CFRT over the trajectories."""
        if not self.metrics:
            return {}
        return {"median_spearman": float(np.median([m.monotonicity for m in self.metrics])),
                "median_leakage": float(np.median([m.leakage for m in self.metrics])),
                "max_leakage": float(np.max([m.leakage for m in self.metrics])),
                "cfrt": float(np.mean([m.cfrt_success for m in self.metrics])),
                "trajectories": len(self.metrics)}


# --------------------------------------------------------------------------------------------------
# Directions in text-embedding space


def caption_pairs(domain: str, attribute: str, n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """``n`` training-style captions with ``attribute`` and the same captions without it.

    Contexts are phantoms whose other factors vary, with the attribute switched by its ``add`` / ``remove``
    factor changes, captioned as the model was trained (``medviz.prompts.training_caption``) with the same
    random choices on both sides.
    """
    vocabulary = domains.get(domain)
    sliders = [a.name for a in vocabulary.factors]
    if attribute not in sliders:
        raise ValueError(f"no slider for {attribute!r} in domain {domain!r}; sliders: {', '.join(sliders) or 'none'}")
    switched = vocabulary.attribute(attribute)
    kinds = vocabulary.kinds(attribute)
    graph = get_domain(domain).build_graph()
    with_attribute, without_attribute = [], []
    for i in range(n):
        factors = dict(graph.sample(seed + i).factors)
        present = {**factors, **switched.add}
        if switched.add_variants and not any(vocabulary.attributes_of(present)[k] for k in kinds):
            present.update(switched.add_variants[i % len(switched.add_variants)])
        absent = {**factors, **switched.remove}
        with_attribute.append(training_caption(domain, present, np.random.default_rng([seed, i])))
        without_attribute.append(training_caption(domain, absent, np.random.default_rng([seed, i])))
    return with_attribute, without_attribute


def with_words(prompt: str, words: str) -> str:
    """``prompt`` with the user's ``words`` appended ('prompt, words'; the words alone for an empty prompt)."""
    return ", ".join(part for part in ((prompt or "").strip(), words.strip()) if part)


def slider_directions(model, attributes: tuple[str, ...], n_contexts: int = 64, seed: int = 0) -> dict:
    """Attribute -> mean (with - without) prompt-embedding difference, (tokens, width), cached on the model."""
    import torch

    key = ("slider_directions", attributes, n_contexts, seed)
    if key not in model.cache:
        directions = {}
        with torch.autocast("cpu", enabled=False):     # cached for every later run: exact even inside a preview
            for attribute in attributes:
                with_attribute, without_attribute = caption_pairs(model.domain, attribute, n_contexts, seed)
                difference = encode_prompts(model.pipe, with_attribute) - encode_prompts(model.pipe, without_attribute)
                directions[attribute] = difference.float().mean(0)
        model.cache[key] = directions
    return model.cache[key]


def conditional_direction(target, others: list):
    """``target`` minus its least-squares projection on the span of ``others`` (flattened)."""
    import torch

    if not others:
        return target
    basis = torch.stack([o.flatten() for o in others], dim=1)           # (D, M)
    coefficients = torch.linalg.lstsq(basis, target.flatten()[:, None]).solution
    return (target.flatten() - (basis @ coefficients)[:, 0]).reshape(target.shape)


# --------------------------------------------------------------------------------------------------
# The denoising loop with shared prefixes


@dataclass(frozen=True)
class Sampling:
    """How every trajectory of a request is denoised: DDIM ``steps``, classifier-free guidance at ``guidance_scale``
    against ``negative_embeds`` ((T, D), the unconditional half), at most ``batch_size`` samples per UNet call."""

    steps: int
    guidance_scale: float
    negative_embeds: object
    batch_size: int


def denoise_tree(model, noise, trunk_embeds, branches: list[tuple[int, object]], sampling: Sampling,
                 keep_trunk: bool, control: StepControl):
    """DDIM-denoise S seeds along a trunk that branches off at given steps; return the final latents.

    Args:
        noise: (S, C, h, w) initial latents, one per seed.
        trunk_embeds: (T, D) prompt embedding of the trunk (the shared prefix).
        branches: [(fork_step, (T, D) embedding)]: branch j continues from the trunk's latents at
            step ``fork_step`` (0 = from the noise) with its own embedding.
        keep_trunk: run the trunk to the end (its final latents are returned) even after the last fork.

    Returns:
        (trunk (S, C, h, w) or None, branch latents (B, S, C, h, w), sample-steps run)
    """
    import torch

    steps, guidance_scale = sampling.steps, sampling.guidance_scale
    negative_embeds, batch_size = sampling.negative_embeds, sampling.batch_size
    pipe = model.pipe
    scheduler = make_scheduler("DDIM", pipe.scheduler.config)
    scheduler.set_timesteps(steps, device=noise.device)
    trunk = noise * scheduler.init_noise_sigma
    state: list = [None] * len(branches)
    last_fork = max((fork for fork, _ in branches), default=0)
    passes = 0
    for i, t in enumerate(scheduler.timesteps):                        # numbered DDIM steps 0..steps-1
        for j, (fork, _) in enumerate(branches):
            if fork == i:
                state[j] = trunk.clone()
        groups = []                                                     # (latents (S,...), embedding)
        run_trunk = keep_trunk or i < last_fork
        if run_trunk:
            groups.append((trunk, trunk_embeds))
        groups += [(state[j], embeds) for j, (fork, embeds) in enumerate(branches) if fork <= i]
        latents = torch.cat([g[0] for g in groups])
        conditions = torch.cat([g[1][None].expand(len(g[0]), -1, -1) for g in groups])
        eps = _guided_eps(pipe, latents, t, conditions, negative_embeds, guidance_scale, batch_size)
        latents = scheduler.step(eps, t, latents).prev_sample
        passes += len(latents)
        parts = list(torch.split(latents, [len(g[0]) for g in groups]))
        if run_trunk:
            trunk = parts.pop(0)
        for j, (fork, _) in enumerate(branches):
            if fork <= i:
                state[j] = parts.pop(0)
        control.step()
    return (trunk if keep_trunk else None), torch.stack(state), passes


def _guided_eps(pipe, latents, t, conditions, negative_embeds, guidance_scale: float, batch_size: int):
    """Classifier-free guided noise prediction, eps_u + w (eps_c - eps_u) (Ho & Salimans 2022, eq. 6)."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(latents), batch_size):
            x = latents[start:start + batch_size]
            c = conditions[start:start + batch_size]
            if guidance_scale > 1:
                u = negative_embeds[None].expand(len(x), -1, -1)
                eps_u, eps_c = pipe.unet(torch.cat([x, x]), t, encoder_hidden_states=torch.cat([u, c])).sample.chunk(2)
                out.append(eps_u + guidance_scale * (eps_c - eps_u))
            else:
                out.append(pipe.unet(x, t, encoder_hidden_states=c).sample)
    return torch.cat(out)


def bezier(control_points, n: int):
    """n points on the Bezier curve with the given (P, ...) control points, t uniform in [0, 1]."""
    import torch

    degree = len(control_points) - 1
    ts = torch.linspace(0, 1, n, dtype=torch.float64)
    weights = torch.stack([comb(degree, k) * ts**k * (1 - ts)**(degree - k) for k in range(degree + 1)], dim=1)
    flat = control_points.reshape(len(control_points), -1).double()
    return (weights @ flat).reshape(n, *control_points.shape[1:]).to(control_points.dtype), ts.numpy()


def slerp(a, b, fractions):
    """Spherical interpolation between two noise tensors (Shoemake 1985), per fraction in [0, 1]."""
    import torch

    a_flat, b_flat = a.flatten().double(), b.flatten().double()
    cos = torch.dot(a_flat, b_flat) / (a_flat.norm() * b_flat.norm())
    theta = torch.arccos(cos.clamp(-1, 1))
    out = []
    for f in fractions:
        if theta.abs() < 1e-4:
            mixed = (1 - f) * a_flat + f * b_flat
        else:
            mixed = (torch.sin((1 - f) * theta) * a_flat + torch.sin(f * theta) * b_flat) / torch.sin(theta)
        out.append(mixed.reshape(a.shape).to(a.dtype))
    return torch.stack(out)


# --------------------------------------------------------------------------------------------------
# Metrics


def trajectory_metrics(probabilities: np.ndarray, attributes: tuple[str, ...], target: str,
                       factors: tuple[str, ...]) -> TrajectoryMetrics:
    """Metrics of one trajectory from its (K, A) readout; ``factors``: the independent attributes."""
    from scipy.stats import spearmanr

    k = attributes.index(target)
    others = [attributes.index(a) for a in factors if a != target and a in attributes]
    target_curve = probabilities[:, k]
    rho = spearmanr(np.arange(len(target_curve)), target_curve).statistic
    change = np.abs(probabilities - probabilities[:1])
    leakage = float(change[:, others].max()) if others else 0.0
    tail = slice(int(round(0.6 * len(probabilities))), None)            # frames 30-49 of 50 in the paper
    tail_change = change[tail].mean(0)
    target_change = float(tail_change[k])
    other_change = float(tail_change[others].max()) if others else 0.0
    return TrajectoryMetrics(monotonicity=0.0 if np.isnan(rho) else float(rho), leakage=leakage,
                             target_change=target_change, other_change=other_change,
                             cfrt_success=target_change > other_change)


# --------------------------------------------------------------------------------------------------
# The engine


@dataclass
class _Walk:
    """What the trajectory kinds share for one request: the prompt's and the negative's states, the seeds' noise."""

    model: object
    config: TraverseConfig
    prompt: str
    base: object                       # (T, D) the prompt's text states
    noise: object                      # (S, C, h, w)
    sampling: Sampling
    control: StepControl


@dataclass
class _Latents:
    """A trajectory kind's output: final latents (S, K, C, h, w), frame positions, UNet passes run and that a
    run without shared prefixes would take, the Bezier control points (prompt switch)."""

    latents: object
    positions: object
    passes: int
    unshared: int
    control_points: int = 0


def _branch_walk(walk: _Walk, direction, offset=0.0) -> _Latents:
    """Sliders: one branch per alpha, the prompt's states moved along ``direction`` from ``start_step`` on."""
    config, dtype = walk.config, walk.model.pipe.unet.dtype
    positions = np.linspace(*config.alpha_range, config.frames)
    branches = [(config.start_step, (walk.base + offset + float(a) * direction).to(dtype)) for a in positions]
    _, finals, passes = denoise_tree(walk.model, walk.noise, walk.base, branches, walk.sampling, False, walk.control)
    return _Latents(finals.transpose(0, 1), positions, passes, config.frames * config.steps * len(walk.noise))


def _slider(walk: _Walk) -> _Latents:
    """An attribute slider: the typed phrase minus its negation, or the domain's (conditional) direction."""
    import torch

    config, pipe, domain = walk.config, walk.model.pipe, walk.model.domain
    if config.typed:
        # One context: the prompt with the phrase minus the prompt with its negation.
        direction = (encode_prompts(pipe, [with_words(walk.prompt, config.phrase)])
                     - encode_prompts(pipe, [with_words(walk.prompt, config.negation)]))[0].float()
        return _branch_walk(walk, direction)
    names = tuple(a.name for a in domains.get(domain).factors)
    if config.target not in names:
        raise ValueError(f"no slider for {config.target!r}; sliders: {', '.join(names)}")
    directions = slider_directions(walk.model, names, config.n_contexts)
    direction = directions[config.target]
    if config.conditional:
        direction = conditional_direction(direction, [directions[a] for a in names if a != config.target])
    offset = sum((alpha * directions[a] for a, alpha in config.other_sliders), torch.zeros_like(walk.base))
    return _branch_walk(walk, direction, offset)


def _prompt_switch(walk: _Walk) -> _Latents:
    """arXiv 2503.23623: the prompt switched to the target at several steps; frames on the Bezier curve through the
    final latents (late switch, near the neutral image, first)."""
    import torch

    config, domain = walk.config, walk.model.domain
    if config.typed:
        target_prompt = config.target_prompt or with_words(walk.prompt, config.phrase)
    elif config.target_prompt is None and config.target not in domains.get(domain):
        raise ValueError(f"no prompt for {config.target!r}; give target_prompt")
    else:
        target_prompt = config.target_prompt or attribute_prompt(domain, config.target)
    attribute = encode_prompts(walk.model.pipe, [target_prompt])[0]
    switches = sorted({max(1, min(config.steps - 1, round(f * config.steps))) for f in config.switch_fractions},
                      reverse=True)                                   # late switch (near neutral) first
    branches = [(lam, attribute) for lam in switches]
    trunk, finals, passes = denoise_tree(walk.model, walk.noise, walk.base, branches, walk.sampling, True,
                                         walk.control)
    points = torch.cat([trunk[None], finals])                         # (1 + L, S, C, h, w)
    curves = [bezier(points[:, s], config.frames) for s in range(len(walk.noise))]
    return _Latents(torch.stack([c[0] for c in curves]), curves[0][1], passes,
                    (1 + len(switches)) * config.steps * len(walk.noise), len(points))


def _interpolation(walk: _Walk, progress: Progress, should_stop: ShouldStop) -> _Latents:
    """Patient interpolation: slerp from each seed's noise to patient B's, every start denoised in full."""
    import torch

    config, seeds = walk.config, [int(s) for s in walk.config.seeds]
    latent_shape = tuple(walk.noise.shape[1:])
    seeds_b = [config.seed_b if config.seed_b is not None else s + 1 for s in seeds]
    noise_b = initial_noise(seeds_b, latent_shape, walk.noise.dtype, walk.model.device)
    positions = np.linspace(0, 1, config.frames)
    starts = torch.cat([slerp(walk.noise[s], noise_b[s], positions) for s in range(len(seeds))])
    finals, passes = [], 0
    for start in range(0, len(starts), config.batch_size):        # each chunk: one batched DDIM run
        chunk_control = StepControl(total=config.steps, should_stop=should_stop)
        _, out, used = denoise_tree(walk.model, starts[start:start + config.batch_size], walk.base,
                                    [(0, walk.base)], walk.sampling, False, chunk_control)
        finals.append(out[0])
        passes += used
        if progress is not None:
            progress(min(start + config.batch_size, len(starts)), len(starts))
    latents = torch.cat(finals).reshape(len(seeds), config.frames, *latent_shape)
    return _Latents(latents, positions, passes, passes)


def traverse(model, config: TraverseConfig, progress: Progress = None,
             should_stop: ShouldStop = None) -> TraverseResult:
    """Compute every frame of ``config``'s trajectories (one per seed), read them and score them.

    Args:
        model: a ``medviz.models.Model``; sliders need its ``domain`` ("cxr" or "skin").
        progress: ``progress(done, total)`` per denoising step (and per decoded batch).
        should_stop: polled every step; True raises ``Interrupted``.
    """

    config.validate()
    domain = model.domain
    if config.kind != "interpolate" and domains.find(domain) is None and not (config.typed or config.target_prompt):
        raise ValueError("this model's domain is not known, so it has no attributes of its own: type the attribute "
                         "in words (a phrase and its negation), or a target prompt")
    # 1. The prompt, its negative and the seeds' noise.
    prompt = config.prompt or start_prompt(domain, config.target)
    pipe = model.pipe
    latent_shape = (pipe.unet.config.in_channels, pipe.unet.config.sample_size, pipe.unet.config.sample_size)
    seeds = [int(s) for s in config.seeds]
    control = StepControl(total=config.steps, progress=progress, should_stop=should_stop)
    control.check()
    tic = time.perf_counter()
    negative = encode_prompts(pipe, [config.negative_prompt])[0]
    base = encode_prompts(pipe, [prompt])[0]
    noise = initial_noise(seeds, latent_shape, pipe.unet.dtype, model.device)
    # 2. Every frame's latents at once, by the trajectory's kind, then decoded (a preview: both in bfloat16).
    walk = _Walk(model, config, prompt, base, noise,
                 Sampling(config.steps, config.guidance_scale, negative, config.batch_size), control)
    route, note = (backends.preview_route(pipe.device.type, latent_shape[-1]) if config.preview
                   else ("eager", ""))
    with backends.running(route, pipe.unet):
        if config.kind == "slider":
            result = _slider(walk)
        elif config.kind == "prompt_switch":
            result = _prompt_switch(walk)
        else:
            result = _interpolation(walk, progress, should_stop)
        control.check()
        flat = result.latents.float().reshape(-1, *latent_shape)
        frames = decode_latents(pipe, flat).reshape(len(seeds), config.frames, model.image_size, model.image_size, 3)
    positions, passes = result.positions, result.passes
    unshared, control_points = result.unshared, result.control_points
    # 3. Read with the oracle, score.
    seconds = time.perf_counter() - tic
    attributes, readouts, metrics = (), None, None
    if model.oracle is not None:
        attributes = model.oracle.attributes
        readouts = model.oracle.readout(frames.reshape(-1, *frames.shape[2:])).reshape(len(seeds), config.frames, -1)
        if config.kind != "interpolate" and not config.typed and config.target in attributes:
            metrics = [trajectory_metrics(r, attributes, config.target, model.oracle.factors) for r in readouts]
    parameters = {**asdict(config), "prompt": prompt, "model": model.name, "sampler": "DDIM", "engine": "traverse",
                  "route": route}
    return TraverseResult(frames=frames, positions=np.asarray(positions, dtype=np.float64), seeds=seeds,
                          attributes=attributes, readouts=readouts, metrics=metrics, parameters=parameters,
                          unet_passes=int(passes), unet_passes_unshared=int(unshared), seconds=seconds,
                          control_points=control_points, warnings=(note,) * bool(note))
