"""``mitoseg compare --report``: the tables, the paired test and the Figure-5 panel from the records alone.

No network is built or run here: every number comes from ``record.json``
files, the figure from their ``figure.npz`` maps and the shared
``figure_tiles.npz`` (``records.py``). (Table 1's CA / SA / Res columns read
each model's builder defaults, which imports the builders' modules.)
"""

import itertools
import os

import numpy as np

from mitoseg_tf.compare import records as records_lib
from mitoseg_tf.compare.selection import PROPOSED, display_name, paper_sort_key
from mitoseg_tf.compare.tables import METRICS, markdown_table, rows_for, summarise, write_csv
from mitoseg_tf.config import TABLES

BASELINE = "unet"
SPLITS = ("validation", "test")
REPORT_FILE = "report.md"
FIGURE_PNG = "figure5.png"


def sign_flip_p(differences):
    """Exact two-sided p of the paired sign-flip permutation test: the share of the 2^n sign patterns whose
    mean difference is at least as far from 0 as the observed one."""
    d = np.asarray(differences, np.float64)
    if not len(d):
        return float("nan")
    observed = abs(d.mean())
    flips = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    return float(np.mean(np.abs((flips * d).mean(axis=1)) >= observed - 1e-12))


def paired_test(treated, control):
    """MCSA-Unet against U-Net paired by seed: ``treated``, ``control`` are ``{seed: value}``.

    Returns seeds, both means, the mean difference, the paired t statistic and its two-sided p
    (``scipy.stats.ttest_rel``; NaN with fewer than 2 pairs or no spread) and the exact sign-flip p.
    """
    seeds = sorted(set(treated) & set(control))
    a = np.array([treated[s] for s in seeds], np.float64)
    b = np.array([control[s] for s in seeds], np.float64)
    t = p = float("nan")
    if len(seeds) >= 2 and np.std(a - b) > 0:
        from scipy import stats

        t, p = (float(v) for v in stats.ttest_rel(a, b))
    return {
        "seeds": seeds,
        "treated_mean": float(a.mean()) if len(a) else float("nan"),
        "control_mean": float(b.mean()) if len(b) else float("nan"),
        "mean_difference": float((a - b).mean()) if len(a) else float("nan"),
        "t": t,
        "p": p,
        "p_sign_flip": sign_flip_p(a - b),
    }


