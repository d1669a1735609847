"""Score progression models on held-out patients of the phantom trial against their true courses under every arm.

Per model: the trajectory error (mean absolute, per horizon) on the factual arm and on the counterfactual arms;
the 90% bands' coverage of the true factual and counterfactual courses; the PEHE of the diuretic's effect on the
day-14 size; and the confident responders: patients the model gives >= 90% probability that the diuretic lowers
their day-14 size by more than ``RESPONSE_MARGIN``, and the share of them in the planted responding subgroup.

A deterministic baseline (``model`` mlp or gru: one course per arm) has no band and no confidence: those figures
are None. Folders named ``NAME-sK`` are seeds of one setting: the table gives their mean and spread, and the
verdicts compare each SDE setting with tabular data against every baseline setting (the MLP, the GRU, the SDE on
the image alone) horizon by horizon.

    python -m medviz.bench progression --models runs/progression/hyperfusion [...] [--n 300] [--json PATH]
        [--figure PATH] [--write-card FOLDER]
"""

from __future__ import annotations

import argparse
import datetime
import json
import re
import time
from pathlib import Path

import numpy as np

from .. import progression
from ..phantoms import trial as world
from ..train.progression import baseline_tensor
from .cards import write_progression_card
from .cli import add_common, write_json

HELD_OUT_FIRST_SEED = world.TRIAL_FIRST_SEED + 1_000_000     # never enrolled in training (seeds from the first)
HORIZONS = (7.0, 14.0, 21.0, 28.0)
EFFECT_DAY, RESPONSE_MARGIN, CONFIDENT = progression.EFFECT_DAY, progression.RESPONSE_MARGIN, progression.CONFIDENT


def predict(network, config, images, records: list[dict], n_paths: int = 100,
            seed: int = 0) -> tuple[np.ndarray, float]:
    """(sizes (n_paths, N, arms, horizons), seconds per patient for all arms) of a loaded folder on the patients'
    baseline ``images`` (``baseline_tensor`` at the model's size) and ``records``: every arm on the same noise."""
    tabular = progression.tabular_tensor(config, records)
    start = time.perf_counter()
    sizes = progression.courses(network, config, images, tabular, [0.0, *HORIZONS], n_paths, seed)
    return sizes[..., 1:], (time.perf_counter() - start) / len(records)


def one_patient_seconds(network, config, image, record: dict, n_paths: int = 100, repeats: int = 5) -> float:
    """The median wall time of one patient's ``n_paths`` courses under every arm, the patient alone (the tab's
    case; ``predict`` amortises a batch). ``image``: (1, 1, S, S)."""
    tabular = progression.tabular_tensor(config, [record])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        progression.courses(network, config, image, tabular, [0.0, *HORIZONS], n_paths)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def truth(patients) -> np.ndarray:
    """(N, arms, horizons): every patient's true size under every arm."""
    return np.array([[world.sizes_at(p, arm, HORIZONS) for arm in world.ARMS] for p in patients])


def score(sizes: np.ndarray, true: np.ndarray, patients, level: float = 0.9) -> dict:
    """The figures of one model's ``predict`` against ``truth``; ``level``: the paths' central level of its 90%
    band (``progression.band_level``)."""
    band = progression.summary(sizes, level)
    stochastic = sizes.shape[0] > 1              # a deterministic baseline's one course has no band, no confidence
    factual = np.zeros(true.shape[:2], bool)
    factual[np.arange(len(patients)), [world.ARMS.index(p.arm) for p in patients]] = True
    error = np.abs(band["mean"] - true)                                        # (N, arms, horizons)
    covered = (band["low"] <= true) & (true <= band["high"])
    day = HORIZONS.index(EFFECT_DAY)
    none, diuretic = world.ARMS.index("none"), world.ARMS.index("diuretic")
    effect_paths = sizes[:, :, diuretic, day] - sizes[:, :, none, day]        # paired: one noise path per sample
    true_effect = true[:, diuretic, day] - true[:, none, day]
    p_response = (effect_paths < -RESPONSE_MARGIN).mean(0)
    confident = p_response >= CONFIDENT
    responders = np.array([p.responder for p in patients])
    return {
        "error_factual": error[factual].mean(0).round(4).tolist(),
        "error_counterfactual": error[~factual].mean(0).round(4).tolist(),
        "coverage_factual": float(covered[factual].mean()) if stochastic else None,
        "coverage_counterfactual": float(covered[~factual].mean()) if stochastic else None,
        "pehe": float(np.sqrt(np.mean((effect_paths.mean(0) - true_effect) ** 2))),
        "confident_responders": int(confident.sum()) if stochastic else None,
        "confident_responders_in_subgroup":
            float(responders[confident].mean()) if stochastic and confident.any() else None,
        "responders": int(responders.sum()),
    }


