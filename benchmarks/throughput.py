"""Training and inference throughput of the zoo's U-Net family, with a PyTorch peer.

Prints ONE Markdown table (images/s, training and inference) for every
model x precision x BatchNorm variant, then the ratios the project tracks:
MCSA-Unet vs U-Net time per step, mixed_bfloat16 vs float32, zoo BatchNorm vs
Keras' stock BatchNormalization, and the zoo U-Net vs an identical PyTorch U-Net.

    python benchmarks/throughput.py                  # the default table (~10 min on 2 cores)
    python benchmarks/throughput.py --no-bn          # also every network without BatchNorm
    python benchmarks/throughput.py --quick          # smoke run: tiny sizes, ~2 min
    python benchmarks/throughput.py --models unet --precisions mixed_bfloat16 --bn zoo,stock
    python benchmarks/throughput.py --models unet,mcsa_unet,ms_rcnn --size 512 --batch 1 --bn zoo --no-torch
                                                     # Mask Scoring R-CNN (ResNet-50-FPN) next to the U-Nets

Each configuration runs in a fresh subprocess, so a dtype policy, a swapped
BatchNorm class or a framework's thread pools never leak into the next one.
Warm-up steps (graph tracing, oneDNN primitive creation) are excluded; the
reported figure is the median of ``--windows`` timed windows of ``--steps``
steps. The machine may be shared: the ``cpu`` column (process CPU time /
(wall time x cores)) falls well below 100 % when other processes take cores
(marked *), and ``--repeat N`` runs the whole list N times, each time starting
at a different configuration, and keeps each configuration's best run.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRECISIONS = ("float32", "mixed_bfloat16")
BN_LABELS = {"zoo": "zoo BN", "stock": "stock BN", "none": "no BN", "group": "zoo GN", "stock_group": "stock GN"}
TORCH_BN_LABELS = {"zoo": "BatchNorm2d", "none": "no BN"}
# Below this share of the machine's cores the process was competing with other load.
CONTENDED = 0.8
BN_VARIANTS = ("zoo", "stock", "none", "group", "stock_group")  # zoo/keras BatchNorm, none, zoo/keras GroupNorm

# --------------------------------------------------------------------------- workers


def _timed_windows(step, warmup, windows, steps, batch):
    """Images/s of each window after ``warmup`` untimed calls, plus the CPU share used."""
    for _ in range(warmup):
        step()
    rates = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rates.append(batch * steps / (time.perf_counter() - start))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return rates, cpu / (wall * (os.cpu_count() or 1))


def _keras_worker(cfg):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, REPO)
    import keras
    import numpy as np

    if cfg.get("threads"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(cfg["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(cfg["threads"])

    keras.mixed_precision.set_dtype_policy(cfg["precision"])
    if cfg["bn"] == "stock":
        from mitoseg_tf.layers import attention, conv

        class StockBatchNorm(keras.layers.BatchNormalization):
            """The zoo's defaults on Keras' own implementation, to measure the zoo's."""

            def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
                super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

        # The blocks look the class up in their module globals at build time.
        conv.BatchNorm = StockBatchNorm
        attention.BatchNorm = StockBatchNorm
    if cfg["bn"] == "stock_group":
        from mitoseg_tf.layers import conv

        conv.GroupNorm = keras.layers.GroupNormalization
    from mitoseg_tf.zoo import build

    size, batch = cfg["size"], cfg["batch"]
    rng = np.random.default_rng(0)
    images = keras.ops.convert_to_tensor(rng.uniform(0, 255, (batch, size, size, 3)).astype("float32"))
    if _is_detector(cfg["model"]):
        model, labels = _detector_setup(cfg["model"], size, batch, rng)
    else:
        model = build(
            cfg["model"],
            base_filters=cfg["width"],
            input_shape=(size, size, 3),
            norm={"none": None, "group": "group", "stock_group": "group"}.get(cfg["bn"], "batch"),
        )
        # jit_compile=False is what "auto" resolves to on CPU; XLA was slower here in bf16.
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=False)
        labels = keras.ops.convert_to_tensor(rng.integers(0, 2, (batch, size, size)).astype("int32"))
    timing = dict(warmup=cfg["warmup"], windows=cfg["windows"], steps=cfg["steps"], batch=batch)
    train, train_cpu = _timed_windows(lambda: model.train_on_batch(images, labels), **timing)
    infer, infer_cpu = _timed_windows(lambda: model.predict_on_batch(images), **timing)
    return dict(train=train, infer=infer, train_cpu=train_cpu, infer_cpu=infer_cpu, params=model.count_params())


