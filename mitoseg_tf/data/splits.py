"""Deterministic train/validation/test splits grouped by slide.

Patches of one slide are strongly correlated (same patient, stain and scan), so
a slide never lands in two splits. Slides are ordered by name, shuffled with a
fixed seed and dealt to the splits in proportion to ``fractions``; every split
gets at least one slide when there are at least as many slides as splits.
"""

import numpy as np

SPLITS = ("train", "validation", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)


def slide_splits(slides, fractions=DEFAULT_FRACTIONS, seed=0):
    """``{slide: split name}`` for the unique ``slides``."""
    fractions = np.asarray(fractions, dtype=float)
    if fractions.shape != (3,) or (fractions < 0).any() or not np.isclose(fractions.sum(), 1.0):
        raise ValueError(f"split fractions must be three non-negative numbers summing to 1; got {fractions.tolist()}.")
    unique = sorted(set(slides))
    order = np.random.default_rng(seed).permutation(len(unique))
    counts = np.floor(fractions * len(unique)).astype(int)
    # Deal the remainder to the splits furthest below their share, then make sure
    # no split with a positive fraction is empty when there are slides to spare.
    while counts.sum() < len(unique):
        counts[np.argmax(fractions * len(unique) - counts)] += 1
    for i in range(3):
        if counts[i] == 0 and fractions[i] > 0 and counts.max() > 1:
            counts[np.argmax(counts)] -= 1
            counts[i] += 1
    names = np.repeat(SPLITS, counts)
    return {unique[j]: str(names[k]) for k, j in enumerate(order)}


def split_records(records, fractions=DEFAULT_FRACTIONS, seed=0, split_ids=None):
    """``{split: [records]}`` with every slide in exactly one split (order of ``records`` kept).

    ``split_ids``: a fixed split instead of the seeded one, ``{"validation":
    [...], "test": [...]}`` listing image ids or slide names; everything not
    listed is ``train`` (when ``train`` is listed too, every slide must be). A listed name that matches nothing is an error, and so
    is a slide whose images were listed in two splits.
    """
    out = {s: [] for s in SPLITS}
    if split_ids:
        unknown_splits = set(split_ids) - set(SPLITS)
        if unknown_splits:
            raise ValueError(f"split_ids: unknown split(s) {sorted(unknown_splits)}; use {', '.join(SPLITS)}.")
        where = {}
        for split, names in split_ids.items():
            for name in names:
                matched = [r for r in records if name in (r.id, r.slide)]
                if not matched:
                    raise ValueError(
                        f"split_ids[{split!r}]: {name!r} is neither an image id nor a slide of this dataset."
                    )
                for rec in matched:
                    if where.setdefault(rec.slide, split) != split:
                        raise ValueError(
                            f"split_ids: slide {rec.slide!r} is listed in both {where[rec.slide]!r} and {split!r}."
                        )
        if "train" in split_ids:
            # A split written out in full (a recipe's slide split) must not absorb slides it never named.
            unlisted = sorted({r.slide for r in records} - set(where))
            if unlisted:
                raise ValueError(
                    f"split_ids lists the train slides too, but not {', '.join(unlisted[:5])}; "
                    "list every slide, or leave train out to give it every slide not listed."
                )
        for rec in records:
            out[where.get(rec.slide, "train")].append(rec)
        return out
    assignment = slide_splits([r.slide for r in records], fractions, seed)
    for rec in records:
        out[assignment[rec.slide]].append(rec)
    return out