def _f1(counts):
    """F1 of pooled ``[..., (tp, fp, fn)]`` counts; 0 where there is nothing to score."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    denominator = 2 * tp + fp + fn
    return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 0.0)


RESAMPLES = 10_000


def frame_bootstrap(treated, control, resamples=RESAMPLES, seed=0):
    """Detection F1 of MCSA-Unet minus U-Net, resampling the scored images (frames) with replacement.

    ``treated``, ``control``: ``{seed: [[tp, fp, fn] per image]}`` (``detection_per_image``), the same images
    in the same order. Each resample draws the images once and scores every seed of both networks on them
    (pooled F1, averaged over the seeds both have), so the interval covers the choice of images that seeds
    alone cannot: with 2 or 3 seeds the paired tests above cannot reach p < 0.05. Returns the seeds, the
    images, the observed difference, its 95 % interval and the share of resamples where MCSA-Unet is not
    better (difference <= 0); None without a seed whose counts both networks have.
    """
    seeds = sorted(s for s in set(treated) & set(control) if treated[s] is not None and control[s] is not None)
    if not seeds:
        return None
    a = np.array([treated[s] for s in seeds], np.float64)  # (seeds, images, 3)
    b = np.array([control[s] for s in seeds], np.float64)
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"frame_bootstrap: per-image counts of shapes {a.shape} and {b.shape}; need the same images.")
    images = a.shape[1]
    weights = np.random.default_rng(seed).multinomial(images, np.full(images, 1.0 / images), size=resamples)
    differences = (_f1(np.einsum("ri,sic->rsc", weights, a)) - _f1(np.einsum("ri,sic->rsc", weights, b))).mean(1)
    low, high = np.percentile(differences, [2.5, 97.5])
    return {
        "seeds": seeds,
        "images": images,
        "difference": float((_f1(a.sum(1)) - _f1(b.sum(1))).mean()),
        "low": float(low),
        "high": float(high),
        "share_not_better": float(np.mean(differences <= 0)),
        "resamples": resamples,
    }


def _where_chosen(split):
    return "validation (where the detection settings were chosen)" if split == "validation" else f"{split} (untuned)"


def bootstrap_lines(found):
    """The frame bootstrap of detection F1 (Markdown lines) and its rows, per split."""
    lines = [
        f"### Detection F1 of {display_name(PROPOSED)} against {display_name(BASELINE)}, images resampled",
        "",
        f"Each of {RESAMPLES:,} resamples draws the scored images with replacement and takes both networks' pooled "
        "F1 on them at their own detection settings (size floor and score threshold chosen on the validation "
        "split, so its row is optimistic for both), averaged over the seeds both have. Interval: 2.5th to 97.5th "
        "percentile of the difference. Last column: the share of resamples where MCSA-Unet is not better.",
        "",
        "| split | seeds | images | difference | 95 % interval | share not better |",
        "|---|---|---|---|---|---|",
    ]
    rows = []
    for split in SPLITS:
        counts = {}
        for record in found:
            if record["model"] in (PROPOSED, BASELINE):
                per_image = (record.get("detection") or {}).get(f"{split}_per_image")
                counts.setdefault(record["model"], {})[record["seed"]] = per_image
        result = frame_bootstrap(counts.get(PROPOSED, {}), counts.get(BASELINE, {}))
        if result is None:
            continue
        rows.append({"split": split, **result})
        lines.append(
            f"| {_where_chosen(split)} | {', '.join(map(str, result['seeds']))} | {result['images']} | "
            f"{_number(result['difference'], 4)} | {_number(result['low'], 4)} to {_number(result['high'], 4)} | "
            f"{_number(result['share_not_better'])} |"
        )
    if not rows:
        lines.append("\n(needs records of both MCSA-Unet and U-Net with per-image detection counts)")
    return lines, rows


def _scores_by_model(found, split):
    """``{model: {seed: scores}}`` of the records that have ``split``."""
    out = {}
    for record in found:
        if split in record.get("scores", {}):
            out.setdefault(record["model"], {})[record["seed"]] = record["scores"][split]
    return out


def _seeds_text(by_model):
    seeds = {tuple(sorted(v)) for v in by_model.values()}
    return ", ".join(map(str, seeds.pop())) if len(seeds) == 1 else "per model (the seeds column)"


def _number(value, digits=3):
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}f}"


def paired_lines(found):
    """The paired-test table (Markdown lines) and its rows."""
    label = dict(METRICS)
    rows, lines = (
        [],
        [
            f"### Paired test: {display_name(PROPOSED)} against {display_name(BASELINE)}, paired by seed",
            "",
            "Difference = MCSA-Unet minus U-Net of the same seed. p (t): two-sided paired t test "
            "(`scipy.stats.ttest_rel`); p (sign flip): exact two-sided sign-flip permutation test "
            "(with n seeds it cannot go below 2 / 2^n).",
            "",
            "| split | metric | seeds | MCSA-Unet | U-Net | difference | t | p (t) | p (sign flip) |",
            "|---|---|---|---|---|---|---|---|---|",
        ],
    )
    for split in SPLITS:
        by_model = _scores_by_model(found, split)
        if PROPOSED not in by_model or BASELINE not in by_model:
            continue
        for key, _ in METRICS:
            treated = {s: v[key] for s, v in by_model[PROPOSED].items() if key in v}
            control = {s: v[key] for s, v in by_model[BASELINE].items() if key in v}
            result = {"split": split, "metric": key, **paired_test(treated, control)}
            if not result["seeds"]:
                continue
            rows.append(result)
            lines.append(
                f"| {split} | {label[key]} | {', '.join(map(str, result['seeds']))} | "
                f"{_number(result['treated_mean'])} | {_number(result['control_mean'])} | "
                f"{_number(result['mean_difference'], 4)} | {_number(result['t'], 2)} | {_number(result['p'])} | "
                f"{_number(result['p_sign_flip'])} |"
            )
    if not rows:
        lines.append("\n(needs records of both MCSA-Unet and U-Net)")
    return lines, rows


def cost_lines(found):
    """Seconds per training step, training minutes and parameters of each network, and the machines."""
    lines = [
        "### Cost per run",
        "",
        "| network | model | seeds | parameters | s / step (median over steps, mean over seeds) | training min | CPU (cores) |",
        "|---|---|---|---|---|---|---|",
    ]
    for model in sorted({r["model"] for r in found}, key=paper_sort_key):
        mine = [r for r in found if r["model"] == model]
        step = [r["seconds_per_step"] for r in mine if r.get("seconds_per_step") is not None]
        minutes = [r["train_seconds"] / 60 for r in mine if r.get("train_seconds") is not None]
        machines = sorted({f"{r['machine']['cpu']} ({r['machine']['cores']})" for r in mine if r.get("machine")})
        parameters = mine[0].get("parameters")
        lines.append(
            f"| {display_name(model)} | `{model}` | {len(mine)} | {'-' if parameters is None else f'{parameters:,}'} | "
            f"{_number(np.mean(step) if step else None, 2)} | {_number(np.mean(minutes) if minutes else None, 1)} | "
            f"{'; '.join(machines) or '-'} |"
        )
    return lines


def draw_figure(records_dir, found, out_path):
    """Figure-5 panel from the records: each network's map (its lowest recorded seed) on the shared tiles.

    Returns the path, or None when no record holds maps on the tiles of ``figure_tiles.npz``."""
    from mitoseg_tf.compare.figure import plot_comparison

    tiles_path = os.path.join(records_dir, records_lib.TILES_FILE)
    if not os.path.isfile(tiles_path):
        return None
    tiles = np.load(tiles_path)
    predictions = {}
    for model in sorted({r["model"] for r in found}, key=paper_sort_key):
        first = min((r for r in found if r["model"] == model), key=lambda r: r["seed"])
        path = os.path.join(first["folder"], records_lib.FIGURE_FILE)
        if os.path.isfile(path):
            maps = np.load(path)
            if maps["spec"].tolist() == tiles["spec"].tolist():
                predictions[model] = maps["probability"] / 255.0
    if not predictions or not len(tiles["images"]):
        return None
    plot_comparison(list(tiles["images"]), list(tiles["masks"]), predictions, out_path)
    return out_path


def build_report(records_dir=records_lib.DEFAULT_RECORDS, out_dir=None, log=print):
    """Write ``report.md``, ``comparison_<split>.csv`` and ``figure5.png`` from the records in ``records_dir``.

    Returns ``{"markdown", "summaries": {split: {model: {metric: (mean, std, n)}}}, "paired": [...],
    "resampled": [...], "figure"}``.
    """
    found = records_lib.list_records(records_dir)
    if not found:
        raise FileNotFoundError(f"no records (*/record.json) in {records_dir}.")
    out_dir = out_dir or records_dir
    os.makedirs(out_dir, exist_ok=True)
    recipes = sorted({r.get("recipe_hash") for r in found})
    text = [f"# Comparison from {len(found)} records in `{records_dir}`", ""]
    if len(recipes) > 1:
        groups = {h: sorted(f"{r['model']}_s{r['seed']}" for r in found if r.get("recipe_hash") == h) for h in recipes}
        warning = "Warning: the records come from different recipes: " + "; ".join(
            f"{h}: {', '.join(n)}" for h, n in groups.items()
        )
        log(warning)
        text += [warning, ""]
    summaries = {}
    for split in SPLITS:
        by_model = _scores_by_model(found, split)
        if not by_model:
            continue
        summaries[split] = {m: summarise(list(by_seed.values())) for m, by_seed in by_model.items()}
        measured_on = next(r["measured_on"][split] for r in found if split in r.get("measured_on", {}))
        tables = [t for t in TABLES if rows_for(t, summaries[split])]
        for table in tables:
            text += [
                markdown_table(
                    table,
                    summaries[split],
                    data=None,
                    seeds=_seeds_text(by_model),
                    aggregation="pooled",
                    measured_on=measured_on,
                ),
                "",
            ]
        write_csv(os.path.join(out_dir, f"comparison_{split}.csv"), tables, summaries[split])
    lines, paired = paired_lines(found)
    resampled_lines, resampled = bootstrap_lines(found)
    text += lines + [""] + resampled_lines + [""] + cost_lines(found)
    figure = draw_figure(records_dir, found, os.path.join(out_dir, FIGURE_PNG))
    text += [
        "",
        f"![Figure 5 on the recorded tiles]({FIGURE_PNG})"
        if figure
        else "(no figure: the records hold no maps on the shared figure tiles)",
    ]
    markdown = "\n".join(text) + "\n"
    with open(os.path.join(out_dir, REPORT_FILE), "w") as fh:
        fh.write(markdown)
    return {"markdown": markdown, "summaries": summaries, "paired": paired, "resampled": resampled, "figure": figure}
