"""``mitoseg compare --recipe FILE --out RUNS --ship TAG``: the best seed of every Table 2 network, shipped as zoo weights.

The seed is chosen on the records alone: the highest ``SELECTION_METRIC`` on
the validation split among all the seeds the recipe gives the network, ties to
the lower seed. A network with a seed not recorded yet, or recorded under
other settings, is not shipped (and says why), since that seed could win.
Records hold no weights, so the chosen seed's run folder
(``RUNS/runs/<model>_s<seed>``, outside git) must still hold the run its record
describes: the same config and the same validation metrics. Its ``best.keras``
then goes through ``zoo.shipping.ship_run`` as float16 (at most
``MAX_WEIGHTS_BYTES``), with a card carrying the record's validation and test
metrics, the terms of every dataset the recipe trains and validates on, and
what chose the weights (the validation split) and what did not (the test split).
"""

import dataclasses
import json
import math
import os
from collections.abc import Callable

from mitoseg_tf.compare import records as records_lib
from mitoseg_tf.compare.recipe import RUN_FILES, RUNS_FOLDER, load_compare_recipe
from mitoseg_tf.compare.selection import display_name, table_models
from mitoseg_tf.compare.tables import METRICS
from mitoseg_tf.zoo.shipping import WeightsTooLarge, ship_run
from mitoseg_tf.zoo.weights_card import DATA_LICENCES, weights_folder

SHIPPED_TABLE = "table2"
SELECTION_SPLIT = "validation"
# The paper's headline number, the first column of both tables and of the paired test.
SELECTION_METRIC = "mean_dice"
MAX_WEIGHTS_BYTES = 10_000_000  # issue 31: at most 10 MB a network
# The voc and folder layouts read any dataset; only a preset says which one a source holds.
PRESET_DATASETS = {("voc", "atypia14_train"): "mitos_atypia14"}
TASK = "mitosis segmentation and detection (class 1 = mitotic figure)"


def _sources(config):
    """``(role, where, component)`` of every source the runs train ("train") or choose ("validation") on."""
    if config.data != "mixture":
        component = {"data": config.data, "data_dir": config.data_dir, "options": config.data_options}
        return [("train", "data", component), ("validation", "data", component)]
    spec = config.data_options
    found = [("train", f"data_options.train[{i}]", c) for i, c in enumerate(spec["train"])]
    return found + [("validation", "data_options.validation", spec["validation"])]


def _dataset(config, where, component):
    preset = (component.get("options") or {}).get("preset")
    name = PRESET_DATASETS.get((component["data"], preset), component["data"])
    if name not in DATA_LICENCES:
        layout = f"{component['data']!r}" + (f" (preset {preset!r})" if preset else "")
        raise ValueError(
            f"recipe {config.recipe}, {where}: no licence is recorded for the {layout} source, so weights trained "
            f"on it cannot say their terms. Add the dataset to DATA_LICENCES (mitoseg_tf/zoo/weights_card.py), or, "
            "for a layout that reads any dataset, its preset to PRESET_DATASETS (mitoseg_tf/compare/shipping.py)."
        )
    return name


def trained_datasets(config) -> list[str]:
    """The ``weights_card.DATA_LICENCES`` keys of every dataset a recipe's runs train or are validated on.

    Validation counts: it chose the checkpoint and the detection settings. The
    test split does not: it chose nothing.

    Args:
        config: the recipe's ``RunConfig`` (``ComparePlan.base``).

    Returns:
        The dataset names in the order the recipe names them, each once.

    Raises:
        ValueError: a source whose dataset has no recorded licence.
    """
    return list(dict.fromkeys(_dataset(config, where, c) for _, where, c in _sources(config)))


def _short(dataset):
    return DATA_LICENCES[dataset].source.split(" (")[0].split(";")[0]


