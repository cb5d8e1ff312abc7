"""The first minutes with ``mitoseg``: help that loads nothing heavy, no TensorFlow start-up chatter, cheap listings.

Help timings are measured by ``benchmarks/cli_startup.py``; here the cause of a
slow help is tested instead: a heavy module imported to show it.
"""

import argparse
import os
import subprocess
import sys

import pytest

from mitoseg_tf import _quiet
from mitoseg_tf.cli.main import main, parser

# Modules whose import costs seconds; none may be needed to show help.
HEAVY = ("tensorflow", "keras", "jax", "torch", "matplotlib", "skimage", "scipy", "tensorflow_datasets", "cv2")
# What TensorFlow prints on a CPU-only machine at import and at first device use, unless hidden.
CHATTER = (
    "All log messages before absl::InitializeLog()",
    "oneDNN custom operations",
    "Could not find cuda drivers",
    "failed call to cuInit",
    "cpu_feature_guard",
)


def _run(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", _quiet.VERBOSE_VARIABLE)}
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300, **kwargs)


def _subparsers(p, prefix=()):
    yield prefix, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, prefix + (name,))


def test_every_help_is_shown_without_importing_anything_heavy():
    code = (
        "import argparse, sys\n"
        "from mitoseg_tf.cli.main import parser\n"
        "def walk(p):\n"
        "    p.format_help()\n"
        "    for action in p._actions:\n"
        "        if isinstance(action, argparse._SubParsersAction):\n"
        "            for sub in action.choices.values():\n"
        "                walk(sub)\n"
        "walk(parser())\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:])))\n"
    )
    proc = _run([sys.executable, "-c", code, *HEAVY])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"help imported: {proc.stdout.strip()}"


def test_every_option_of_every_command_has_help_and_shows_its_default():
    missing = []
    for path, p in _subparsers(parser()):
        for action in p._actions:
            if action.option_strings and action.help is None:
                missing.append(f"mitoseg {' '.join(path)} {action.option_strings[0]}")
    assert not missing, "options without help: " + ", ".join(missing)
    train = parser().parse_args(["train"])
    text = " ".join(dict(_subparsers(parser()))[("train",)].format_help().split())
    assert f"(default: {train.base_filters})" in text
    assert "(default: None)" not in text  # nothing to show is not shown


def test_verbose_is_accepted_before_and_after_the_command():
    p = parser()
    assert p.parse_args(["--verbose", "models"]).verbose
    assert p.parse_args(["models", "--verbose"]).verbose
    assert p.parse_args(["datasets", "list", "--verbose"]).verbose
    assert not p.parse_args(["models"]).verbose


def test_commands_and_notebook_imports_print_no_tensorflow_chatter():
    command = _run([sys.executable, "-m", "mitoseg_tf.cli.main", "models", "unet"])
    # What a notebook's first cell does, and first device use (where "failed call to cuInit" comes from).
    notebook = _run([sys.executable, "-c", (
        "import mitoseg_tf._quiet\n"
        "import numpy as np\n"
        "from mitoseg_tf.zoo import build\n"
        "print(build('unet', base_filters=4, input_shape=(32, 32, 3))(np.zeros((1, 32, 32, 3), 'float32')).shape)\n"
    )])  # fmt: skip
    for proc in (command, notebook):
        assert proc.returncode == 0, proc.stderr
        shown = [line for line in (proc.stdout + proc.stderr).splitlines() if any(c in line for c in CHATTER)]
        assert not shown, "\n".join(shown)
    assert "31,052,354" in command.stdout


def test_verbose_brings_the_start_up_lines_back():
    proc = _run([sys.executable, "-m", "mitoseg_tf.cli.main", "--verbose", "models", "unet"])
    assert proc.returncode == 0, proc.stderr
    if not any(_quiet.is_noise(line) for line in proc.stderr.splitlines()):
        pytest.skip("this TensorFlow build prints no start-up lines, so there is nothing to hide")
    assert "31,052,354" in proc.stdout


def test_what_tensorflow_prints_besides_the_known_lines_is_kept():
    kept = "UserWarning: something the user should see"
    assert not _quiet.is_noise(kept)
    assert not _quiet.is_noise("E0000 00:00:1.0 1 some_op.cc:1] a real error")
    assert _quiet.is_noise("I0000 00:00:1796304800.563961    9783 port.cc:153] oneDNN custom operations are on.")
    assert _quiet.is_noise("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")


def test_models_reads_parameter_counts_from_the_cards_without_building(monkeypatch, capsys):
    from mitoseg_tf.zoo import get_card, registry

    def refuse(*args, **kwargs):
        raise AssertionError("mitoseg models built a network")

    monkeypatch.setattr(registry, "build", refuse)
    assert main(["models", "unet*"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines()[2:]]
    assert rows
    for row in rows:
        assert row[2].strip() == f"{get_card(row[1].strip()).parameters:,}"


def test_weights_lists_every_shipped_card_with_data_scores_and_licence(capsys):
    from mitoseg_tf.zoo.weights_card import shipped_cards

    cards = shipped_cards()
    assert main(["weights"]) == 0
    out = capsys.readouterr().out
    for key, card in cards.items():
        block = out.split(f"{key}: ")[1].split("\n\n")[0]
        assert card.task in block and card.licence in block and card.data in block
        assert f"class:       {card.object_class} " in block
        assert "validation:" in block and "not recorded" not in block
    mitosis = cards.get("unet/mitosis")
    if mitosis is not None:  # the shipped detector: its F1 with and without the figure classifier
        f1 = mitosis.rescorer.detection["validation"]["5um"]["f1"]
        assert f"with the figure classifier F1 {f1:.3f}" in out


def test_weights_with_no_match_is_one_clear_error(capsys):
    assert main(["weights", "nothing/*"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No shipped weights match 'nothing/*'" in err[0]


def test_the_capture_drops_only_the_known_lines_and_writes_the_rest_back(capfd):
    with _quiet._capture_fd2():
        os.write(2, b"I0000 00:00:1796304800.5 9783 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
        os.write(2, b"a line TensorFlow's user must see\n")
    err = capfd.readouterr().err
    assert err == "a line TensorFlow's user must see\n"
