"""Explain: the text-to-image model as a diffusion classifier, with explanation, evidence and uncertainty maps.

The class whose prompt best denoises the image wins (Li et al. 2023, eq. 5; Favero et al. 2025, arXiv
2502.03687): per trial one stratified timestep and one noise draw shared by all classes, every class prompt
in one batched UNet call, the trial's vote to the lowest error (weighted to where the class prompts
disagree, or uniformly as in the papers); a class may be a set of context prompts (confounders named on
both sides). Decision: the vote, at a model card's fitted operating point for a preset, or the mean-error
rule; exact early stop. Maps: where the classes' predictions differ, which class each pixel supports, and
how much that varies across trials. Why each piece, and what it measured: docs/explain.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from .. import domains
from ..card import DEFAULT_T_RANGE, Calibration, calibration
from ..prompts import class_prompts
from .common import (Progress, ShouldStop, StepControl, encode_image, encode_prompts, forward_noise, predict_noise,
                     setting_differences)
from .guard import DomainCheck, check_domain


def preset_names(domain: str | None) -> list[str]:
    """The diffusion-classifier presets of a domain (none for an unknown domain)."""
    known = domains.find(domain)
    return list(known.presets) if known else []


def preset(domain: str | None, task: str) -> tuple[tuple[str, ...], tuple] | None:
    """(class labels, class prompts) of a domain's preset ``task``, or None: one prompt per class, or per class
    a tuple of context prompts (the confounders named on both sides, ``ClassifierPreset.contexts``)."""
    known = domains.find(domain)
    key = known.preset_key(task) if known else None
    if key is None:
        return None
    entry = known.presets[key]
    pairs = [class_prompts(known.name, entry.attribute, context, entry.companions) for context in entry.contexts]
    with_it, without = tuple(p for p, _ in pairs), tuple(q for _, q in pairs)
    return entry.labels, ((with_it[0], without[0]) if len(pairs) == 1 else (with_it, without))


WEIGHTINGS = ("disagreement", "uniform")
DECISIONS = ("vote", "mean_error")
DEFAULT_TRIALS = 21                  # N where a model card has no fit for the task (see ExplainConfig.trials)


@dataclass(frozen=True)
class ExplainConfig:
    """A classification request.

    Args:
        prompts: per class (2..8) one prompt, or a tuple of context prompts (the class is scored in its
            best-explaining context; equal-length tuples are aligned contexts, see ``trial_class_errors``).
        labels: display names of the classes (default: the prompts).
        trials: N, odd, 1..1001 (Favero et al.: 501). The majority saturates near 21 on our phantoms; a fitted
            vote threshold wants the N its model card names (``calibrated_settings``; docs/explain.md).
        early_stop: stop once the vote leader cannot be overtaken (exact).
        t_range: (t_min, t_max) of the training schedule's timesteps to stratify over.
        trials_per_batch: most trials per round (x prompts each); progress and the interrupt check come
            after every round. With ``early_stop`` a round never runs past the first trial at which the
            decision could become final (``trials_until_decidable``), so the stop is as early as with one
            trial per round. A round's samples reach the UNet in calls of at most ``CPU_UNET_BATCH`` on a
            CPU (``predict_noise``).
        weighting: how a trial's per-pixel errors become a class error: "uniform" (the papers' mean
            squared error) or "disagreement" (weighted to where the class prompts' predictions differ);
            see ``trial_class_errors``.
        vote_threshold: two classes only: the first class wins when it gets at least this share of the N
            votes, in (0, 1); 0.5 is the plain majority. See ``calibrated_settings``.
        decision: which rule gives ``predicted``: "vote" (Favero et al.: the vote at ``vote_threshold``)
            or "mean_error" (Li et al.'s eq. 5 read as an estimate: the class with the lowest mean error over
            the trials run). Both are always reported. With ``early_stop`` the trials stop when the vote is
            decided under either rule: exact for the vote; for the mean-error rule it is the stopping time
            its model card fitted it under (``calibrate`` replays it, ``trials_run_until_decided``).
        seed: seeds the timestep order and the noise draws.
        domain_check: check first that the image is like the model's training images (``medviz.guard``; its
            UNet passes are counted apart); the benches, on phantoms, leave it out.
    """

    prompts: tuple[str | tuple[str, ...], ...]
    labels: tuple[str, ...] | None = None
    trials: int = DEFAULT_TRIALS
    early_stop: bool = True
    t_range: tuple[int, int] = DEFAULT_T_RANGE
    trials_per_batch: int = 16
    weighting: str = "disagreement"
    vote_threshold: float = 0.5
    decision: str = "vote"
    seed: int = 0
    domain_check: bool = True

    @property
    def prompt_sets(self) -> tuple[tuple[str, ...], ...]:
        return tuple((p,) if isinstance(p, str) else tuple(p) for p in self.prompts)

    def class_labels(self) -> tuple[str, ...]:
        return tuple(self.labels or (group[0] for group in self.prompt_sets))

    def validate(self) -> None:
        if not 2 <= len(self.prompts) <= 8:
            raise ValueError(f"give 2 to 8 class prompts, got {len(self.prompts)}")
        if any(not p.strip() for group in self.prompt_sets for p in group) or any(not g for g in self.prompt_sets):
            raise ValueError("a class prompt is empty")
        if self.labels is not None and len(self.labels) != len(self.prompts):
            raise ValueError("give one label per class prompt")
        if not (1 <= self.trials <= 1001 and self.trials % 2 == 1):
            raise ValueError(f"the number of trials must be odd and 1..1001, got {self.trials}")
        if not 0 <= self.t_range[0] < self.t_range[1]:
            raise ValueError(f"bad timestep range {self.t_range}")
        if not 0 < self.vote_threshold < 1:
            raise ValueError(f"the vote threshold is a share of the votes in (0, 1), got {self.vote_threshold}")
        if self.vote_threshold != 0.5 and len(self.prompts) != 2:
            raise ValueError("a vote threshold other than 0.5 needs exactly two classes")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"unknown weighting {self.weighting!r}; choose one of {', '.join(WEIGHTINGS)}")
        if self.decision not in DECISIONS:
            raise ValueError(f"unknown decision rule {self.decision!r}; choose one of {', '.join(DECISIONS)}")


@dataclass(frozen=True)
class ExplainResult:
    """Everything about one classification; maps are float32 (H, W) at the image's model resolution."""

    labels: tuple[str, ...]
    predicted: int                       # index of the class the config's decision rule picks
    predicted_vote: int                  # index under the vote (at the config's vote threshold)
    predicted_mean_error: int            # index under the mean-error rule (over the trials run)
    runner_up: int                       # the class the maps contrast with ``predicted`` (under the same rule)
    vote_fractions: np.ndarray           # (C,) votes / trials run: the class probabilities shown
    vote_entropy: float                  # bits; 0 = unanimous
    z_score: float                       # paired error difference, leader vs runner-up (higher = surer)
    errors: np.ndarray                   # (trials_run, C) per-trial mean squared errors
    timesteps: np.ndarray                # (trials_run,)
    explanation_map: np.ndarray          # mean ||eps_hat(winner) - eps_hat(runner-up)||^2 per pixel (>= 0)
    evidence_map: np.ndarray             # mean err(runner-up) - err(winner) per pixel (> 0: supports the winner)
    uncertainty_map: np.ndarray          # std of that error difference across trials per pixel
    trials_run: int
    unet_passes: int                     # sample evaluations (trials_run x prompts)
    seconds: float
    parameters: dict
    domain_check: DomainCheck | None = None   # None: not run (``ExplainConfig.domain_check`` False)

    @property
    def warnings(self) -> tuple[str, ...]:
        """What a user should know first: an image outside the model's domain (or a model without a check)."""
        return (self.domain_check.warning,) if self.domain_check is not None and self.domain_check.warning else ()

    @property
    def meaningful(self) -> bool:
        """False when the domain check says the image is outside the model's domain."""
        return self.domain_check is None or self.domain_check.in_domain is not False

    @property
    def label(self) -> str:
        return self.labels[self.predicted]

    @property
    def certainty(self) -> str:
        """'high' (|z| > 3 and vote entropy < 0.5 bits), 'moderate' (|z| > 1.5) or 'low': how thin the evidence is."""
        if abs(self.z_score) > 3 and self.vote_entropy < 0.5:
            return "high"
        return "moderate" if abs(self.z_score) > 1.5 else "low"


