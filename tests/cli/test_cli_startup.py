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


def _heavy_imports(code):
    """Run ``code`` in a fresh interpreter; its stdout and the heavy modules it left imported."""
    report = "\nprint('HEAVY', ' '.join(sorted(m for m in sys.modules if m.split('.')[0] in sys.argv[1:])))\n"
    proc = _run([sys.executable, "-c", "import sys\n" + code + report, *HEAVY])
    assert proc.returncode == 0, proc.stderr
    out, _, heavy = proc.stdout.rpartition("HEAVY")
    return out, heavy.strip()


def _subparsers(p, prefix=()):
    yield prefix, p
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, prefix + (name,))


def test_every_help_is_shown_without_importing_anything_heavy():
    code = (
        "import argparse\n"
        "from mitoseg_tf.cli.main import parser\n"
        "def walk(p):\n"
        "    p.format_help()\n"
        "    for action in p._actions:\n"
        "        if isinstance(action, argparse._SubParsersAction):\n"
        "            for sub in action.choices.values():\n"
        "                walk(sub)\n"
        "walk(parser())\n"
    )
    _, heavy = _heavy_imports(code)
    assert heavy == "", f"help imported: {heavy}"


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


def test_listing_models_and_weights_imports_no_keras_or_tensorflow():
    # Their speed (under a second) is measured by benchmarks/cli_startup.py; here, its cause.
    listing = "from mitoseg_tf.cli.main import main\nassert main(['models']) == main(['weights']) == 0\n"
    out, heavy = _heavy_imports(listing)
    assert "31,052,354" in out and "unet/monuseg" in out
    assert heavy == "", f"listing imported: {heavy}"


def test_tensorflow_error_lines_still_reach_stderr():
    # A C++ LOG(ERROR) of TensorFlow (tf.print to the error log), in a process quieted as mitoseg and
    # `import mitoseg_tf` quiet it: the start-up lines go, the error stays.
    code = (
        "import mitoseg_tf\n"
        "import tensorflow as tf\n"
        "tf.print('a real TensorFlow error', output_stream=tf.compat.v1.logging.error)\n"
    )
    proc = _run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "a real TensorFlow error" in line]
    assert errors and errors[0].startswith("E"), proc.stderr
    assert not [line for line in proc.stderr.splitlines() if any(c in line for c in CHATTER)], proc.stderr


# A command that loads TensorFlow (to open the checkpoint) and stops at once: one line of error, status 2.
LOADS_TENSORFLOW = ("evaluate", "missing.keras")


def test_commands_and_notebook_imports_print_no_tensorflow_chatter(tmp_path):
    command = _run([sys.executable, "-m", "mitoseg_tf.cli.main", *LOADS_TENSORFLOW], cwd=tmp_path)
    # What a notebook's first cell does, and first device use (where "failed call to cuInit" comes from);
    # importing the package is enough to quiet TensorFlow.
    notebook = _run(
        [
            sys.executable,
            "-c",
            (
                "import numpy as np\n"
                "from mitoseg_tf.zoo import build\n"
                "print(build('unet', base_filters=4, input_shape=(32, 32, 3))(np.zeros((1, 32, 32, 3), 'float32')).shape)\n"
            ),
        ]
    )
    assert (command.returncode, notebook.returncode) == (2, 0), command.stderr + notebook.stderr
    assert command.stderr.strip().splitlines() == [command.stderr.strip()] and "missing.keras" in command.stderr
    for proc in (command, notebook):
        shown = [line for line in (proc.stdout + proc.stderr).splitlines() if any(c in line for c in CHATTER)]
        assert not shown, "\n".join(shown)


def test_verbose_brings_the_start_up_lines_back(tmp_path):
    proc = _run([sys.executable, "-m", "mitoseg_tf.cli.main", "--verbose", *LOADS_TENSORFLOW], cwd=tmp_path)
    assert proc.returncode == 2 and "missing.keras" in proc.stderr, proc.stderr
    if not any(_quiet.is_noise(line) for line in proc.stderr.splitlines()):
        pytest.skip("this TensorFlow build prints no start-up lines, so there is nothing to hide")


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
        assert card.data_licences and all(f"{d.source}: {d.terms}" in block for d in card.data_licences)
    # the default detector: its F1 with and without the figure classifier, the untuned test number first
    mitosis = cards["unet/mitosis"]
    f1 = mitosis.rescorer.detection["validation"]["5um"]["f1"]
    assert f"with the figure classifier F1 {f1:.3f}" in out
    block = out.split("unet/mitosis: ")[1].split("\n\n")[0]
    test = mitosis.rescorer.detection["test"]["5um"]["f1"]
    assert block.index(f"test:        detection F1 {test:.3f} at 5 um (the default") < block.index("validation:")
    assert "MITOS-ATYPIA-14 validation slides" in block


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
