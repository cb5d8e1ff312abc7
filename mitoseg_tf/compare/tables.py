"""The comparison tables in the paper's layout (Markdown and CSV), mean and std over seeds, paper numbers beside."""

import csv

import numpy as np

from mitoseg_tf.compare.selection import ablation_flags, display_name, table_models
from mitoseg_tf.zoo import get_card

# (key, column label); the first three are the paper's, the rest standard ones.
METRICS = (
    ("mean_dice", "Mean Dice"),
    ("paper_mpa", "MPA (paper: mean precision)"),
    ("miou", "MIoU"),
    ("mpa", "MPA (standard: mean recall)"),
    ("mitosis_dice", "Dice (mitosis)"),
    ("detection_f1", "Detection F1"),
)
PAPER_METRICS = ("mean_dice", "paper_mpa", "miou")
TITLES = {
    "table1": "Table 1: ablation on U-Net (CA = channel attention, SA = spatial attention, Res = residual)",
    "table2": "Table 2: comparison of networks",
}


def run_scores(metrics, detection, aggregation="pooled", split="test"):
    """The table's numbers for one finished run on ``split``, from its ``metrics.json`` and ``detection.json``."""
    pixel = metrics[split]["model"][aggregation]
    scores = {key: float(pixel[key]) for key, _ in METRICS if key in pixel}
    scores["detection_f1"] = float(detection[split]["f1"])
    return scores


def summarise(per_seed):
    """``{metric: (mean, std, n)}`` over a list of per-seed score dicts (std with ddof=1; 0 for one seed)."""
    out = {}
    for key, _ in METRICS:
        values = np.array([s[key] for s in per_seed if key in s], dtype=np.float64)
        if len(values):
            out[key] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0, len(values))
    return out


def _cell(stat):
    if stat is None:
        return "-"
    mean, std, n = stat
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def _paper(name, key):
    value = get_card(name).paper_results.get(key)
    return "-" if value is None else f"{value:.2f}"


def rows_for(table, summaries):
    """Models of ``table`` that have results, in the paper's order."""
    return [name for name in table_models(table) if name in summaries]


def markdown_table(table, summaries, *, data, seeds, aggregation, measured_on=None):
    """One table as Markdown: measured mean ± std, then the paper's numbers.

    ``measured_on``: what the numbers were measured on (default: ``data``'s test split).
    """
    names = rows_for(table, summaries)
    head = ["CA", "SA", "Res", "model"] if table == "table1" else ["network", "model"]
    metric_labels = [label for _, label in METRICS]
    paper_labels = ["paper Mean Dice", "paper MPA", "paper MIoU"]
    lines = [
        f"### {TITLES[table]}",
        "",
        f"Measured on {measured_on or f'`{data}`, test split'} ({aggregation} over pixels of all its images), "
        f"mean ± std over seeds {seeds}; the paper's numbers (private data, 328 images) for reference.",
        "",
        "| " + " | ".join(head + metric_labels + paper_labels + ["seeds"]) + " |",
        "|" + "---|" * (len(head) + len(metric_labels) + len(paper_labels) + 1),
    ]
    for name in names:
        stats = summaries[name]
        if table == "table1":
            flags = ablation_flags(name) or {}
            first = ["x" if flags.get(k) else "-" for k in ("CA", "SA", "Res")] + [f"`{name}`"]
        else:
            first = [display_name(name), f"`{name}`"]
        n = max((s[2] for s in stats.values()), default=0)
        cells = [_cell(stats.get(key)) for key, _ in METRICS] + [_paper(name, k) for k in PAPER_METRICS]
        lines.append("| " + " | ".join(first + cells + [str(n)]) + " |")
    if not names:
        lines.append("\n(no model of this table was run)")
    return "\n".join(lines)


def write_csv(path, tables, summaries):
    """One row per (table, model): every metric's mean and std, the seed count and the paper's numbers."""
    columns = ["table", "model", "network", "ca", "sa", "res", "seeds"]
    for key, _ in METRICS:
        columns += [f"{key}_mean", f"{key}_std"]
    columns += [f"paper_{k}" for k in PAPER_METRICS]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for table in tables:
            for name in rows_for(table, summaries):
                stats, flags = summaries[name], ablation_flags(name) or {}
                row = {
                    "table": table,
                    "model": name,
                    "network": display_name(name),
                    "ca": int(flags["CA"]) if flags else "",
                    "sa": int(flags["SA"]) if flags else "",
                    "res": int(flags["Res"]) if flags else "",
                    "seeds": max((s[2] for s in stats.values()), default=0),
                }
                for key, _ in METRICS:
                    mean, std, n = stats.get(key, (None, None, 0))
                    row[f"{key}_mean"] = "" if mean is None else f"{mean:.6f}"
                    row[f"{key}_std"] = "" if mean is None or n < 2 else f"{std:.6f}"
                for k in PAPER_METRICS:
                    row[f"paper_{k}"] = get_card(name).paper_results.get(k, "")
                writer.writerow(row)
