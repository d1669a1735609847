"""Domain-check bench: calibrate ``medviz.guard`` on held-out phantoms, then measure its false alarms (held-out
phantoms, phantoms at the edges of the training acquisition ranges) and its detection of far images (natural
images, CT/MR slices, the other domain's phantoms, constant and noise images, rotated phantoms).

    python -m medviz.bench guard --domain cxr [--write-card]
    python -m medviz.bench guard --model PATH --images FOLDER --write-card     # a user's own checkpoint
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..engines import guard
from ..engines.counterfactual import EditConfig, counterfactual, editable
from ..io import ImageReadError, read_image
from ..models import Model, load_model, resolve
from ..phantoms import DOMAINS, get_domain
from ..train.data import render_phantoms
from ..train.oracle import HELD_OUT_FIRST_SEED
from .cards import record_domain_check
from .cli import add_common, chosen_domains, write_json

#: Seed offsets (beyond HELD_OUT_FIRST_SEED) of the guard's phantom sets: none overlaps another bench's.
FIT_OFFSET, THRESHOLD_OFFSET, TEST_OFFSET, EDGE_OFFSET, FAR_OFFSET = 800_000, 810_000, 820_000, 830_000, 840_000
#: Threshold: the largest score of phantoms at the corners of the training acquisition ranges, with 10% headroom
#: (bundled models); a user's folder: the largest score of its held-back half, with 25%.
PHANTOM_MARGIN, FOLDER_MARGIN = 1.1, 1.25
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm")


def phantoms(domain: str, n: int, size: int, offset: int) -> list[np.ndarray]:
    images, _ = render_phantoms(domain, n, size, HELD_OUT_FIRST_SEED + offset, workers=1)
    return list(images)


def edge_phantoms(domain: str, n: int, size: int, offset: int = EDGE_OFFSET, corners: bool = True) -> list[np.ndarray]:
    """Phantoms with every acquisition factor at one end of its training range (a random corner per phantom), or,
    with ``corners`` False, drawn uniformly across the range (the calibration's: the check accepts the whole
    range, not only its crowded centre)."""
    module = get_domain(domain)
    graph, ranges = module.build_graph(), module.ACQUISITION_RANGES
    rng = np.random.default_rng(offset)
    images = []
    for i in range(n):
        sample = graph.sample(HELD_OUT_FIRST_SEED + offset + i)
        draws = rng.integers(2, size=len(ranges)) if corners else rng.random(len(ranges))
        changes = {name: round(float(lo + (hi - lo) * u), 4) for (name, (lo, hi)), u in zip(ranges.items(), draws)}
        if not corners and sample.factors.get("vignette", 1) == 0:
            changes.pop("vignette")           # a vignette is absent or within its range: keep the drawn absence
        moved = graph.intervene(sample, **changes)
        images.append(module.render(moved.factors, moved.seed, max(size, 128)).image)       # the checks resize
    return images


def natural_images() -> list[tuple[str, np.ndarray]]:
    """Every image in ``skimage.data`` that loads offline (faces of ``lfw_subset`` one by one)."""
    import skimage.data

    found = []
    for name in sorted(skimage.data.__all__):
        if name in ("download_all", "file_hash", "data_dir", "lbp_frontal_face_cascade_filename"):
            continue
        try:
            value = getattr(skimage.data, name)()
        except Exception:        # the datasets skimage would download (pooch) are not on disk: skipped
            continue
        except BaseException as error:       # under pytest skimage turns that failed download into a skip
            if type(error).__name__ != "Skipped":
                raise
            continue
        arrays = value if isinstance(value, tuple) else [value]
        for index, array in enumerate(arrays):
            array = np.asarray(array)
            if not np.isfinite(array).all():           # stereo_motorcycle's third array: a disparity map, not an image
                continue
            if array.ndim == 3 and array.shape[-1] not in (3, 4):
                found += [(f"{name}[{j}]", _contract(a)) for j, a in enumerate(array)]
            elif array.ndim in (2, 3):
                found.append((name if len(arrays) == 1 else f"{name}[{index}]", _contract(array)))
    return found


def _contract(array: np.ndarray) -> np.ndarray:
    """Any skimage array -> the I/O contract (float32 in [0, 1], gray or RGB)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 4:
        array = array[..., :3]
    array = array.astype(np.float32)
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def dicom_slices() -> list[tuple[str, np.ndarray]]:
    """pydicom's bundled CT and MR test files that read into the contract (one slice each). Listed from its data
    folder: ``get_testdata_files`` also tries to download pydicom's external test files (15 s of failed requests
    offline)."""
    import pydicom
    from pydicom.data.data_manager import DATA_ROOT

    found = []
    for path in sorted((Path(DATA_ROOT) / "test_files").glob("*.dcm")):
        try:
            modality = pydicom.dcmread(path, stop_before_pixels=True).get("Modality")
            if modality in ("CT", "MR"):
                found.append((f"{modality} {Path(path).name}", read_image(path).pixels))
        except (ImageReadError, Exception):           # unreadable or unsupported test files are left out
            continue
    return found