def setting(folder, config: progression.ProgressionConfig) -> dict:
    """What a folder is: its setting's name (the folder's, less a ``-sK`` seed suffix), model, fusion, baseline."""
    name = re.sub(r"-s\d+$", "", Path(folder).name)
    baseline = config.model != "sde" or config.fusion == "image_only"
    return {"setting": name, "model_kind": config.model, "fusion": config.fusion, "baseline": baseline}


def families(rows: list[dict]) -> list[dict]:
    """One row per setting: the mean and standard deviation over its seeds of every figure."""
    out = []
    for name in dict.fromkeys(r["setting"] for r in rows):
        seeds = [r for r in rows if r["setting"] == name]
        family = {k: seeds[0][k] for k in ("setting", "model_kind", "fusion", "baseline")}
        family["seeds"] = len(seeds)
        for key in ("error_factual", "error_counterfactual", "coverage_factual", "coverage_counterfactual", "pehe",
                    "confident_responders", "confident_responders_in_subgroup"):
            values = [r[key] for r in seeds]
            if any(v is None for v in values):
                family[key] = family[key + "_sd"] = None
                continue
            family[key] = np.mean(values, 0).round(4).tolist()
            family[key + "_sd"] = np.std(values, 0).round(4).tolist()
        out.append(family)
    return out


def verdicts(settings: list[dict]) -> dict:
    """Per SDE setting with tabular data: lower error at every horizon (factual and counterfactual) and lower PEHE
    than every baseline setting, by the means over seeds."""
    baselines = [f for f in settings if f["baseline"]]
    result = {}
    for family in (f for f in settings if not f["baseline"]):
        result[family["setting"]] = {
            "beats_every_baseline_at_every_horizon": bool(baselines) and all(
                np.all(np.less(family[k], b[k])) for b in baselines for k in ("error_factual", "error_counterfactual")),
            "lower_pehe_than_every_baseline": bool(baselines) and all(family["pehe"] < b["pehe"] for b in baselines),
            "baselines": [b["setting"] for b in baselines],
        }
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", required=True, help="progression folders (python -m medviz.train "
                                                                   "progression)")
    parser.add_argument("--n", type=int, default=300, help="held-out patients")
    parser.add_argument("--paths", type=int, default=100, help="paths per patient per arm")
    parser.add_argument("--figure", default=None, metavar="PATH", help="write the figure (PNG) here")
    parser.add_argument("--write-card", default=None, metavar="FOLDER",
                        help="write these figures into the card of this progression folder (one of --models)")
    add_common(parser, domains=False)


def _line(row: dict) -> str:
    def figure(value, sd=None):
        return "-" if value is None else f"{value:.3f}" + (f" ± {sd:.3f}" if sd else "")

    errors = " / ".join(figure(v) for v in row["error_factual"])
    counter = " / ".join(figure(v) for v in row["error_counterfactual"])
    return (f"{row['setting']:<16} x{row.get('seeds', 1)}  error factual {errors}  counterfactual {counter}  coverage "
            f"{figure(row['coverage_factual'])} / {figure(row['coverage_counterfactual'])}  PEHE "
            f"{figure(row['pehe'], row.get('pehe_sd'))}  confident responders {figure(row['confident_responders'])} "
            f"({figure(row['confident_responders_in_subgroup'])} in the subgroup)")