def _is_detector(name):
    """Detectors (Mask Scoring R-CNN) run at their paper defaults: no width, one BatchNorm setting."""
    if REPO not in sys.path:
        sys.path.insert(0, REPO)
    from mitoseg_tf.zoo import get_card

    return "detector" in get_card(name).tags


def _detector_setup(name, size, batch, rng):
    """The detector at its defaults (ResNet-50-FPN), compiled with the zoo's helper, and masks to train on.

    Each mask holds a few 24 px square "figures", so every loss term (RoI
    sampling, mask and MaskIoU heads) does its full work.
    """
    import keras
    import numpy as np

    from mitoseg_tf.training import compile_model
    from mitoseg_tf.zoo import build

    model = compile_model(build(name, input_shape=(size, size, 3)), ema=False, metrics=None)
    masks = np.zeros((batch, size, size, 1), "int32")
    for b in range(batch):
        for _ in range(3):
            top, left = rng.integers(0, size - 24, 2)
            masks[b, top : top + 24, left : left + 24] = 1
    return model, keras.ops.convert_to_tensor(masks)


def _torch_unet(width, depth, batch_norm, dropout):
    """The zoo's ``build_unet`` (no attention) layer for layer in PyTorch.

    conv3x3-BN-ReLU x2 per level (conv bias only without BN), 2x2 max-pool,
    dropout after the deepest encoder level and the bottleneck, up-conv =
    nearest x2 upsampling + 2x2 conv (Keras "same": pad right/bottom) + BN +
    ReLU, concat [skip, up], 1x1 conv head + softmax. BN: eps 1e-5, momentum
    0.1 (Keras' 0.9).
    """
    import torch
    from torch import nn

    def conv_bn_act(cin, cout, k):
        layers = [nn.Conv2d(cin, cout, k, padding="same", bias=not batch_norm)]
        if batch_norm:
            layers.append(nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1))
        layers.append(nn.ReLU(inplace=True))
        return layers

    def double_conv(cin, cout):
        return nn.Sequential(*conv_bn_act(cin, cout, 3), *conv_bn_act(cout, cout, 3))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            widths = [width * 2**level for level in range(depth + 1)]
            self.enc = nn.ModuleList(double_conv(cin, cout) for cin, cout in zip([3] + widths[:-2], widths[:-1]))
            self.bottleneck = double_conv(widths[-2], widths[-1])
            self.up = nn.ModuleList(
                nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="nearest"), *conv_bn_act(widths[lvl + 1], widths[lvl], 2)
                )
                for lvl in range(depth)
            )
            self.dec = nn.ModuleList(double_conv(2 * widths[lvl], widths[lvl]) for lvl in range(depth))
            self.pool = nn.MaxPool2d(2)
            self.drop = nn.Dropout(dropout) if dropout else nn.Identity()
            self.head = nn.Conv2d(widths[0], 2, 1)

        def forward(self, x):
            x = x / 255.0
            skips = []
            for level, block in enumerate(self.enc):
                x = block(x)
                if level == depth - 1:
                    x = self.drop(x)
                skips.append(x)
                x = self.pool(x)
            x = self.drop(self.bottleneck(x))
            for level in reversed(range(depth)):
                x = torch.cat([skips[level], self.up[level](x)], dim=1)
                x = self.dec[level](x)
            # The head runs in float32 like the zoo's (its output layers are float32).
            return self.head(x.float()) if x.dtype != torch.float32 else self.head(x)

    return UNet()