def far_set(domain: str, size: int, n_phantoms: int = 60) -> list[tuple[str, str, np.ndarray]]:
    """(group, name, image) for everything the check must flag."""
    rng = np.random.default_rng(FAR_OFFSET)
    other = next(d for d in DOMAINS if d != domain)
    rows = [("natural", name, image) for name, image in natural_images()]
    rows += [("CT/MR", name, image) for name, image in dicom_slices()]
    rows += [(f"{other} phantom", str(i), image.astype(np.float32) / 255)
             for i, image in enumerate(phantoms(other, n_phantoms, size, FAR_OFFSET))]
    rows += [("constant", f"{v:.1f}", np.full((size, size), v, np.float32)) for v in np.linspace(0, 1, 11)]
    rows += [("noise", f"uniform {i}", rng.random((size, size), dtype=np.float32)) for i in range(10)]
    rows += [("noise", f"gaussian {i}", np.clip(0.5 + 0.2 * rng.standard_normal((size, size)), 0, 1).astype(np.float32))
             for i in range(10)]
    rows += [("noise", f"colour {i}", rng.random((size, size, 3), dtype=np.float32)) for i in range(10)]
    rows += [("rotated 90°", str(i), np.rot90(image, 1 + 2 * (i % 2)).astype(np.float32) / 255)
             for i, image in enumerate(phantoms(domain, n_phantoms, size, FAR_OFFSET + 10_000))]
    return rows


def folder_images(folder: str | Path) -> list[np.ndarray]:
    """Every image file under ``folder`` that reads into the contract (a user's in-domain images)."""
    paths = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for path in paths:
        try:
            images.append(read_image(path).pixels)
        except ImageReadError as error:
            print(f"skipped {path.name}: {error}")
    if len(images) < 40:
        raise SystemExit(f"{folder}: {len(images)} readable images; the domain check needs at least 40 in-domain "
                         "images")
    return images


def fit(model: Model, scale_images: list, threshold_images: list, margin: float) -> dict:
    """The card's calibration: centres and spreads from ``scale_images``, the threshold from the largest score
    of ``threshold_images`` (another split) times ``margin``."""
    calibration = guard.fit_scale(guard.raw_features(model, scale_images))
    calibration["threshold"] = guard.fit_threshold(calibration, guard.raw_features(model, threshold_images), margin)
    calibration.update(timesteps=list(guard.TIMESTEPS), n_scale=len(scale_images), n_threshold=len(threshold_images),
                       margin=margin)
    return calibration