def _data_text(config, measured_on):
    parts = []
    for role, where, component in _sources(config):
        if role == "train":
            folders = component.get("data_dir")
            folders = ", ".join(folders) if isinstance(folders, list) else folders
            negatives = ", as negatives" if component.get("background_only") else ""
            parts.append(f"{_short(_dataset(config, where, component))} ({folders}{negatives})")
    return (
        f"mitotic figures: trained on {'; '.join(parts)} (recipe {config.recipe}); seed, checkpoint and detection "
        f"settings chosen on {measured_on['validation']}; scored on {measured_on['test']}, which chose nothing"
    )


def _licence_text(datasets):
    return "these weights inherit the conditions of every dataset they were trained or validated on: " + "; ".join(
        f"{_short(d)}: {DATA_LICENCES[d].terms}" for d in datasets
    )


def _values_text(values, label):
    return f"{SELECTION_SPLIT} {label} " + ", ".join(f"seed {s}: {v:.4f}" for s, v in sorted(values.items()))


def _compare_command(plan, runs_dir, records_dir, model):
    """The ``mitoseg compare`` line that trains (or records) the next unrecorded run of ``model``."""
    records = "" if records_dir == plan.records else f" --records {records_dir}"
    return f"mitoseg compare --recipe {plan.path} --out {runs_dir}{records} --models {model} --max-runs 1"


def _choose(plan, records_dir, runs_dir, model, metric):
    """``(seed, {seed: record}, {seed: value}, None)`` of the best recorded seed, or ``(None, ..., reason)``."""
    if model not in plan.models:
        return None, {}, {}, f"not a model of {plan.path} ({', '.join(plan.models)})"
    found, missing, changed = {}, [], []
    for seed in plan.seeds[model]:
        config = dataclasses.asdict(plan.run_config(model, seed, os.path.join(runs_dir, RUNS_FOLDER)))
        status, differences = records_lib.record_status(records_dir, model, seed, config)
        if status == "done":
            found[seed] = records_lib.read_record(records_lib.record_dir(records_dir, model, seed))
        elif status == "changed":
            changed.append(f"seed {seed} ({'; '.join(differences)})")
        else:
            missing.append(seed)
    if changed:
        return None, found, {}, f"records made under other settings than {plan.path}: {', '.join(changed)}"
    if missing:
        return (
            None,
            found,
            {},
            f"seed(s) {', '.join(map(str, missing))} of {plan.seeds[model]} not recorded in {records_dir} yet, and the "
            f"best seed is chosen among all of them (train: {_compare_command(plan, runs_dir, records_dir, model)}, "
            "once per seed)",
        )
    values = {s: r.get("scores", {}).get(SELECTION_SPLIT, {}).get(metric) for s, r in found.items()}
    unusable = [s for s, v in values.items() if not isinstance(v, (int, float)) or not math.isfinite(v)]
    if unusable:
        return None, found, values, f"the record(s) of seed(s) {unusable} hold no finite {SELECTION_SPLIT} {metric}"
    return min(values, key=lambda s: (-values[s], s)), found, values, None


def _same(a, b):
    # Through JSON: a NaN metric equals itself there, and tuples and lists compare alike.
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _folder_problem(run_dir, record):
    """``(missing, text)`` when ``run_dir`` does not hold the run ``record`` describes, else None."""
    if not os.path.isdir(run_dir):
        return True, f"its run folder {run_dir} is missing"
    absent = [f for f in RUN_FILES if not os.path.isfile(os.path.join(run_dir, f))]
    if absent:
        return True, f"its run folder {run_dir} lacks {', '.join(absent)} (cut short?)"
    saved = records_lib.folder_config(run_dir)
    if records_lib.config_hash(saved) != record.get("config_hash"):
        differences = records_lib.config_differences(record.get("config", {}), records_lib.hashed_config(saved))
        return False, f"its run folder {run_dir} was trained under other settings ({'; '.join(differences)})"
    with open(os.path.join(run_dir, "metrics.json")) as fh:
        validation = json.load(fh).get("validation")
    if not _same(validation, (record.get("metrics") or {}).get("validation")):
        return False, f"its run folder {run_dir} has other validation metrics than the record (retrained since?)"
    return None


