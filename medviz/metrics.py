"""Small metrics: numpy, and scipy + scikit-image for image morphology."""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN if one class is absent."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[labels].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def thin_line_shapes(images: np.ndarray, depth: float = 0.06, width: int = 5, min_segment: int = 4,
                     bright: bool = False, background: np.ndarray | None = None, tolerance: int = 1) -> dict:
    """How the thin dark lines of a set of images are shaped: long and straight (hair shafts, catheters),
    or short and branching (a crack net).

    The oracle reads 'hair' off a crack net as readily as off shafts, so prompt agreement cannot tell them
    apart; the shape of the lines can. Lines are the pixels darker than their grey closing over a
    ``width`` px square by more than ``depth`` (a black-hat filter: structures thinner than ``width``),
    thinned to a one-pixel skeleton. Junctions are the 8-connected clusters of skeleton pixels with three
    or more skeleton neighbours; removing them cuts the skeleton into segments.

    Args:
        images: uint8 N x H x W x 3 (or N x H x W) in the I/O contract's display range.
        depth: black-hat threshold, in [0, 1] of the intensity range.
        width: side of the closing's square, px; lines must be thinner than this.
        min_segment: segments shorter than this many px are left out of the segment statistics.
        bright: measure bright lines instead (catheters on an X-ray): the images are inverted first.
        background: images of the same scenes without the structure asked about (a phantom's twin without it, a
            sample of the same noise asked for none), one per image: their lines, grown by ``tolerance`` px, are
            left out, so that a device's lines are measured and not the lung texture around them.
        tolerance: how far, px, a background line may lie from a line it removes. A sample's anatomy moves a little
            when the prompt changes: two CXR prompts that both ask for no devices leave 28 line px per image at 0,
            4 at 1; at 1 a phantom's device keeps 80-90% of its line px (docs/results/gen2.md).

    Returns:
        ``line_px``: mean skeleton pixels per image; ``junctions_per_100px``: junctions per 100 skeleton px;
        ``segment_px``: mean path length of a segment (px); ``straightness``: mean over segments of
        the extent along its principal axis over its path length, 1 for a straight line, lower for a
        curving one. NaN where there are no lines.
    """
    from scipy import ndimage
    from skimage.morphology import skeletonize

    images = np.asarray(images)
    if background is not None and np.shape(background) != images.shape:
        raise ValueError(f"background images must match the images: {np.shape(background)} vs {images.shape}")

    masks = _line_masks(images, depth, width, bright)
    if background is not None:
        grow = np.ones((2 * tolerance + 1, 2 * tolerance + 1), bool)
        behind = _line_masks(np.asarray(background), depth, width, bright)
        masks &= ~np.array([ndimage.binary_dilation(m, grow) for m in behind], bool).reshape(masks.shape)
    eight = np.ones((3, 3), bool)
    line_px, junctions, lengths, straightness = 0, 0, [], []
    for mask in masks:
        skeleton = skeletonize(mask)
        neighbours = ndimage.convolve(skeleton.astype(np.uint8), eight.astype(np.uint8), mode="constant") - 1
        branch = skeleton & (neighbours >= 3)
        line_px += int(skeleton.sum())
        junctions += ndimage.label(branch, eight)[1]
        segments, count = ndimage.label(skeleton & ~ndimage.binary_dilation(branch, eight), eight)
        if count == 0:
            continue
        index = np.arange(1, count + 1)
        on = segments > 0
        # Path length: orthogonal steps count 1, diagonal steps sqrt(2) unless an orthogonal pair already
        # joins the two pixels (the corner of a staircase).
        right, down = on[:, :-1] & on[:, 1:], on[:-1, :] & on[1:, :]
        down_right = on[:-1, :-1] & on[1:, 1:] & ~on[:-1, 1:] & ~on[1:, :-1]
        down_left = on[:-1, 1:] & on[1:, :-1] & ~on[:-1, :-1] & ~on[1:, 1:]
        path = (ndimage.sum(right, segments[:, :-1], index) + ndimage.sum(down, segments[:-1, :], index)
                + np.sqrt(2) * (ndimage.sum(down_right, segments[:-1, :-1], index)
                                + ndimage.sum(down_left, segments[:-1, 1:], index)))
        sizes = ndimage.sum(on, segments, index)
        for label in index[sizes >= min_segment]:
            points = np.argwhere(segments == label).astype(np.float64)
            centred = points - points.mean(0)
            along = centred @ np.linalg.svd(centred, full_matrices=False)[2][0]
            lengths.append(path[label - 1])
            # End-to-end extent along the principal axis over the path length: 1 when straight.
            straightness.append(min(1.0, (along.max() - along.min()) / max(path[label - 1], 1e-9)))
    return {"line_px": line_px / max(len(masks), 1),
            "junctions_per_100px": 100 * junctions / line_px if line_px else float("nan"),
            "segment_px": float(np.mean(lengths)) if lengths else float("nan"),
            "straightness": float(np.mean(straightness)) if straightness else float("nan")}


def tone_spread(images: np.ndarray) -> dict:
    """The 10th, 50th and 90th percentile of the images' mean intensity (uint8 N x H x W x 3 or N x H x W, in
    0..255): whether samples span the data's tones (dark and fair skin, light and dense films) or crowd at the mean,
    as Stable Diffusion's schedule makes them (Lin et al. 2024, arXiv 2305.08891). NaN for no images."""
    images = np.asarray(images, np.float32)
    if not len(images):
        return {"p10": float("nan"), "p50": float("nan"), "p90": float("nan")}
    means = images.reshape(len(images), -1).mean(1)
    p10, p50, p90 = np.percentile(means, [10, 50, 90])
    return {"p10": float(p10), "p50": float(p50), "p90": float(p90)}