def _torch_worker(cfg):
    import torch

    torch.set_num_threads(cfg.get("threads") or os.cpu_count() or 1)
    torch.manual_seed(0)
    size, batch = cfg["size"], cfg["batch"]
    model = _torch_unet(cfg["width"], 4, cfg["bn"] != "none", dropout=0.5)
    images = torch.rand(batch, 3, size, size) * 255
    labels = torch.randint(0, 2, (batch, size, size))
    if cfg.get("channels_last"):
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    bf16 = cfg["precision"] == "mixed_bfloat16"

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    def train_step():
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            logits = model(images)
        # Softmax + cross-entropy in float32, as the zoo's float32 head and Keras loss do.
        loss = torch.nn.functional.cross_entropy(logits.float(), labels)
        loss.backward()
        optimizer.step()

    def infer_step():
        model.eval()
        with torch.inference_mode(), autocast():
            torch.softmax(model(images).float(), dim=1)

    timing = dict(warmup=cfg["warmup"], windows=cfg["windows"], steps=cfg["steps"], batch=batch)
    train, train_cpu = _timed_windows(train_step, **timing)
    infer, infer_cpu = _timed_windows(infer_step, **timing)
    params = sum(p.numel() for p in model.parameters())
    return dict(train=train, infer=infer, train_cpu=train_cpu, infer_cpu=infer_cpu, params=params)


# --------------------------------------------------------------------------- driver