def _machine_text(record):
    machine = record.get("machine") or {}
    return f"{machine.get('cpu', 'unknown CPU')}, {machine.get('cores', '?')} cores" if machine else None


def _card(plan, model, seed, record, values, metric, record_folder, datasets):
    label = dict(METRICS)[metric]
    measured_on = {**{s: f"the {s} split" for s in ("validation", "test")}, **plan.measured_on}
    measured_on.update(record.get("measured_on") or {})
    chosen_by = (
        f"{measured_on['validation']} chose everything: the seed (highest {_values_text(values, label)}; ties go to "
        f"the lower seed), the checkpoint (the epoch of best validation mitosis Dice) and the detection settings. "
        f"The test split, {measured_on['test']}, chose nothing: its numbers (test; detection.test) are held out."
    )
    return dict(
        data=_data_text(plan.base, measured_on),
        licence=_licence_text(datasets),
        data_licences=datasets,
        extra={
            "task": TASK,
            "test": ((record.get("metrics") or {}).get("test") or {}).get("model"),
            "chosen_by": chosen_by,
            "scores": record.get("scores"),
            "measured_on": measured_on,
            "machine": _machine_text(record),
            "selection": {
                "split": SELECTION_SPLIT,
                "metric": metric,
                "rule": "highest; ties go to the lower seed",
                "seed": seed,
                "values": {str(s): v for s, v in sorted(values.items())},
            },
            "comparison": {
                "table": SHIPPED_TABLE,
                "network": display_name(model),
                "record": record_folder,
                "config_hash": record.get("config_hash"),
                "recipe_hash": record.get("recipe_hash"),
            },
        },
    )


def _networks(models):
    """The Table 2 networks to ship: all of them, or those of ``models``, which must all be Table 2's."""
    networks = table_models(SHIPPED_TABLE)
    unknown = sorted(set(models) - set(networks))
    if unknown:
        raise ValueError(f"{unknown}: not {SHIPPED_TABLE} networks ({', '.join(networks)}); only those ship.")
    return [n for n in networks if not models or n in models]


def _chosen_runs(plan, networks, records_dir, runs_dir, metric):
    """``({model: (seed, record, values, run_dir, record_folder)}, {model: reason not shipped})``.

    Raises FileNotFoundError (a run folder or file missing) or ValueError (another run
    there) naming every chosen seed whose folder does not hold the run its record describes.
    """
    runs = os.path.join(runs_dir, RUNS_FOLDER)
    label = dict(METRICS)[metric]
    chosen, not_shipped, problems = {}, {}, []
    for model in networks:
        seed, found, values, reason = _choose(plan, records_dir, runs_dir, model, metric)
        if reason:
            not_shipped[model] = reason
            continue
        run_dir = os.path.join(runs, records_lib.run_name(model, seed))
        record_folder = records_lib.record_dir(records_dir, model, seed)
        chosen[model] = (seed, found[seed], values, run_dir, record_folder)
        problem = _folder_problem(run_dir, found[seed])
        if problem:
            problems.append(
                (
                    problem[0],
                    f"{model} seed {seed} (chosen on {_values_text(values, label)}): {problem[1]}. Recreate it: "
                    f"rm -r {record_folder} && {_compare_command(plan, runs_dir, records_dir, model)} "
                    f"(records a finished folder as it is, else retrains it; training "
                    f"is deterministic, so `git diff {record_folder}` should show the same numbers), then ship again",
                )
            )
    if problems:
        error = FileNotFoundError if any(missing for missing, _ in problems) else ValueError
        raise error(
            "the chosen seeds' run folders must hold the runs their records describe (weights live only there); "
            "nothing was shipped:\n  " + "\n  ".join(text for _, text in problems)
        )
    return chosen, not_shipped