def _line_masks(images: np.ndarray, depth: float, width: int, bright: bool) -> np.ndarray:
    """N x H x W bool: the pixels darker (brighter if ``bright``) than their ``width`` px grey closing by ``depth``."""
    from scipy import ndimage

    grey = images.astype(np.float32).mean(-1) / 255 if images.ndim == 4 else images.astype(np.float32) / 255
    if bright:
        grey = 1.0 - grey
    return np.array([ndimage.grey_closing(g, size=(width, width)) - g > depth for g in grey], bool).reshape(grey.shape)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two images in [0, 1] (any matching shape); inf where they are equal."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(np.asarray(a, np.float64), np.asarray(b, np.float64), data_range=1.0))


def channel_mean(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W) mean of the channels (the luminance the edit metrics use); (H, W) unchanged.

    The plain mean, not BT.601 luma: for X-rays stored as equal RGB channels both agree exactly.
    """
    return image.mean(-1) if image.ndim == 3 else image


def change_metrics(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> tuple[float, float, float, float]:
    """(L1 inside, L1 outside, SSIM inside, SSIM outside) of two images in [0, 1] over a bool mask.

    L1 is the mean absolute difference of the luminance; SSIM is scikit-image's SSIM map (Wang et al.
    2004, 7x7 window) averaged over the region. NaN for an empty region.
    """
    from skimage.metrics import structural_similarity

    a = channel_mean(np.asarray(before, np.float32))
    b = channel_mean(np.asarray(after, np.float32))
    _, ssim_map = structural_similarity(a, b, data_range=1.0, full=True)
    absolute = np.abs(a - b)

    def region(values: np.ndarray, where: np.ndarray) -> float:
        return float(values[where].mean()) if where.any() else float("nan")

    return region(absolute, mask), region(absolute, ~mask), region(ssim_map, mask), region(ssim_map, ~mask)


# Calibration and selective prediction of a binary classifier (the stress test). Written here rather than taken
# from scikit-learn, which medviz does not otherwise need: each is a few lines over numpy.

def _clipped(probabilities: np.ndarray) -> np.ndarray:
    return np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), 1e-7, 1 - 1e-7)


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE of P(positive) (Guo et al. 2017, eq. 3, on the top label): the mean over ``bins`` equal-width confidence
    bins of |accuracy - confidence|, weighted by the bin's share of images. In [0, 1]; NaN on no images."""
    labels = np.asarray(labels).astype(bool).ravel()
    p = _clipped(probabilities)
    if not len(p):
        return float("nan")
    predicted = p >= 0.5
    confidence = np.where(predicted, p, 1 - p)                      # in [0.5, 1]
    which = np.minimum((confidence * bins).astype(int), bins - 1)     # equal-width bins over [0, 1], as Guo et al.
    error = 0.0
    for b in np.unique(which):
        inside = which == b
        error += inside.mean() * abs((predicted[inside] == labels[inside]).mean() - confidence[inside].mean())
    return float(error)


def reliability_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict]:
    """The reliability diagram's points: per non-empty top-label confidence bin, its centre, mean confidence,
    accuracy and count."""
    labels = np.asarray(labels).astype(bool).ravel()
    p = _clipped(probabilities)
    predicted = p >= 0.5
    confidence = np.where(predicted, p, 1 - p)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [{"bin": (b + 0.5) / bins, "confidence": float(confidence[which == b].mean()),
             "accuracy": float((predicted == labels)[which == b].mean()), "n": int((which == b).sum())}
            for b in np.unique(which)]


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean -log P(true label), probabilities clipped to [1e-7, 1 - 1e-7] (a sure wrong answer costs 16.1)."""
    labels = np.asarray(labels).astype(bool).ravel()
    p = _clipped(probabilities)
    return float(np.mean(-np.log(np.where(labels, p, 1 - p)))) if len(p) else float("nan")


def selective_accuracy(correct: np.ndarray, uncertainty: np.ndarray, coverage: float = 0.8) -> float:
    """Accuracy on the ``coverage`` share of images the method is least uncertain about (ties kept in input order,
    at least one image): what a user who sets the most uncertain aside gets."""
    correct = np.asarray(correct).astype(bool).ravel()
    if not len(correct):
        return float("nan")
    kept = max(1, int(np.ceil(coverage * len(correct))))
    order = np.argsort(np.asarray(uncertainty, dtype=np.float64).ravel(), kind="stable")
    return float(correct[order[:kept]].mean())


def binary_entropy(probabilities: np.ndarray) -> np.ndarray:
    """Entropy in bits of P(positive), (N,) in [0, 1]: a classifier's own uncertainty when it gives no other."""
    p = _clipped(probabilities)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


def bootstrap_interval(statistic, arrays: tuple[np.ndarray, ...], resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic(*arrays)`` over ``resamples`` resamples of the images (rows, with
    replacement); resamples where the statistic is NaN (one class absent for AUROC) are left out."""
    n = len(arrays[0])
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        rows = rng.integers(0, n, n)
        value = statistic(*(np.asarray(a)[rows] for a in arrays))
        if value == value:
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