def stratified_timesteps(n: int, t_range: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """n timesteps, one uniform draw inside each of n equal strata of t_range, in random stratum order."""
    lo, hi = t_range
    edges = np.linspace(lo, hi + 1, n + 1)
    draws = np.floor(edges[:-1] + rng.random(n) * (edges[1:] - edges[:-1])).astype(np.int64)
    return np.clip(draws, lo, hi)[rng.permutation(n)]


def trial_draws(config: ExplainConfig, latent_shape: tuple[int, ...]):
    """Every trial's (t_j, eps_j) for ``config.seed``: (N,) int timesteps over ``config.t_range`` and (N, *latent_shape)
    float32 noise, all drawn up front on the CPU, so trial j gets the same draw however trials are batched
    (the engine and the reference loop share them through this function)."""
    import torch

    timesteps = stratified_timesteps(config.trials, config.t_range, np.random.default_rng(config.seed))
    noise = torch.randn((config.trials, *latent_shape), generator=torch.Generator("cpu").manual_seed(config.seed))
    return timesteps, noise


def leader_is_final(votes: np.ndarray, remaining: int) -> bool:
    """True when no other class can reach the leader's votes with the remaining trials (exact stop)."""
    order = np.sort(votes)[::-1]
    return order[0] > order[1] + remaining


def votes_needed(trials: int, threshold: float) -> int:
    """Votes of N = ``trials`` that the first of two classes needs to win at ``threshold`` (0.5: majority)."""
    return max(1, math.ceil(round(threshold * trials, 9)))


def first_class_wins(votes: np.ndarray, trials: int, threshold: float = 0.5) -> bool:
    """Two classes: whether the first reached its ``votes_needed`` (also right after an exact early stop)."""
    return bool(votes[0] >= votes_needed(trials, threshold))


def decision_is_final(votes: np.ndarray, remaining: int, trials: int, threshold: float = 0.5) -> bool:
    """True when the remaining trials cannot change the decision (exact stop).

    Two classes: the first class's count has reached ``votes_needed`` or cannot reach it any more; with a
    threshold of 0.5 and odd N this is ``leader_is_final``. More classes: ``leader_is_final``.
    """
    if len(votes) != 2:
        return leader_is_final(votes, remaining)
    needed = votes_needed(trials, threshold)
    return bool(votes[0] >= needed or votes[0] + remaining < needed)


def trials_until_decidable(votes: np.ndarray, remaining: int, trials: int, threshold: float = 0.5) -> int:
    """The fewest further trials after which the decision could be final (``decision_is_final``), 1..remaining.

    The engine puts at most this many trials into its next round, so early stop comes exactly as soon as
    with one trial per round while easy images are still decided in one batched round (a unanimous
    two-class image with N = 21 under the majority: one round of 11 trials).
    """
    for extra in range(1, remaining + 1):
        for c in range(len(votes)):
            ahead = votes.copy()
            ahead[c] += extra
            if decision_is_final(ahead, remaining - extra, trials, threshold):
                return extra
    return max(remaining, 1)


def trials_run_until_decided(first_class_won, trials: int, threshold: float = 0.5) -> int:
    """Two classes: how many trials the engine runs with ``early_stop``, given every trial's winner in order.

    Args:
        first_class_won: (N,) bool, whether the first class won trial j (the engine's draw order).
    The engine stops after the first trial at which ``decision_is_final`` holds (its rounds never run
    past it, see ``trials_until_decidable``), so the stop depends on the winners only, and a run without
    early stop can be replayed as if it had stopped.
    """
    won = np.asarray(first_class_won, bool)[:trials]
    votes = np.zeros(2, np.int64)
    for done, first in enumerate(won, start=1):
        votes[0 if first else 1] += 1
        if decision_is_final(votes, trials - done, trials, threshold):
            return done
    return len(won)


def calibrated_settings(model, task: str, weighting: str | None = None) -> dict:
    """The operating point a model card fitted for a preset task (``explain_calibration`` in medviz.json).

    Returns ``{"weighting", "t_range", "vote_threshold", "decision", "trials"}``, ready to pass to ``ExplainConfig``.
    ``trials`` is the N the threshold was fitted at: "k of N votes" is exact only at that N (and with the
    card's seed, on exactly the tuning draws); at another N the same share is the nearest reading. A card
    may instead name an N a classify bench measured that share at on held-out phantoms
    (``medviz.bench.cards.record_engine_trials``; the fit's own N is then ``trials_run``). With
    ``weighting=None`` the card's own weighting is used; a fit is applied only under the weighting it was
    fitted with, so an explicitly different rule (or a card with no fit for the task: any user checkpoint)
    gets the plain majority over the whole schedule at the default N. A checkpoint is never given another
    model's fit.
    """
    fit = _fit(model, task)
    if fit is None or (weighting is not None and weighting != fit.weighting):
        return {"weighting": weighting or "disagreement", "t_range": DEFAULT_T_RANGE, "vote_threshold": 0.5,
                "decision": "vote", "trials": DEFAULT_TRIALS}
    return {"weighting": fit.weighting, "t_range": fit.t_range, "vote_threshold": fit.vote_threshold,
            "decision": fit.decision, "trials": fit.trials}


def _fit(model, task: str) -> Calibration | None:
    return calibration(getattr(model, "card", None) or {}, task, DEFAULT_TRIALS)


def fitted_trials(model, task: str) -> int | None:
    """The N a card's vote threshold was fitted at (None: no fit), which may differ from the N it runs at.

    "k of N votes" is exact only at this N; ``calibrated_settings``'s ``trials`` is the N to run, which a
    classify bench may have moved to another N at the same share (``trials_run`` then keeps the fit's N).
    """
    fit = _fit(model, task)
    return None if fit is None else fit.trials_run


def measured_classifier(model, task: str, config: ExplainConfig) -> dict | None:
    """The classify bench's held-out figures for a preset task at its model card's operating point, or None.

    The record (``engine_trials_bench`` in the card's ``explain_calibration`` entry for ``task``, written by
    ``python -m medviz.bench classify --write-card``) holds for the preset's prompts at the card's operating
    point and N. None for another prompt set or a card without the record; else a copy with ``task``,
    ``differences`` ({setting: (measured at, this request)} over trials, weighting, t_range, vote_threshold
    and decision) and ``same_settings``.
    """
    fit = _fit(model, task)
    record = fit.engine_trials_bench if fit is not None else None
    prompts = preset(getattr(model, "domain", None), task)
    if not record or prompts is None or tuple(config.prompts) != tuple(prompts[1]):
        return None
    # The operating point the bench ran at, its N included.
    differences = setting_differences(calibrated_settings(model, task), config)
    return {**record, "task": task, "differences": differences, "same_settings": not differences}


@dataclass
class _Trials:
    """The trials run: per-class errors (N, K), per-class error maps (N, K, h, w), the summed per-pixel disagreement
    of every two classes' chosen prompts (K, K, h, w), the votes (K,), the timesteps drawn and how many ran."""

    errors: np.ndarray
    maps: object
    disagreement: object
    votes: np.ndarray
    timesteps: np.ndarray
    done: int


def _run_trials(pipe, latent, config: ExplainConfig, control: StepControl) -> _Trials:
    """Every prompt of every trial in one batched UNet call per chunk of trials, stopping (``early_stop``) once the
    remaining votes cannot change the decision."""
    import torch

    sets = config.prompt_sets
    classes = len(sets)
    flat_prompts = [p for group in sets for p in group]
    width = len(flat_prompts)
    device, dtype = pipe._execution_device, pipe.unet.dtype
    prompts = encode_prompts(pipe, flat_prompts).to(dtype)                        # (P, T, D), once
    timesteps, all_noise = trial_draws(config, latent.shape[1:])
    errors, maps, votes = [], [], np.zeros(classes, np.int64)
    # Sum over trials of the per-pixel disagreement between every two classes' chosen prompts.
    disagreement = torch.zeros((classes, classes, *latent.shape[2:]))
    done = 0
    while done < config.trials:
        n = min(config.trials_per_batch, config.trials - done)
        if config.early_stop:     # never run past the first trial at which the decision could become final
            n = min(n, trials_until_decidable(votes, config.trials - done, config.trials, config.vote_threshold))
        chunk = timesteps[done:done + n]
        noise = all_noise[done:done + n].to(device=device, dtype=dtype)
        t = torch.as_tensor(chunk, device=device)
        noisy = forward_noise(pipe.scheduler.alphas_cumprod, latent, noise, t)
        # Every prompt of every trial in the chunk: (n * P) samples, trial-major.
        predicted = predict_noise(pipe.unet, noisy.repeat_interleave(width, 0), t.repeat_interleave(width),
                                  prompts.repeat(n, 1, 1))
        by_prompt = predicted.float().view(n, width, *predicted.shape[1:]).cpu()   # (n, P, C, h, w)
        per_trial, chosen, squared = trial_class_errors(by_prompt, noise.float().cpu(), sets, config.weighting)
        errors.append(per_trial.numpy())
        maps.append(per_class(squared, chosen))
        picked = per_class(by_prompt, chosen)
        for a in range(classes):
            for b in range(a + 1, classes):
                disagreement[a, b] += ((picked[:, a] - picked[:, b]) ** 2).mean(dim=1).sum(dim=0)
        votes += np.bincount(per_trial.argmin(1).numpy(), minlength=classes)
        done += n
        control.step(n)
        if config.early_stop and decision_is_final(votes, config.trials - done, config.trials, config.vote_threshold):
            break
    return _Trials(np.concatenate(errors), torch.cat(maps), disagreement, votes, timesteps, done)


def _decide(errors: np.ndarray, votes: np.ndarray, config: ExplainConfig) -> tuple[int, int, int, int]:
    """(predicted, runner-up, the vote's winner, the mean-error rule's winner) under ``config.decision``."""
    classes = len(votes)
    mean_errors = errors.mean(0)
    if classes == 2:
        # The first class wins at its threshold (majority by default); the final count decides it even
        # when trials stopped early, since the stop waits until the remaining votes cannot change it.
        predicted_vote = 0 if first_class_wins(votes, config.trials, config.vote_threshold) else 1
        vote_runner_up = 1 - predicted_vote
    else:
        # Vote winner; ties (possible with > 2 classes) go to the lower mean error.
        ranking = sorted(range(classes), key=lambda c: (-votes[c], mean_errors[c]))
        predicted_vote, vote_runner_up = ranking[0], ranking[1]
    by_mean_error = np.argsort(mean_errors, kind="stable")
    predicted_mean = int(by_mean_error[0])
    if config.decision == "vote":
        return predicted_vote, vote_runner_up, predicted_vote, predicted_mean
    return predicted_mean, int(by_mean_error[1]), predicted_vote, predicted_mean


def classify(model, image: np.ndarray, config: ExplainConfig, progress: Progress = None,
             should_stop: ShouldStop = None) -> ExplainResult:
    """Classify ``image`` (I/O contract) among ``config.prompts`` by denoising error.

    Args:
        model: a ``medviz.models.Model``.
        image: float32 (H, W) or (H, W, 3) in [0, 1]; resized to the model's resolution.
        progress: ``progress(trials_done, trials)`` after every batch of trials.
        should_stop: polled after every batch; True raises ``Interrupted``.
    """
    import torch

    # 1. The request, the domain check and the input's latent (once).
    config.validate()
    pipe, size, labels = model.pipe, model.image_size, config.class_labels()
    width = sum(len(group) for group in config.prompt_sets)
    control = StepControl(total=config.trials, progress=progress, should_stop=should_stop)
    control.check()
    tic = time.perf_counter()
    checked = check_domain(model, image) if config.domain_check else None
    latent = encode_image(pipe, image, size).to(pipe.unet.dtype)                   # (1, C, h, w), once
    # 2. The trials (every prompt's states once; the seeded timesteps and noise), in batches, until decided.
    trials = _run_trials(pipe, latent, config, control)
    errors_all, trial_maps, done = trials.errors, trials.maps, trials.done
    # 3. The decision and its certainty.
    predicted, runner_up, predicted_vote, predicted_mean = _decide(errors_all, trials.votes, config)
    votes = trials.votes
    difference = errors_all[:, runner_up] - errors_all[:, predicted]
    spread = difference.std(ddof=1) if len(difference) > 1 else np.inf
    z_score = float(difference.mean() / (spread / np.sqrt(len(difference)))) if spread > 0 else float("inf")
    fractions = votes / votes.sum()
    nonzero = fractions[fractions > 0]
    entropy = float(-(nonzero * np.log2(nonzero)).sum())
    # 4. The maps: evidence (mean error difference), explanation (where the classes' predictions differ), uncertainty.
    pixel_difference = trial_maps[:, runner_up] - trial_maps[:, predicted]      # (trials_run, h, w)
    evidence = _upsample(pixel_difference.mean(0), size)
    a, b = sorted((predicted, runner_up))
    explanation = _upsample(trials.disagreement[a, b] / done, size)
    uncertainty = _upsample(pixel_difference.std(0) if len(pixel_difference) > 1 else
                            torch.zeros_like(pixel_difference[0]), size)
    parameters = {**asdict(config), "labels": labels, "model": model.name, "engine": "explain",
                  "domain_check": checked.record() if checked else None}
    return ExplainResult(
        labels=labels,
        predicted=predicted,
        predicted_vote=predicted_vote,
        predicted_mean_error=predicted_mean,
        runner_up=runner_up,
        vote_fractions=fractions.astype(np.float64),
        vote_entropy=entropy,
        z_score=z_score,
        errors=errors_all,
        timesteps=trials.timesteps[:done],
        explanation_map=explanation,
        evidence_map=evidence,
        uncertainty_map=uncertainty,
        trials_run=done,
        unet_passes=done * width,
        seconds=time.perf_counter() - tic,
        parameters=parameters,
        domain_check=checked,
    )


def trial_class_errors(predictions, noise, sets: tuple[tuple[str, ...], ...], weighting: str):
    """Each trial's error per class, the prompt that gives it, and every prompt's per-pixel squared error.

    Args:
        predictions: (n, P, C, h, w) eps_hat of every prompt (classes' sets concatenated) per trial.
        noise: (n, C, h, w) the eps each trial drew.
        sets: the classes' prompt sets (their lengths give the layout of P).
        weighting: "uniform" (Li et al., Favero et al.): the plain mean squared error, each class at its
            best-explaining prompt. "disagreement": within the trial's best-fitting context, the squared
            error averaged with per-pixel weights proportional to the variance of eps_hat across the
            classes, i.e. counted only where the class prompts disagree. Why: where they agree the
            difference of errors is pure noise, and a confounder the class prompt partly "explains"
            (devices beside effusion, gel bubbles beside melanoma) then outvotes the finding itself.
            Prompt sets of equal length are read as aligned contexts (context k on every side, as the
            presets build them); the trial's context is the one with the lowest summed error.
    Returns:
        errors (n, K) float, chosen (n, K) long flat prompt indices, squared (n, P, h, w).
    """
    import torch

    squared = ((predictions - noise[:, None]) ** 2).mean(dim=2)                  # (n, P, h, w)
    prompt_errors = squared.mean(dim=(2, 3))                                      # (n, P)
    offsets = np.cumsum([0] + [len(group) for group in sets])
    classes = len(sets)
    lengths = {len(group) for group in sets}
    if weighting == "disagreement" and len(lengths) == 1:
        contexts = torch.stack([prompt_errors[:, offsets[c]:offsets[c + 1]] for c in range(classes)]).sum(0)
        context = contexts.argmin(1)                                              # (n,)
        chosen = torch.stack([offsets[c] + context for c in range(classes)], 1)
    else:
        chosen = torch.stack([offsets[c] + prompt_errors[:, offsets[c]:offsets[c + 1]].argmin(1)
                              for c in range(classes)], 1)
    if weighting == "uniform":
        return per_class(prompt_errors, chosen), chosen, squared
    picked = per_class(predictions, chosen)
    weights = picked.var(dim=1, unbiased=False).mean(dim=1)                       # (n, h, w)
    total = weights.sum(dim=(1, 2), keepdim=True)
    weights = torch.where(total > 0, weights / total.clamp_min(1e-30), torch.full_like(weights, 1 / weights[0].numel()))
    picked_squared = per_class(squared, chosen)
    return (picked_squared * weights[:, None]).sum(dim=(2, 3)), chosen, squared


def per_class(values, chosen):
    """``values`` (n, P, ...) of every prompt -> (n, K, ...) at each class's ``chosen`` (n, K) prompt."""
    import torch

    index = chosen.view(*chosen.shape, *(1,) * (values.dim() - 2)).expand(-1, -1, *values.shape[2:])
    return torch.gather(values, 1, index)


def _upsample(grid, size: int) -> np.ndarray:
    import torch.nn.functional as F

    return (
        F.interpolate(grid[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)[0, 0]
        .numpy()
        .astype(np.float32)
    )