def main(args: argparse.Namespace, command: str) -> int:
    patients = world.trial(args.n, HELD_OUT_FIRST_SEED)
    true = truth(patients)
    records = [world.tabular(p) for p in patients]
    rows, predictions, images = [], {}, {}
    for folder in args.models:
        network, config, card = progression.load(folder)
        if config.image_size not in images:                    # rendered once per size, not once per folder
            images[config.image_size] = baseline_tensor(patients, config.image_size)
        sizes, seconds = predict(network, config, images[config.image_size], records, args.paths)
        predictions[folder] = sizes
        alone = one_patient_seconds(network, config, images[config.image_size][:1], records[0], args.paths)
        level = progression.band_level(card)
        row = {"model": Path(folder).name, **setting(folder, config), "seconds_per_patient": round(seconds, 4),
               "seconds_one_patient_alone": round(alone, 4), "band_level": level,
               **score(sizes, true, patients, level)}
        rows.append(row)
        print(f"{row['model']:<16} {args.paths} paths x {len(world.ARMS)} arms: {seconds:.3f} s per patient in a "
              f"batch, {alone:.3f} s for one patient alone")
    settings = families(rows)
    print(f"\n{args.n} held-out patients; errors at days {', '.join(f'{h:g}' for h in HORIZONS)}; mean ± sd over seeds")
    for family in settings:
        print(_line(family))
    decided = verdicts(settings)
    for name, verdict in decided.items():
        print(f"{name}: lower error at every horizon than {', '.join(verdict['baselines'])}: "
              f"{verdict['beats_every_baseline_at_every_horizon']}; "
              f"lower PEHE: {verdict['lower_pehe_than_every_baseline']}")
    result = {"command": command, "date": datetime.date.today().isoformat(), "n": args.n, "paths": args.paths,
              "horizons": HORIZONS, "effect_day": EFFECT_DAY, "response_margin": RESPONSE_MARGIN,
              "models": rows, "settings": settings, "verdicts": decided}
    if args.figure:
        shown = args.write_card or next(f for f, row in zip(args.models, rows) if not row["baseline"])
        save_figure(result, predictions[shown], true, patients, args.figure, Path(shown).name)
    if args.write_card:
        write_card(args.write_card, result)
    return write_json(args.json, result)


def write_card(folder, result: dict) -> None:
    """The folder's card (``medviz_progression.json``) gets the bench's figures for it and its comparison."""
    path = Path(folder) / "medviz_progression.json"
    card = json.loads(path.read_text())
    name = Path(folder).name
    mine = next(r for r in result["models"] if r["model"] == name)
    card["bench"] = {"date": result["date"], "command": result["command"], "n": result["n"],
                     "horizons": result["horizons"], **{k: v for k, v in mine.items() if k != "model"},
                     "settings": result["settings"], "verdict": result["verdicts"].get(mine["setting"])}
    path.write_text(json.dumps(card, indent=2))
    write_progression_card(folder)


def save_figure(result: dict, sizes: np.ndarray, true: np.ndarray, patients, path: str, name: str) -> None:
    """Left: error per horizon of every setting (factual, solid; counterfactual, dashed). Right: three held-out
    patients (a responder, a non-responder, a drained one): ``name``'s 90% bands per arm and the true courses."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(16, 3.8))
    for family in result["settings"]:
        line, = axes[0].plot(HORIZONS, family["error_factual"], marker="o", label=family["setting"])
        axes[0].plot(HORIZONS, family["error_counterfactual"], ls="--", color=line.get_color())
    axes[0].set(xlabel="day", ylabel="mean absolute error of the size")
    axes[0].set_title("error per horizon (dashed: counterfactual)", fontsize=9)
    axes[0].legend(fontsize=7)
    picks = [next(i for i, p in enumerate(patients) if p.responder),
             next(i for i, p in enumerate(patients) if not p.responder),
             next(i for i, p in enumerate(patients) if p.arm == "drain")]
    band = progression.summary(sizes)
    colours = dict(zip(world.ARMS, ("tab:grey", "tab:blue", "tab:orange")))
    for axis, i in zip(axes[1:], picks):
        patient = patients[i]
        for a, arm in enumerate(world.ARMS):
            axis.fill_between(HORIZONS, band["low"][i, a], band["high"][i, a], color=colours[arm], alpha=0.2)
            axis.plot(HORIZONS, band["mean"][i, a], color=colours[arm], label=f"{arm} (predicted)")
            axis.plot(HORIZONS, true[i, a], color=colours[arm], ls=":", marker="x", label=f"{arm} (true)")
        kind = "responder" if patient.responder else "non-responder"
        axis.set(xlabel="day", ylim=(0, 1), ylabel="effusion size")
        axis.set_title(f"patient {patient.seed}: {kind}, given {patient.arm}", fontsize=9)
    axes[1].legend(fontsize=6)
    figure.suptitle(f"{name}: {result['n']} held-out phantom patients; bands 90% of {result['paths']} paths")
    figure.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