def _ship_chosen(plan, chosen, tag, metric, datasets, weights_dir, max_bytes, log):
    """``({model: shipped entry}, {model: reason})``: each chosen run's weights and card written, or too large."""
    label = dict(METRICS)[metric]
    shipped, too_large = {}, {}
    for model, (seed, record, values, run_dir, record_folder) in chosen.items():
        card = _card(plan, model, seed, record, values, metric, record_folder, datasets)
        try:
            limit = MAX_WEIGHTS_BYTES if max_bytes is None else max_bytes
            path = ship_run(run_dir, tag, weights_dir=weights_dir, detection=True, max_bytes=limit, **card)
        except WeightsTooLarge as err:
            too_large[model] = str(err)
            continue
        shipped[model] = {
            "seed": seed,
            "key": f"{model}/{tag}",
            "path": path,
            "bytes": os.path.getsize(path),
            "value": values[seed],
        }
        log(
            f"shipped {model}/{tag}: seed {seed} ({_values_text(values, label)}), {shipped[model]['bytes'] / 1e6:.2f} "
            f"MB float16 from {run_dir} -> {path}"
        )
    return shipped, too_large


def ship_comparison(
    recipe: str,
    runs_dir: str,
    tag: str,
    *,
    records_dir: str | None = None,
    models: tuple[str, ...] = (),
    weights_dir: str | None = None,
    metric: str = SELECTION_METRIC,
    max_bytes: int | None = None,
    log: Callable[..., object] = print,
) -> dict:
    """Ship the best recorded seed of every Table 2 network of a comparison recipe as ``build(name, weights=tag)``.

    Every check that needs no weights runs first (recipe, licences, records, run
    folders), so a missing run folder fails before anything is written.

    Args:
        recipe: the comparison recipe (``zoo/recipes/compare_atypia.yaml``).
        runs_dir: the ``--out`` folder the runs were trained in (their folders are ``runs_dir/runs/<model>_s<seed>``).
        tag: the weights' tag, e.g. ``"atypia14"``: ``build("unet", weights="atypia14")``.
        records_dir: the records folder (default: the recipe's ``compare.records``).
        models: only these Table 2 networks (default: all of them).
        weights_dir: where the weights and ``manifest.json`` go (default: the package's).
        metric: the validation score that chooses the seed (a ``tables.METRICS`` key).
        max_bytes: the largest float16 file shipped (default ``MAX_WEIGHTS_BYTES``, read at each call).
        log: where progress lines go.

    Returns:
        ``{"shipped": {model: {"seed", "key", "path", "bytes", "value"}}, "not_shipped": {model: reason},
        "metric", "weights_dir"}``; every Table 2 network is in one of the two.

    Raises:
        ValueError: an unknown metric or model, a source with no recorded licence, or a
            chosen run folder that holds another run than its record describes.
        FileNotFoundError: a chosen seed's run folder (or a file of it) is missing; the
            message names the command that recreates it.
    """
    if metric not in dict(METRICS):
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(dict(METRICS))}.")
    plan = load_compare_recipe(recipe)
    records_dir = records_dir or plan.records
    networks = _networks(models)
    datasets = trained_datasets(plan.base)  # an unknown dataset fails before any record is read
    chosen, not_shipped = _chosen_runs(plan, networks, records_dir, runs_dir, metric)
    shipped, too_large = _ship_chosen(plan, chosen, tag, metric, datasets, weights_dir, max_bytes, log)
    not_shipped.update(too_large)
    for model, reason in not_shipped.items():
        log(f"NOT shipped {model}: {reason}")
    return {
        "shipped": shipped,
        "not_shipped": {n: not_shipped[n] for n in networks if n in not_shipped},
        "metric": metric,
        "weights_dir": weights_folder(weights_dir),
    }