def scored(model: Model, images: list, calibration: dict) -> np.ndarray:
    """(N,) scores of images under a calibration."""
    return guard.scores(guard.raw_features(model, images), calibration)


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(an outside score > an inside score), ties half (the Mann-Whitney statistic)."""
    inside, outside = np.asarray(inside), np.asarray(outside)
    greater = (outside[:, None] > inside[None, :]).mean()
    ties = (outside[:, None] == inside[None, :]).mean()
    return float(greater + 0.5 * ties)


def cost(model: Model, image: np.ndarray, repeats: int = 3) -> dict:
    """A check's best-of seconds and UNet passes beside a default edit's (the Edit tab's defaults, no check)."""
    guard.check_domain(model, image)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        guard.check_domain(model, image)
        times.append(time.perf_counter() - start)
    config = replace(EditConfig(remove=(editable(model.domain)[0],)).for_domain(model.domain), domain_check=False)
    edit = counterfactual(model, image, config)
    return {"check_seconds": min(times), "edit_unet_passes": edit.unet_passes, "edit_seconds": edit.seconds,
            "cost_vs_edit": len(guard.TIMESTEPS) / edit.unet_passes, "seconds_vs_edit": min(times) / edit.seconds}


def run_domain(model: Model, domain: str, n_test: int, n_fit: int, n_edge: int) -> tuple[dict, dict]:
    """(summary, calibration) of one bundled model: centres and spreads from phantoms drawn across the training
    acquisition ranges, the threshold from phantoms at their corners, both splits apart from every test set."""
    size = model.image_size
    calibration = fit(model, edge_phantoms(domain, n_fit, size, FIT_OFFSET, corners=False),
                      edge_phantoms(domain, n_fit, size, THRESHOLD_OFFSET), PHANTOM_MARGIN)
    threshold = calibration["threshold"]
    held_out = scored(model, phantoms(domain, n_test, size, TEST_OFFSET), calibration)
    edge = scored(model, edge_phantoms(domain, n_edge, size), calibration)
    far = far_set(domain, size)
    far_scores = scored(model, [image for _, _, image in far], calibration)
    groups = {}
    for (group, name, _), score in zip(far, far_scores):
        entry = groups.setdefault(group, {"n": 0, "detected": 0, "lowest_score": float("inf"), "missed": []})
        entry["n"] += 1
        entry["detected"] += int(score > threshold)
        entry["lowest_score"] = round(min(entry["lowest_score"], float(score)), 2)
        if score <= threshold:
            entry["missed"].append(name)
    summary = {"domain": domain, "model": model.name, "threshold": round(threshold, 3),
               "false_alarms_held_out": float((held_out > threshold).mean()), "n_held_out": len(held_out),
               "false_alarms_edges": float((edge > threshold).mean()), "n_edges": len(edge),
               "detection_far": float((far_scores > threshold).mean()), "n_far": len(far),
               "auroc": auroc(np.concatenate([held_out, edge]), far_scores), "far_groups": groups,
               "held_out_max_score": round(float(held_out.max()), 3), "edges_max_score": round(float(edge.max()), 3),
               "far_min_score": round(float(far_scores.min()), 3), "unet_passes_per_check": len(guard.TIMESTEPS)}
    return summary, calibration


def write_card(model_dir: Path, calibration: dict, summary: dict, command: str) -> None:
    """Store the calibration, and the figures it was measured at, in the model's medviz.json ``domain_check``."""
    record_domain_check(model_dir, {**calibration, "date": datetime.date.today().isoformat(), "command": command,
                                    "measured": {**{k: v for k, v in summary.items() if k != "far_groups"},
                                                 "far_by_group": {g: f"{e['detected']}/{e['n']}" for g, e in
                                                                  summary.get("far_groups", {}).items()}}})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", default=None, help="bundled name or local path (default: each domain's bundled model)"
    )
    parser.add_argument(
        "--images", default=None, help="a user's model: a folder of its in-domain images to calibrate on"
    )
    parser.add_argument("--n", type=int, default=1000, help="held-out phantoms for the false-alarm rate")
    parser.add_argument("--n-fit", type=int, default=300, help="phantoms per calibration split (two splits)")
    parser.add_argument("--n-edges", type=int, default=300, help="phantoms at the edges of the acquisition ranges")
    parser.add_argument("--write-card", action="store_true", help="store the calibration in the model's medviz.json")
    add_common(parser)


def _print(summary: dict) -> None:
    print(
        f"{summary['domain']}: threshold {summary['threshold']}; false alarms: held-out "
        f"{summary['false_alarms_held_out']:.2%} of {summary['n_held_out']}, edges {summary['false_alarms_edges']:.2%} "
        f"of {summary['n_edges']}; detection {summary['detection_far']:.2%} of {summary['n_far']} far images; "
        f"AUROC {summary['auroc']:.4f}; check {summary['check_seconds'] * 1e3:.0f} ms, "
        f"{summary['unet_passes_per_check']} UNet passes ({summary['cost_vs_edit']:.1%} of a default edit's "
        f"{summary['edit_unet_passes']}; {summary['seconds_vs_edit']:.1%} of its {summary['edit_seconds']:.1f} s)"
    )
    for group, entry in summary["far_groups"].items():
        missed = f"; missed: {', '.join(entry['missed'][:8])}" if entry["missed"] else ""
        print(f"  {group:<14}{entry['detected']:>4}/{entry['n']:<4}{missed}")


def _user_model(args, command: str) -> int:
    model = load_model(args.model)
    images = folder_images(args.images)
    half = len(images) // 2
    calibration = fit(model, images[:half], images[half:], FOLDER_MARGIN)
    summary = {"domain": model.domain, "model": model.name, "threshold": round(calibration["threshold"], 3),
               "n_images": len(images), "images": str(args.images)}
    print(json.dumps(summary, indent=2))
    if args.write_card:
        write_card(resolve(args.model), calibration, summary, command)
    return write_json(args.json, summary)


def main(args: argparse.Namespace, command: str) -> int:
    if args.images:
        if not args.model:
            raise SystemExit("--images calibrates a user's model: give it with --model PATH")
        return _user_model(args, command)
    results = []
    for domain in chosen_domains(args):
        model = load_model(args.model or f"{domain}-phantom")
        summary, calibration = run_domain(model, domain, args.n, args.n_fit, args.n_edges)
        model.card[guard.CARD_KEY] = calibration
        summary.update(cost(model, phantoms(domain, 1, model.image_size, TEST_OFFSET)[0]))
        _print(summary)
        results.append(summary)
        if args.write_card:
            write_card(resolve(model.name), calibration, summary, command)
            print(f"wrote {resolve(model.name) / 'medviz.json'}")
    return write_json(args.json, results)