def _run_config(cfg):
    """Runs one configuration in a fresh interpreter; returns its result dict (or an error)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(cfg)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": " | ".join(tail) or f"exit code {proc.returncode}"}


def _torch_available():
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except ValueError:
        return False


def _configs(args):
    common = dict(
        width=args.width,
        batch=args.batch,
        size=args.size,
        warmup=args.warmup,
        windows=args.windows,
        steps=args.steps,
        threads=args.threads,
    )
    configs = []
    bn_variants = list(args.bn)
    if args.no_bn and "none" not in bn_variants:
        bn_variants.append("none")
    for model in args.models:
        # A detector has one normalisation setting (its backbone's): listed as the zoo default.
        for bn in ["zoo"] if _is_detector(model) else bn_variants:
            for precision in args.precisions:
                configs.append(dict(common, framework="keras", model=model, precision=precision, bn=bn))
    if args.torch and "unet" in args.models:
        for bn in [b for b in bn_variants if b not in ("stock", "group", "stock_group")]:
            for precision in args.precisions:
                configs.append(
                    dict(
                        common,
                        framework="torch",
                        model="unet",
                        precision=precision,
                        bn=bn,
                        channels_last=args.torch_format == "channels_last",
                    )
                )
    return configs


def _key(cfg):
    return (cfg["framework"], cfg["model"], cfg["bn"], cfg["precision"])


def _fmt(value, digits=2):
    return "-" if value is None else f"{value:.{digits}f}"


def _table(configs, results):
    bn_names = {
        "zoo": "zoo BatchNorm",
        "stock": "keras BatchNormalization",
        "none": "no BN",
        "group": "zoo GroupNorm",
        "stock_group": "keras GroupNormalization",
    }
    torch_bn_names = TORCH_BN_LABELS
    lines = [
        "| framework | model | normalisation | precision | train img/s | infer img/s | train s/step | cpu train / infer |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for cfg in configs:
        key = _key(cfg)
        res = results.get(key, {})
        if "error" in res:
            lines.append(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | error: {res['error'][:80]} | | | |")
            continue
        train, infer = res.get("train"), res.get("infer")
        step = None if not train else cfg["batch"] / train
        cpu = "/".join(
            "-" if res.get(f) is None else f"{100 * res[f]:.0f}{'*' if res[f] < CONTENDED else ''}"
            for f in ("train_cpu", "infer_cpu")
        )
        framework = key[0] + (" (channels_last)" if cfg.get("channels_last") else "")
        norm = (torch_bn_names if key[0] == "torch" else bn_names)[key[2]]
        lines.append(
            f"| {framework} | {key[1]} | {norm} | {key[3]} | {_fmt(train)} | {_fmt(infer)} | {_fmt(step)} | {cpu} % |"
        )
    return "\n".join(lines)


def _ratios(args, results):
    """The tracked ratios as a Markdown table, each against its target where it has one."""
    rows = []

    def ratio(num_key, den_key, phase):
        """num/den images/s, and whether either figure was measured under other load."""
        num, den = results.get(num_key), results.get(den_key)
        if not num or not den or "error" in num or "error" in den or not den.get(phase):
            return None
        contended = min(num[f"{phase}_cpu"], den[f"{phase}_cpu"]) < CONTENDED
        return num[phase] / den[phase], contended

    def add(what, num_key, den_key, target=None):
        tr, inf = ratio(num_key, den_key, "train"), ratio(num_key, den_key, "infer")
        if tr or inf:
            rows.append((what, tr, inf, target))

    for precision in args.precisions:
        for bn in ("zoo", "none"):
            # Time per step is 1 / throughput: time(mcsa) / time(unet) = speed(unet) / speed(mcsa).
            add(
                f"mcsa_unet / unet time per step, {precision}, {BN_LABELS[bn]}",
                ("keras", "unet", bn, precision),
                ("keras", "mcsa_unet", bn, precision),
                ("<=", 1.15) if bn == "zoo" else None,
            )
    for model in args.models:
        for bn in ("zoo", "stock", "none"):
            add(
                f"{model} mixed_bfloat16 / float32 speed, {BN_LABELS[bn]}",
                ("keras", model, bn, "mixed_bfloat16"),
                ("keras", model, bn, "float32"),
                (">=", 2.5) if bn == "zoo" and not _is_detector(model) else None,
            )
    for bn in ("zoo", "none"):
        add(
            f"pytorch unet bf16 autocast / float32 speed, {TORCH_BN_LABELS[bn]}",
            ("torch", "unet", bn, "mixed_bfloat16"),
            ("torch", "unet", bn, "float32"),
        )
    # Each other normalisation against the zoo's BatchNorm (the default).
    versus_zoo = (
        ("zoo", "stock", "zoo BatchNorm / keras BatchNormalization"),
        ("group", "zoo", "zoo GroupNorm / zoo BatchNorm"),
        ("group", "stock_group", "zoo GroupNorm / keras GroupNormalization"),
    )
    for model in args.models:
        for num, den, label in versus_zoo:
            for precision in args.precisions:
                add(
                    f"{model} {label} speed, {precision}",
                    ("keras", model, num, precision),
                    ("keras", model, den, precision),
                )
    for precision in args.precisions:
        for bn in ("zoo", "none"):
            add(
                f"zoo unet / pytorch unet speed, {precision}, {TORCH_BN_LABELS[bn]}",
                ("keras", "unet", bn, precision),
                ("torch", "unet", bn, precision),
                (">=", 1.0) if bn == "zoo" else None,
            )

    def cell(value):
        return "-" if value is None else f"{value[0]:.2f}{' *' if value[1] else ''}"

    def verdict(values, target):
        if target is None:
            return ""
        op, bound = target
        known = [v[0] for v in values if v is not None]
        if not known:
            return f"{op} {bound}"
        met = all(v <= bound if op == "<=" else v >= bound for v in known)
        return f"{op} {bound}: {'met' if met else 'NOT met'}"

    lines = ["| ratio | train | infer | target |", "|---|---:|---:|---|"]
    lines += [f"| {what} | {cell(tr)} | {cell(inf)} | {verdict((tr, inf), target)} |" for what, tr, inf, target in rows]
    lines.append(
        f"\n\\* one of the two figures was measured at a cpu share below {100 * CONTENDED:.0f} % "
        "(see above): treat that ratio as unreliable."
    )
    return "\n".join(lines)


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="unet,mcsa_unet", help="comma-separated zoo names (default: %(default)s)")
    parser.add_argument("--width", type=int, default=32, help="base_filters (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="images per step (default: %(default)s)")
    parser.add_argument("--size", type=int, default=256, help="image height and width (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=1, help="steps per timed window (default: %(default)s)")
    parser.add_argument(
        "--windows", type=int, default=3, help="timed windows; the median is reported (default: %(default)s)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument(
        "--precisions", default=",".join(PRECISIONS), help="comma-separated Keras dtype policies (default: %(default)s)"
    )
    parser.add_argument(
        "--bn",
        default="zoo,stock",
        help="normalisation variants: zoo (mitoseg_tf BatchNorm), stock (keras.layers.BatchNormalization), "
        "none, group (norm='group': keras GroupNormalization) (default: %(default)s)",
    )
    parser.add_argument("--no-bn", action="store_true", help="also run every network without BatchNorm")
    parser.add_argument("--no-torch", dest="torch", action="store_false", help="skip the PyTorch peer")
    parser.add_argument(
        "--torch-format",
        choices=("channels_last", "nchw"),
        default="channels_last",
        help="memory format of the PyTorch peer; channels_last (the zoo's NHWC) is PyTorch's faster CPU "
        "layout here (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="run the list this many times (rotated order), keep the best"
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for both frameworks (TensorFlow intra- and inter-op, torch.set_num_threads); "
        "default: each framework's default, torch set to the core count",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: width 8, 64x64, batch 2, 1 window")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.size, args.batch, args.steps, args.windows, args.warmup = 8, 64, 2, 1, 1, 1
    args.models = [m for m in args.models.split(",") if m]
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.bn = [b for b in args.bn.split(",") if b]
    for bn in args.bn:
        if bn not in BN_VARIANTS:
            parser.error(f"--bn takes {', '.join(BN_VARIANTS)}; got {bn!r}")
    for precision in args.precisions:
        if precision not in PRECISIONS:
            parser.error(f"--precisions takes {', '.join(PRECISIONS)}; got {precision!r}")
    if args.torch and not _torch_available():
        print("torch is not importable: the PyTorch peer is skipped.", file=sys.stderr)
        args.torch = False
    return args


def main(argv=None):
    args = _parse_args(argv)
    if args.worker:
        cfg = json.loads(args.worker)
        result = _torch_worker(cfg) if cfg["framework"] == "torch" else _keras_worker(cfg)
        print("RESULT " + json.dumps(result), flush=True)
        return
    configs = _configs(args)
    results = {}
    started = time.time()
    for rep in range(args.repeat):
        # Each repeat starts at a different point of the list, so that no two runs of a
        # configuration are adjacent in time (and hit by the same burst of other load).
        shift = rep * len(configs) // args.repeat
        order = configs[shift:] + configs[:shift]
        for i, cfg in enumerate(order, 1):
            t0 = time.time()
            res = _run_config(cfg)
            key = _key(cfg)
            if "error" in res:
                print(f"[{rep + 1}.{i}/{len(order)}] {' '.join(key)}: {res['error']}", file=sys.stderr, flush=True)
                results.setdefault(key, res)
                continue
            run = {phase: statistics.median(res[phase]) for phase in ("train", "infer")}
            print(
                f"[{rep + 1}.{i}/{len(order)}] {' '.join(key)}: train {run['train']:.2f} img/s "
                f"(cpu {100 * res['train_cpu']:.0f} %), infer {run['infer']:.2f} img/s "
                f"(cpu {100 * res['infer_cpu']:.0f} %) ({time.time() - t0:.0f} s)",
                file=sys.stderr,
                flush=True,
            )
            best = results.get(key)
            if best is None or "error" in best:
                best = results[key] = {"params": res["params"], "runs": []}
            best["runs"].append(dict(run, train_cpu=res["train_cpu"], infer_cpu=res["infer_cpu"]))
            # Median within a run, best across repeats: other load only ever slows a run down.
            for phase in ("train", "infer"):
                if best.get(phase) is None or run[phase] > best[phase]:
                    best[phase], best[f"{phase}_cpu"] = run[phase], res[f"{phase}_cpu"]
    header = (
        f"Throughput, images/s ({args.size}x{args.size}, batch {args.batch}, width {args.width}; "
        f"median of {args.windows} windows x {args.steps} steps after {args.warmup} warm-up steps"
        f"{f', best of {args.repeat} runs' if args.repeat > 1 else ''}; {os.cpu_count()} cores"
        f"{f', {args.threads} threads' if args.threads else ''}; "
        f"{time.strftime('%Y-%m-%d %H:%M')}, {time.time() - started:.0f} s)"
    )
    print(header + "\n")
    print(_table(configs, results))
    print(
        f"\ncpu: process CPU time / (wall time x {os.cpu_count()} cores) while timing; * marks a share "
        f"below {100 * CONTENDED:.0f} %: other load took cores (or, for tiny workloads, the framework "
        f"left them idle), so that figure understates the speed.\n"
    )
    print(_ratios(args, results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({" ".join(k): v for k, v in results.items()}, f, indent=1)


if __name__ == "__main__":
    main()
