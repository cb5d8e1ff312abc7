"""How long ``mitoseg`` takes to show help, for the top level and every subcommand (prints a Markdown table).

    python benchmarks/cli_startup.py               # 3 runs each, median
    python benchmarks/cli_startup.py --repeats 5
    python benchmarks/cli_startup.py --only models weights   # the listings alone
    cd OTHER_CHECKOUT && python /path/to/benchmarks/cli_startup.py   # times that checkout's mitoseg

Each run is a fresh interpreter (``python -m mitoseg_tf.cli.main ... --help``),
as a user typing the command gets; the median hides a neighbour's burst on a
shared machine. ``mitoseg models`` and ``mitoseg weights`` are timed too: they
read the registry's cards and the weights manifest, and import no Keras (the
builders are imported when first used). A help or a listing that takes seconds
has imported TensorFlow: see ``tests/cli/test_cli_startup.py``, which names the
module that did.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

COMMANDS = (
    ("--help",),
    *((name, "--help") for name in ("train", "evaluate", "models", "weights", "export", "predict", "compare", "slide")),
    ("datasets", "--help"),
    ("datasets", "inspect", "--help"),
    ("models",),
    ("weights",),
)


def _seconds(args):
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mitoseg_tf.cli.main", *args], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    return elapsed if proc.returncode == 0 else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per command; the median is shown")
    parser.add_argument("--only", nargs="+", metavar="COMMAND", help="time these rows only, e.g. models weights")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, median of {args.repeats}, in {os.getcwd()}\n")
    print("| command | seconds |")
    print("|---|---:|")
    for command in [c for c in COMMANDS if not args.only or " ".join(c) in args.only]:
        times = [_seconds(command) for _ in range(args.repeats)]
        shown = "failed" if None in times else f"{statistics.median(times):.2f}"
        print(f"| mitoseg {' '.join(command)} | {shown} |", flush=True)


if __name__ == "__main__":
    main()
