"""Procedurally generated H&E-like tiles with exact mitotic-figure masks.

Needs only NumPy and SciPy (no TensorFlow), so the data can be produced and
inspected anywhere. Every tile is a pure function of its integer seed.

Pixel scale is fixed (roughly 0.5 um/px, i.e. a 40x scan downsampled 2x): a
smaller tile is a smaller field of view, not a zoomed-out one.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

SPLITS = ("train", "validation", "test")
DEFAULT_SIZES = {"train": 192, "validation": 48, "test": 48}

# Typical optical-density vectors (R, G, B) of haematoxylin and eosin as
# reported for stain normalisation; each tile perturbs them.
_H_REF = np.array([0.5626, 0.7201, 0.4062])
_E_REF = np.array([0.2159, 0.8012, 0.5581])

_MIN_SIZE = 32
_MAX_FIGURES = 3
# A figure mostly outside the tile would leave an unrecognisable sliver.
_MIN_VISIBLE_FRACTION = 0.5
_EIGHT = np.ones((3, 3), dtype=bool)


# ---------------------------------------------------------------- helpers


def _sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _unit(x):
    return (x - x.mean()) / (x.std() + 1e-8)


def _smooth_noise(rng, size, scale):
    """Zero-mean, unit-variance noise with features about `scale` px wide."""
    # Gaussian interpolation of coarse white noise, done as two small matrix
    # products: far cheaper than a wide filter at full resolution. einsum,
    # not `@`, because threaded BLAS crawls on such small, busy-CPU products.
    m = int(np.ceil(size / scale)) + 6
    pos = (np.arange(size) + 0.5) / scale + 3.0
    kernel = np.exp(-0.5 * (pos[:, None] - np.arange(m)[None, :]) ** 2)
    rows = np.einsum("ij,jk->ik", kernel, rng.standard_normal((m, m)))
    return _unit(np.einsum("ik,lk->il", rows, kernel))


def _fine_noise(rng, shape, sigma):
    return _unit(ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma))


def _window(cy, cx, half, size):
    """Clipped local window around (cy, cx) and its offset grid."""
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half + 1, size)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half + 1, size)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    return (slice(y0, y1), slice(x0, x1)), yy - cy, xx - cx


def _rotate(dy, dx, theta):
    c, s = np.cos(theta), np.sin(theta)
    return dx * c + dy * s, dy * c - dx * s


# ------------------------------------------------------------------ stain


def _stain(rng):
    def perturb(v, amount):
        v = np.clip(v + rng.normal(0.0, amount, 3), 0.02, None)
        return v / np.linalg.norm(v)

    h = perturb(_H_REF, 0.05) * rng.uniform(0.85, 1.2)
    e = perturb(_E_REF, 0.05) * rng.uniform(0.75, 1.25)
    return h, e


# ----------------------------------------------------------- background


def _background(rng, size):
    """Eosin map, cellularity map (where epithelial cells sit) and gap map."""
    cloud = 0.6 * _smooth_noise(rng, size, 24) + 0.4 * _smooth_noise(rng, size, 8)
    cells = _sigmoid(4.0 * (_smooth_noise(rng, size, 48) + rng.uniform(-0.7, 0.5)))
    gaps = _sigmoid(6.0 * (_smooth_noise(rng, size, 36) - rng.uniform(1.0, 1.8)))

    # Wavy parallel fibres: a sinusoid whose phase is warped by smooth noise.
    theta = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    phase = (xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / rng.uniform(5, 9)
    phase += rng.uniform(2, 5) * _smooth_noise(rng, size, 28)
    fibres = (0.5 + 0.5 * np.sin(phase)) ** 3
    fibres *= _sigmoid(3.0 * _smooth_noise(rng, size, 20))  # fibres fade in and out

    stroma = rng.uniform(0.55, 0.85) * (0.75 + 0.18 * cloud + rng.uniform(0.2, 0.4) * (fibres - 0.25))
    cytoplasm = rng.uniform(0.3, 0.45) * (1.0 + 0.1 * cloud)
    eosin = np.clip(cells * cytoplasm + (1 - cells) * stroma, 0.05, None)
    eosin *= 1.0 - 0.9 * gaps
    return eosin, cells, gaps


# ---------------------------------------------------------- mitotic figures


def _bar_sdf(u, v, half_len, half_width, radius):
    """Rounded-rectangle signed distance; `half_width` may vary along u."""
    qu = np.abs(u) - half_len + radius
    qv = np.abs(v) - half_width + radius
    outside = np.hypot(np.maximum(qu, 0), np.maximum(qv, 0))
    return outside + np.minimum(np.maximum(qu, qv), 0) - radius


def _figure_sdf(rng, kind, u, v):
    """Signed distance (px, <0 inside) of one mitotic figure in its own frame.

    Returns the ragged part (gets boundary noise) and the part that must stay
    intact (anaphase bridges), so the figure is one 8-connected piece.
    """
    if kind == "metaphase":
        half_len = rng.uniform(6.0, 11.0)
        width = rng.uniform(1.8, 3.0)
        # Width wobbles along the plate; phases make it chunky, not periodic.
        wobble = sum(rng.uniform(0.1, 0.25) * np.sin(rng.uniform(0.4, 1.2) * u + rng.uniform(0, 6.3)) for _ in range(2))
        d = _bar_sdf(u, v, half_len, width * (1 + wobble), 1.5)
        # Chromosome arms poking out of the plate.
        for _ in range(rng.integers(3, 8)):
            pu = rng.uniform(-half_len, half_len)
            pv = rng.choice([-1, 1]) * width * rng.uniform(0.8, 1.3)
            d = np.minimum(d, np.hypot(u - pu, v - pv) - rng.uniform(1.0, 2.0))
        return d, None

    if kind == "anaphase":
        half_len = rng.uniform(4.5, 9.0)
        width = rng.uniform(1.6, 2.8)
        offset = rng.uniform(1.5, 4.0) + width  # centre of each bar from the midline
        bow = rng.uniform(0.0, 0.03)
        d = np.full(np.broadcast(u, v).shape, np.inf)
        for side in (-1, 1):
            vv = v - side * (offset - bow * u**2)
            d = np.minimum(d, _bar_sdf(u, vv, half_len * rng.uniform(0.85, 1.15), width, 1.2))
        # Chromatin bridges keep the daughter plates one connected figure.
        bridge = np.full_like(d, np.inf)
        for _ in range(rng.integers(1, 3)):
            pu = rng.uniform(-0.4, 0.4) * half_len
            bridge = np.minimum(bridge, _bar_sdf(u - pu, v, 0.9, offset, 0.8))
        return d, bridge

    # Prophase / prometaphase: a clump of chromatin blobs grown from a core.
    blobs = [(0.0, 0.0, rng.uniform(3.0, 5.0))]
    for _ in range(rng.integers(4, 10)):
        bu, bv, br = blobs[rng.integers(len(blobs))]
        r = rng.uniform(1.5, 3.0)
        dist = (br + r) * rng.uniform(0.4, 0.65)
        ang = rng.uniform(0, 2 * np.pi)
        nu, nv = bu + dist * np.cos(ang), bv + dist * np.sin(ang)
        if np.hypot(nu, nv) + r < 10.0:
            blobs.append((nu, nv, r))
    d = np.full(np.broadcast(u, v).shape, np.inf)
    for bu, bv, br in blobs:
        d = np.minimum(d, np.hypot(u - bu, v - bv) - br)
    return d, None


def _make_figure(rng):
    """One figure on a local grid: (kind, coverage, support mask, reach).

    Coverage is the soft ink alpha; the mask is coverage > 0.5, reduced to one
    8-connected piece, and ink outside that piece is erased.
    """
    kind = ("metaphase", "anaphase", "prophase")[rng.integers(3)]
    half = 16
    sub = rng.uniform(0, 1, 2)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(np.float64)
    yy -= sub[0]
    xx -= sub[1]
    u, v = _rotate(yy, xx, rng.uniform(0, np.pi))
    ragged, intact = _figure_sdf(rng, kind, u, v)
    rough = _fine_noise(rng, yy.shape, 0.8)
    d = ragged + rng.uniform(0.6, 1.0) * rough
    if intact is not None:
        d = np.minimum(d, intact)
    coverage = _sigmoid(-d / 0.4)
    mask = coverage > 0.5
    labels, n = ndi.label(mask, structure=_EIGHT)
    if n > 1:
        largest = 1 + np.argmax(ndi.sum_labels(mask, labels, np.arange(1, n + 1)))
        mask = labels == largest
    # Keep only a one-pixel soft rim so nothing is painted away from the mask.
    coverage = coverage * ndi.binary_dilation(mask, _EIGHT)
    reach = np.sqrt((yy[mask] ** 2 + xx[mask] ** 2).max()) + 1.0
    return kind, coverage, mask, reach


def _place_figures(rng, size, probability, gaps):
    """Figures as dicts with global centre, local coverage/mask and halo."""
    wanted = int(rng.integers(1, _MAX_FIGURES + 1)) if rng.random() < probability else 0
    figures = []
    for _ in range(wanted):
        kind, coverage, mask, reach = _make_figure(rng)
        halo = reach + rng.uniform(2.0, 5.0)
        darkness = rng.uniform(2.4, 3.4)
        clearing = rng.uniform(0.4, 1.0) if rng.random() < 0.7 else 0.0
        candidates = rng.uniform(0, size, (30, 2))
        for cy, cx in candidates:
            if gaps[int(cy), int(cx)] > 0.3:  # dividing cells sit in tissue, not in lumen
                continue
            if any(np.hypot(cy - f["cy"], cx - f["cx"]) < halo + f["halo"] for f in figures):
                continue
            half = coverage.shape[0] // 2
            iy, ix = int(cy), int(cx)
            y0, x0 = iy - half, ix - half
            ys = slice(max(y0, 0), min(y0 + 2 * half + 1, size))
            xs = slice(max(x0, 0), min(x0 + 2 * half + 1, size))
            local = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
            visible = mask[local]
            labels, n = ndi.label(visible, structure=_EIGHT)
            if n == 0:
                continue
            sizes = ndi.sum_labels(visible, labels, np.arange(1, n + 1))
            if sizes.max() < _MIN_VISIBLE_FRACTION * mask.sum():
                continue
            # A border can cut a figure in two: keep the bigger piece only.
            kept = labels == 1 + np.argmax(sizes)
            ink = coverage[local] * ndi.binary_dilation(kept, _EIGHT)
            figures.append(
                dict(
                    kind=kind,
                    cy=iy,
                    cx=ix,
                    halo=halo,
                    darkness=darkness,
                    clearing=clearing,
                    window=(ys, xs),
                    ink=ink,
                    mask=kept,
                )
            )
            break
    return figures


# ------------------------------------------------------------------ nuclei

# Non-mitotic nucleus kinds: semi-axis a (px), minor/major ratio, minimum
# minor semi-axis, haematoxylin darkness, chromatin texture, rim, outline
# irregularity. Dark kinds (hyperchromatic, lymphocyte, pyknotic) are the hard
# negatives: as dark as a mitosis but smooth and regular.
_NUCLEUS_KINDS = (
    # name         a        ratio        min_b  dark        tex   rim   jag
    ("vesicular", (7, 14), (0.6, 0.95), 6.0, (0.5, 1.0), 0.35, 0.35, 0.07),
    ("hyper", (6, 11), (0.7, 1.0), 6.0, (1.4, 2.1), 0.2, 0.15, 0.05),
    ("spindle", (7, 12), (0.22, 0.35), 0.0, (1.1, 1.7), 0.15, 0.0, 0.03),
    ("lymph", (3.5, 5.5), (1.0, 1.0), 0.0, (1.8, 2.6), 0.1, 0.0, 0.02),
    ("pyknotic", (3.0, 4.5), (1.0, 1.0), 0.0, (2.6, 3.4), 0.1, 0.0, 0.02),
)
# Cumulative kind probabilities in epithelium and in stroma.
_EPITHELIUM_MIX = np.cumsum([0.78, 0.12, 0.0, 0.07, 0.03])
_STROMA_MIX = np.cumsum([0.1, 0.0, 0.6, 0.3, 0.0])


def _nuclei(rng, size, cells, gaps, figures, fine, coarse):
    """Haematoxylin and coverage maps of all non-mitotic nuclei."""
    n = int(size * size / 45)
    pos = rng.uniform(0, size, (n, 2))
    iy, ix = pos.astype(int).T
    cell = cells[iy, ix]
    keep = rng.random(n) < (1 - gaps[iy, ix]) * (0.1 + 0.9 * cell**1.5)
    mix = np.where((rng.random(n) < cell)[:, None], _EPITHELIUM_MIX, _STROMA_MIX)
    kind = np.minimum((rng.random(n)[:, None] > mix).sum(1), len(_NUCLEUS_KINDS) - 1)
    p = rng.random((n, 8))

    columns = list(zip(*_NUCLEUS_KINDS))[1:]  # drop the names
    a_rng, ratio, min_b, dark_rng, tex, rim, jag = (np.array(c)[kind] for c in columns)
    a = a_rng[:, 0] + (a_rng[:, 1] - a_rng[:, 0]) * p[:, 0]
    b = np.maximum(min_b, a * (ratio[:, 0] + (ratio[:, 1] - ratio[:, 0]) * p[:, 1]))
    dark = dark_rng[:, 0] + (dark_rng[:, 1] - dark_rng[:, 0]) * p[:, 2]
    nucleolus = (kind == 0) & (p[:, 6] < 0.45)

    for f in figures:
        keep &= np.hypot(pos[:, 0] - f["cy"], pos[:, 1] - f["cx"]) >= f["halo"] + a

    h = np.zeros((size, size))
    alpha = np.zeros((size, size))
    placed = np.empty((len(pos), 3))
    count = 0
    for k in np.flatnonzero(keep):
        cy, cx = pos[k]
        others = placed[:count]
        gap = 0.9 * (others[:, 2] + a[k]) + 2
        if ((others[:, 0] - cy) ** 2 + (others[:, 1] - cx) ** 2 < gap**2).any():
            continue
        placed[count] = cy, cx, a[k]
        count += 1

        win, dy, dx = _window(cy, cx, int(np.ceil(a[k])) + 3, size)
        u, v = _rotate(dy, dx, p[k, 3] * np.pi)
        un, vn = u / a[k], v / b[k]
        phi = np.arctan2(vn, un)
        harmonics = np.cos(2 * phi + 6.3 * p[k, 4]) + 0.6 * np.cos(3 * phi + 6.3 * p[k, 5])
        outline = 1 + jag[k] * harmonics
        d = (np.sqrt(un**2 + vn**2) / outline - 1) * 0.5 * (a[k] + b[k])  # ~distance in px
        cov = _sigmoid(-d / 0.5)
        grain = 0.6 * fine[win] + 0.4 * coarse[win]
        ink = dark[k] * (1 + tex[k] * grain + rim[k] * np.exp(-((d + 1.0) ** 2)))
        if nucleolus[k]:
            nu, nv = (p[k, 7] - 0.5) * a[k], (p[k, 6] - 0.2) * b[k]
            ink += 1.3 * _sigmoid(-(np.hypot(u - nu, v - nv) - 1.6) / 0.4)
        h[win] = np.maximum(h[win], cov * np.maximum(ink, 0))
        alpha[win] = np.maximum(alpha[win], cov)
    return h, alpha


# ------------------------------------------------------------------ public


def generate_tile(
    seed: int,
    size: int = 256,
    *,
    mitosis_probability: float = 0.6,
    draw_mitoses: bool = True,
) -> dict:
    """One synthetic H&E tile.

    Returns {"image": uint8 (size, size, 3) RGB, "mask": uint8 (size, size)
    with 1 on mitotic-figure pixels only, "points": float32 (N, 2) (row, col)
    centroids, one per figure}. `draw_mitoses=False` renders the same tile
    without the figures' chromatin (same mask and points); it exists to check
    that the mask matches what is drawn.
    """
    if size < _MIN_SIZE:
        raise ValueError(f"size must be >= {_MIN_SIZE}, got {size}")
    if not 0.0 <= mitosis_probability <= 1.0:
        raise ValueError(f"mitosis_probability must be in [0, 1], got {mitosis_probability}")
    rng = np.random.default_rng(seed)
    h_vec, e_vec = _stain(rng)
    eosin, cells, gaps = _background(rng, size)
    fine = _fine_noise(rng, (size, size), 0.6)
    coarse = _fine_noise(rng, (size, size), 1.5)

    figures = _place_figures(rng, size, mitosis_probability, gaps)
    halo = np.zeros((size, size))
    for f in figures:
        # Clear cytoplasm of the dividing cell; part of the background, so it
        # is also there when the figures themselves are not drawn.
        win, dy, dx = _window(f["cy"], f["cx"], int(f["halo"]) + 6, size)
        clear = f["clearing"] * _sigmoid((f["halo"] - np.hypot(dy, dx)) / 1.2)
        halo[win] = np.maximum(halo[win], clear)

    nuc_h, nuc_alpha = _nuclei(rng, size, cells, gaps, figures, fine, coarse)

    fig_h = np.zeros((size, size))
    mask = np.zeros((size, size), dtype=np.uint8)
    points = np.zeros((len(figures), 2), dtype=np.float32)
    for i, f in enumerate(figures):
        ys, xs = f["window"]
        clumps = 1 + 0.25 * coarse[ys, xs] + 0.1 * fine[ys, xs]
        fig_h[ys, xs] = np.maximum(fig_h[ys, xs], f["darkness"] * f["ink"] * clumps)
        mask[ys, xs] |= f["mask"].astype(np.uint8)
        rows, cols = np.nonzero(f["mask"])
        points[i] = rows.mean() + ys.start, cols.mean() + xs.start

    c_h = 0.08 * cells * (1 - gaps) + nuc_h + halo * 0.05
    c_e = eosin * (1 - 0.6 * nuc_alpha) * (1 - 0.7 * halo) + 0.03
    if draw_mitoses:
        c_h = c_h + fig_h
    # Optical blur, then Beer-Lambert; the same noise draw in both renders.
    sigma = rng.uniform(0.5, 0.8)
    c_h = ndi.gaussian_filter(c_h, sigma)
    c_e = ndi.gaussian_filter(c_e, sigma)
    od = c_h[..., None] * h_vec + c_e[..., None] * e_vec
    noise = rng.uniform(1.0, 3.0) * rng.standard_normal(od.shape, dtype=np.float32)
    rgb = 255.0 * np.exp(-od) + noise
    image = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return {"image": image, "mask": mask, "points": points}


def _check_split(split):
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid splits are {', '.join(SPLITS)}")


def tile_seed(seed: int, split: str, index: int) -> int:
    """Seed of tile `index` of `split`, independent across splits and indices."""
    _check_split(split)
    seq = np.random.SeedSequence(seed, spawn_key=(SPLITS.index(split), index))
    return int(seq.generate_state(1, np.uint64)[0])


def _count(split, num_examples):
    _check_split(split)
    n = DEFAULT_SIZES[split] if num_examples is None else num_examples
    if n < 1:
        raise ValueError(f"num_examples must be >= 1 (or None for {DEFAULT_SIZES}), got {n}")
    return n


def generate_split(split: str, num_examples: int | None = None, size: int = 256, seed: int = 0):
    """Iterator over the tiles of `split` in index order."""
    n = _count(split, num_examples)  # validate now, not on first next()
    return (generate_tile(tile_seed(seed, split, i), size) for i in range(n))


def load_arrays(
    split: str, num_examples: int | None = None, size: int = 256, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, size, size, 3), masks uint8 (N, size, size))."""
    tiles = list(generate_split(split, num_examples, size, seed))
    return np.stack([t["image"] for t in tiles]), np.stack([t["mask"] for t in tiles])
