"""Bad and hostile inputs, one table: each gets one clear error (the status and a fragment of the message), never a
traceback, and none runs a network. Issue 33.

CLI cases run ``mitoseg`` in-process and assert the exit status (2: a user error, 3: a fault of the program) and
one stderr line; library cases assert the ValueError and its message. Every case is tiny and fails before a
network would load, so the table stays fast. docs/input_rules.md states the rules these hold.
"""

import csv
import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from mitoseg_tf.cli.main import main

# Issue 33: no bad input may take longer than a minute to be refused (the cases take seconds; a hang fails here).
pytestmark = pytest.mark.timeout(60)

# ------------------------------------------------------------------ the files a case may name


@pytest.fixture(autouse=True)
def _never_train(monkeypatch):
    """A case that got past the checks must fail fast, not train a network for minutes."""
    import mitoseg_tf.compare
    from mitoseg_tf.training import distribute

    def refuse(*args, **kwargs):
        raise AssertionError("the bad input reached training")

    monkeypatch.setattr(distribute, "make_strategy", refuse)  # train_run's first TensorFlow work
    monkeypatch.setattr(mitoseg_tf.compare, "run_compare", refuse)


@pytest.fixture
def ws(tmp_path):
    """A workspace: images, a plain file, run folders with good and bad detection.json, recipes and datasets."""
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (32, 32), (200, 150, 200)).save(tmp_path / "imgs" / "a.png")
    Image.new("RGB", (32, 32), (200, 150, 200)).save(tmp_path / "imgs" / "b.jpg")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("not a folder")
    return tmp_path


def run_folder(ws, detection_text, name="run"):
    """A run folder whose best.keras is junk: detection.json is read first, so its error comes before any load."""
    folder = ws / name
    folder.mkdir(exist_ok=True)
    (folder / "best.keras").write_bytes(b"not a zip")
    if detection_text is not None:
        (folder / "detection.json").write_text(detection_text)
    return str(folder / "best.keras")


def cli(capsys, args):
    code = main([str(a) for a in args])
    err = capsys.readouterr().err.strip()
    return code, err


def _one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


GOOD_DETECTION = {"pixel_threshold": 0.5, "score_threshold": 0.6, "min_area_um2": 4.0, "tta": False}


def _detection(**changes):
    return json.dumps({k: v for k, v in {**GOOD_DETECTION, **changes}.items() if v != "DROP"})


# ------------------------------------------------------------------ mitoseg predict

PREDICT = [
    # (id, arguments after "predict" with {ws} placeholders, message fragment)
    ("missing input", ["{ws}/nope.png", "--out", "{ws}/o", "--mpp", "0.25"], "neither an image file nor a folder"),
    ("empty folder", ["{ws}/empty", "--out", "{ws}/o", "--mpp", "0.25"], "No images"),
    ("folder of non-images", ["{ws}/empty", "--out", "{ws}/o"], "No images"),
    ("out is a file", ["{ws}/imgs", "--out", "{ws}/file.txt", "--mpp", "0.25"], "is a file"),
    ("out under a file", ["{ws}/imgs", "--out", "{ws}/file.txt/sub", "--mpp", "0.25"], "lies under the file"),
    ("out deep under a file", ["{ws}/imgs", "--out", "{ws}/file.txt/a/b", "--mpp", "0.25"], "lies under the file"),
    ("out is the input folder", ["{ws}/imgs", "--out", "{ws}/imgs", "--mpp", "0.25"], "is the folder of the input"),
    (
        "out is the input's folder",
        ["{ws}/imgs/a.png", "--out", "{ws}/imgs", "--mpp", "0.25"],
        "is the folder of the input",
    ),
    (
        "out is the input folder, trailing slash",
        ["{ws}/imgs", "--out", "{ws}/imgs/", "--mpp", "0.25"],
        "folder of the input",
    ),
    ("out is the input folder, dotted", ["{ws}/imgs", "--out", "{ws}/imgs/.", "--mpp", "0.25"], "folder of the input"),
    ("mpp 0", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0"], "not a plausible pixel size"),
    ("mpp negative", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "-0.25"], "not a plausible pixel size"),
    ("mpp nan", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "nan"], "not a plausible pixel size"),
    ("mpp inf", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "inf"], "not a plausible pixel size"),
    ("mpp huge", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "1e9"], "not a plausible pixel size"),
    ("mpp tiny", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "1e-9"], "not a plausible pixel size"),
    ("pixel size unknown", ["{ws}/imgs", "--out", "{ws}/o"], "pixel size"),
    ("tile 0", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--tile", "0"], "--tile must be at least"),
    ("tile negative", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--tile", "-64"], "--tile must be at least"),
    ("overlap 1", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--overlap", "1"], "--overlap"),
    ("overlap negative", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--overlap", "-0.1"], "--overlap"),
    ("overlap nan", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--overlap", "nan"], "--overlap"),
    ("batch size 0", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--batch-size", "0"], "--batch-size"),
    ("hpf area 0", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--hpf10-area-mm2", "0"], "--hpf10-area-mm2"),
    ("hpf area nan", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--hpf10-area-mm2", "nan"], "--hpf10-area-mm2"),
    ("hpf area inf", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--hpf10-area-mm2", "inf"], "--hpf10-area-mm2"),
    ("unknown weights", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/nope"], "unet/nope"),
    ("weights without a tag", ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet"], "unet"),
    (
        "checkpoint and weights",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/mitosis", "--checkpoint", "{ws}/x.keras"],
        "not both",
    ),
    (
        "missing checkpoint",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--checkpoint", "{ws}/x.keras"],
        "does not exist",
    ),
    (
        "checkpoint is a folder",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--checkpoint", "{ws}/empty"],
        "not a file",
    ),
    (
        "threshold above 1",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/mitosis", "--threshold", "2"],
        "pixel_threshold must lie in [0, 1]",
    ),
    (
        "threshold nan",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/mitosis", "--threshold", "nan"],
        "pixel_threshold must lie in [0, 1]",
    ),
    (
        "score threshold negative",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/mitosis", "--score-threshold", "-1"],
        "score_threshold must lie in [0, 1]",
    ),
    (
        "min area negative",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/mitosis", "--min-area-um2", "-5"],
        "min_area_um2",
    ),
    (
        "min area nan",
        ["{ws}/imgs", "--out", "{ws}/o", "--mpp", "0.25", "--weights", "unet/mitosis", "--min-area-um2", "nan"],
        "min_area_um2",
    ),
]


@pytest.mark.parametrize("args, fragment", [c[1:] for c in PREDICT], ids=[c[0] for c in PREDICT])
def test_predict_refuses_with_one_line_and_status_2(ws, capsys, args, fragment):
    code, err = cli(capsys, ["predict", *(a.format(ws=ws) for a in args)])
    assert code == 2, err
    assert err.startswith("mitoseg predict: error:") and "\n" not in err and fragment in err, err
    assert not os.path.exists(ws / "o" / "counts.csv")  # nothing that looks like a result


# A run's detection.json, cut short or with a setting of the wrong type: the file and the field are named.
DETECTION_FILES = [
    ("truncated", _detection()[:25], "not valid JSON"),
    ("empty", "", "not valid JSON"),
    ("binary", "\x00\x01\x02", "not valid JSON"),
    ("a list", "[1, 2]", "not a detection settings file"),
    ("a number", "3", "not a detection settings file"),
    ("no score threshold", _detection(score_threshold="DROP"), "no 'score_threshold'"),
    ("tta as text", _detection(tta="false"), "tta must be true or false; got 'false'"),
    ("tta as 1", _detection(tta=1), "tta must be true or false"),
    ("tta as a list", _detection(tta=[]), "tta must be true or false"),
    ("pixel threshold as text", _detection(pixel_threshold="0.5"), "pixel_threshold must be a number"),
    ("pixel threshold as bool", _detection(pixel_threshold=True), "pixel_threshold must be a number"),
    ("pixel threshold above 1", _detection(pixel_threshold=1.5), "pixel_threshold must lie in [0, 1]"),
    ("pixel threshold nan", _detection(pixel_threshold=float("nan")), "pixel_threshold must lie in [0, 1]"),
    ("score threshold as text", _detection(score_threshold="high"), "score_threshold must be a number"),
    ("score threshold negative", _detection(score_threshold=-0.1), "score_threshold must lie in [0, 1]"),
    ("score threshold infinite", _detection(score_threshold=float("inf")), "score_threshold must lie in [0, 1]"),
    ("min area as text", _detection(min_area_um2="4"), "min_area_um2 must be a number"),
    ("min area negative", _detection(min_area_um2=-1), "min_area_um2 must be >= 0"),
    ("min area nan", _detection(min_area_um2=float("nan")), "min_area_um2 must be >= 0"),
    ("figure score as number", _detection(figure_score=3), "figure_score must be a string"),
    ("mpp as text", _detection(mpp="0.25"), "mpp must be a number"),
    ("mpp zero", _detection(mpp=0), "not a plausible pixel size"),
    ("mpp absurd", _detection(mpp=1e6), "not a plausible pixel size"),
]


@pytest.mark.parametrize("text, fragment", [c[1:] for c in DETECTION_FILES], ids=[c[0] for c in DETECTION_FILES])
def test_predict_refuses_a_bad_detection_json_naming_the_file_before_loading_the_model(ws, capsys, text, fragment):
    checkpoint = run_folder(ws, text)
    code, err = cli(capsys, ["predict", ws / "imgs", "--out", ws / "o", "--mpp", "0.25", "--checkpoint", checkpoint])
    assert code == 2, err
    assert fragment in err and "detection.json" in err and "\n" not in err, err


def test_predict_refuses_a_junk_checkpoint_with_one_line(ws, capsys):
    code, err = cli(
        capsys, ["predict", ws / "imgs", "--out", ws / "o", "--mpp", "0.25", "--checkpoint", run_folder(ws, None)]
    )
    assert code == 2 and "not a Keras .keras archive" in err and "\n" not in err, err


# ------------------------------------------------------------------ predict over a folder: one bad file costs nothing


class _Detector:
    """Stands in for a network: fails on the images named in ``fail`` (with ``error``), finds nothing elsewhere."""

    def __init__(self, fail, error):
        self.fail, self.error = fail, error

    def predict(self, image, mpp, mpp_source):
        from mitoseg_tf.detector.detector import Prediction
        from mitoseg_tf.detector.settings import DetectionSettings

        if int(image[0, 0, 0]) in self.fail:
            raise self.error
        return Prediction(
            figures=(),
            mpp=mpp,
            image_shape=image.shape[:2],
            object_class="Mitosis",
            settings=DetectionSettings(),
            mpp_source=mpp_source,
        )


@pytest.mark.parametrize(
    "error, status",
    [
        (RuntimeError("boom"), "failed: RuntimeError: boom"),
        (MemoryError("too big"), "failed: MemoryError: too big"),
        (ValueError("bad tile"), "failed: bad tile"),
        (OSError("disk"), "failed: disk"),
        (KeyError("x"), "failed: x"),  # a user error, as on the command line: its message, not its repr
        (ZeroDivisionError("zero"), "failed: ZeroDivisionError: zero"),
    ],
    ids=["runtime", "memory", "value", "os", "key", "zero-division"],
)
def test_a_folder_run_finishes_the_good_images_and_writes_every_row(tmp_path, error, status):
    from mitoseg_tf.detector.files import predict_files

    folder = tmp_path / "in"
    folder.mkdir()
    for value, name in enumerate(("a.png", "b.png", "c.png", "d.png")):
        Image.new("RGB", (24, 24), (value, 0, 0)).save(folder / name)
    (folder / "e.png").write_bytes(b"\x89PNG cut short")
    result = predict_files(_Detector({1}, error), str(folder), mpp=0.25, out_dir=str(tmp_path / "o"))
    with open(result.counts_path, newline="") as fh:
        rows = {r["image"]: r["status"] for r in csv.DictReader(fh)}
    assert list(rows) == ["a.png", "b.png", "c.png", "d.png", "e.png"]
    assert rows["b.png"].startswith(status) and rows["a.png"] == rows["c.png"] == rows["d.png"] == "ok"
    assert rows["e.png"].startswith("failed:")
    assert (tmp_path / "o" / "d.geojson").exists() and not (tmp_path / "o" / "b.geojson").exists()


def test_x_png_and_x_jpg_keep_their_own_outputs(tmp_path):
    from mitoseg_tf.detector.files import predict_files

    folder = tmp_path / "in"
    folder.mkdir()
    Image.new("RGB", (24, 24), (0, 0, 0)).save(folder / "x.png")
    Image.new("RGB", (24, 24), (0, 0, 0)).save(folder / "x.jpg")
    Image.new("RGB", (24, 24), (0, 0, 0)).save(folder / "y.png")
    predict_files(_Detector(set(), None), str(folder), mpp=0.25, out_dir=str(tmp_path / "o"))
    written = sorted(os.listdir(tmp_path / "o"))
    assert {"x.png.geojson", "x.jpg.geojson", "y.geojson", "x.png_overlay.jpg", "x.jpg_overlay.jpg"} <= set(written)
    assert "x.geojson" not in written


@pytest.mark.parametrize(
    "names, fragment",
    [
        (("a/x.png", "b/x.png"), "share the file name x.png"),
        (("a/x.png", "a/x.png"), "share the file name x.png"),
    ],
    ids=["two folders", "twice"],
)
def test_two_inputs_of_one_file_name_are_refused(tmp_path, names, fragment):
    from mitoseg_tf.detector.files import output_stems

    with pytest.raises(ValueError, match=fragment):
        output_stems([str(tmp_path / n) for n in names])


def test_the_library_refuses_an_out_dir_that_holds_the_inputs(tmp_path):
    from mitoseg_tf.detector.files import predict_files

    Image.new("RGB", (24, 24)).save(tmp_path / "a.png")
    with pytest.raises(ValueError, match="is the folder of the input"):
        predict_files(_Detector(set(), None), [str(tmp_path / "a.png")], mpp=0.25, out_dir=str(tmp_path))


# ------------------------------------------------------------------ the top-level handler


def _raise(error):
    def handler(args):
        raise error

    return handler


@pytest.mark.parametrize(
    "error, code, fragment",
    [
        (RuntimeError("boom"), 3, "internal error: RuntimeError: boom (run with --verbose for the traceback)"),
        (TypeError("bad operand"), 3, "internal error: TypeError: bad operand"),
        (AttributeError("no attr"), 3, "internal error: AttributeError"),
        (MemoryError(), 3, "internal error: MemoryError"),
        (ZeroDivisionError("x"), 3, "internal error: ZeroDivisionError"),
        (ValueError("bad value"), 2, "mitoseg models: error: bad value"),
        (KeyError("unknown key"), 2, "mitoseg models: error: unknown key"),
        (FileNotFoundError("no such file"), 2, "error: no such file"),
        (PermissionError(13, "Permission denied", "/x"), 2, "Permission denied"),
        (IsADirectoryError(21, "Is a directory", "/x"), 2, "Is a directory"),
        (KeyboardInterrupt(), 130, "mitoseg models: interrupted"),
    ],
    ids=[
        "runtime",
        "type",
        "attribute",
        "memory",
        "zero",
        "value",
        "key",
        "missing",
        "permission",
        "directory",
        "interrupt",
    ],
)
def test_every_error_is_one_line_and_a_status(monkeypatch, capsys, error, code, fragment):
    import mitoseg_tf.cli.main as cli_main

    monkeypatch.setattr(cli_main, "_models", _raise(error))
    assert main(["models"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and fragment in err, err


def test_verbose_shows_the_traceback_of_an_internal_error(monkeypatch, capsys):
    import mitoseg_tf.cli.main as cli_main

    monkeypatch.setattr(cli_main, "_models", _raise(RuntimeError("boom")))
    monkeypatch.setattr(cli_main._quiet, "verbose", lambda: None)  # leave TensorFlow's logging as the suite has it
    assert main(["models", "--verbose"]) == 3
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and _one_line(err).startswith("mitoseg models: internal error")


# ------------------------------------------------------------------ mitoseg train: options checked before TensorFlow

TRAIN_OPTIONS = [
    ("--epochs", "0", "epochs must be an integer >= 1; got 0"),
    ("--epochs", "-3", "epochs must be an integer >= 1; got -3"),
    ("--steps-per-epoch", "0", "steps_per_epoch must be an integer >= 1; got 0"),
    ("--steps-per-epoch", "-1", "steps_per_epoch must be an integer >= 1"),
    ("--batch-size", "0", "batch_size must be an integer >= 1; got 0"),
    ("--batch-size", "-2", "batch_size must be an integer >= 1"),
    ("--crop-size", "0", "crop_size must be an integer >= 16; got 0"),
    ("--crop-size", "8", "crop_size must be an integer >= 16; got 8"),
    ("--crop-size", "-128", "crop_size must be an integer >= 16"),
    ("--base-filters", "0", "base_filters must be an integer >= 1"),
    ("--learning-rate", "nan", "learning_rate must be a finite number > 0; got nan"),
    ("--learning-rate", "inf", "learning_rate must be a finite number > 0; got inf"),
    ("--learning-rate", "-inf", "learning_rate must be a finite number > 0"),
    ("--learning-rate", "0", "learning_rate must be a finite number > 0; got 0.0"),
    ("--learning-rate", "-0.001", "learning_rate must be a finite number > 0"),
    ("--budget-minutes", "0", "budget_minutes must be a finite number > 0"),
    ("--budget-minutes", "-5", "budget_minutes must be a finite number > 0"),
    ("--budget-minutes", "nan", "budget_minutes must be a finite number > 0"),
    ("--num-examples", "0", "num_examples must be an integer >= 1"),
]


@pytest.mark.parametrize("flag, value, fragment", TRAIN_OPTIONS, ids=[f"{f} {v}" for f, v, _ in TRAIN_OPTIONS])
def test_train_refuses_a_bad_option_before_any_work(tmp_path, capsys, flag, value, fragment):
    code, err = cli(capsys, ["train", "--output-dir", tmp_path / "runs", f"{flag}={value}"])
    assert code == 2 and err.startswith("mitoseg train: error:") and fragment in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()


RECIPES = [
    ("empty file", "", "is empty"),
    ("only a comment", "# nothing here\n", "is empty"),
    ("empty mapping", "{}\n", "is empty"),
    ("a list", "- model: unet\n", "expected a mapping"),
    ("a string", "unet\n", "expected a mapping"),
    ("not YAML", "model: [unet\n", "not valid YAML"),
    ("tab indentation", "model:\n\t- unet\n", "not valid YAML"),
    ("unknown key", "model: unet\nepoch: 3\n", "unknown key(s) ['epoch']"),
    ("numeric key", "1: 2\n", "unknown key(s) ['1']"),
    ("epochs as text", "model: unet\nepochs: ten\n", "epochs must be an integer; got 'ten'"),
    ("epochs as float", "model: unet\nepochs: 2.5\n", "epochs must be an integer; got 2.5"),
    ("epochs as bool", "model: unet\nepochs: yes\n", "epochs must be an integer; got True"),
    ("epochs zero", "model: unet\nepochs: 0\n", "epochs must be an integer >= 1"),
    ("steps zero", "model: unet\nsteps_per_epoch: 0\n", "steps_per_epoch must be an integer >= 1"),
    ("steps as text", "model: unet\nsteps_per_epoch: '40'\n", "steps_per_epoch must be an integer; got '40'"),
    ("batch zero", "model: unet\nbatch_size: 0\n", "batch_size must be an integer >= 1"),
    ("crop zero", "model: unet\ncrop_size: 0\n", "crop_size must be an integer >= 16"),
    ("crop null", "model: unet\ncrop_size: null\n", "crop_size must be an integer; got None"),
    ("learning rate nan", "model: unet\nlearning_rate: .nan\n", "learning_rate must be a finite number > 0"),
    ("learning rate inf", "model: unet\nlearning_rate: .inf\n", "learning_rate must be a finite number > 0"),
    ("learning rate text", "model: unet\nlearning_rate: fast\n", "learning_rate must be a number; got 'fast'"),
    ("learning rate zero", "model: unet\nlearning_rate: 0\n", "learning_rate must be a finite number > 0"),
    ("tta as text", "model: unet\ntta: 'false'\n", "tta must be true or false; got 'false'"),
    ("deterministic as number", "model: unet\ndeterministic: 1\n", "deterministic must be true or false"),
    ("model as number", "model: 3\n", "model must be a string"),
    ("model_args a list", "model: unet\nmodel_args: [1]\n", "model_args must be a mapping"),
    ("data_options a number", "model: unet\ndata_options: 5\n", "data_options must be a mapping"),
    ("augment a string", "model: unet\naugment: strong\n", "augment must be a mapping"),
    ("positive fraction above 1", "model: unet\npositive_fraction: 2\n", "positive_fraction must lie in [0, 1]"),
    ("eval tile zero", "model: unet\neval_tile: 0\n", "eval_tile must be an integer >= 16"),
    ("target mpp zero", "model: unet\ntarget_mpp: 0\n", "not a plausible pixel size"),
    ("budget negative", "model: unet\nbudget_minutes: -1\n", "budget_minutes must be a finite number > 0"),
]


@pytest.mark.parametrize("text, fragment", [c[1:] for c in RECIPES], ids=[c[0] for c in RECIPES])
def test_train_refuses_a_bad_recipe_naming_it_and_the_field(tmp_path, capsys, text, fragment):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(text)
    code, err = cli(capsys, ["train", "--recipe", recipe, "--output-dir", tmp_path / "runs"])
    assert code == 2 and fragment in err and str(recipe) in err and "\n" not in err, err
    assert not (tmp_path / "runs").exists()


def test_train_refuses_a_missing_recipe(tmp_path, capsys):
    code, err = cli(capsys, ["train", "--recipe", tmp_path / "nope.yaml"])
    assert code == 2 and "nope.yaml not found" in err


RUN_CONFIGS = [
    (dict(epochs=0), "epochs must be an integer >= 1"),
    (dict(epochs="ten"), "epochs must be an integer; got 'ten'"),
    (dict(epochs=np.int64(0)), "epochs must be an integer >= 1"),
    (dict(steps_per_epoch=0), "steps_per_epoch must be an integer >= 1"),
    (dict(batch_size=1.5), "batch_size must be an integer; got 1.5"),
    (dict(crop_size=None), "crop_size must be an integer; got None"),
    (dict(learning_rate=math.nan), "learning_rate must be a finite number > 0"),
    (dict(learning_rate="1e-3"), "learning_rate must be a number"),
    (dict(tta="false"), "tta must be true or false"),
    (dict(resume="no"), "resume must be true or false"),
    (dict(data=None), "data must be a string; got None"),
    (dict(num_examples=0), "num_examples must be an integer >= 1"),
    (dict(num_overlays=-1), "num_overlays must be an integer >= 0"),
]


@pytest.mark.parametrize(
    "values, fragment", RUN_CONFIGS, ids=[next(iter(v)) + repr(next(iter(v.values()))) for v, _ in RUN_CONFIGS]
)
def test_run_config_refuses_bad_values(values, fragment):
    from mitoseg_tf.config import RunConfig

    with pytest.raises(ValueError, match=fragment.replace("[", r"\[").replace("(", r"\(")):
        RunConfig(**values)


COMPARE_OPTIONS = [
    ("--epochs", "0", "epochs must be an integer >= 1"),
    ("--steps-per-epoch", "0", "steps_per_epoch must be an integer >= 1"),
    ("--batch-size", "0", "batch_size must be an integer >= 1"),
    ("--crop-size", "4", "crop_size must be an integer >= 16"),
    ("--learning-rate", "nan", "learning_rate must be a finite number > 0"),
    ("--repeats", "0", "repeats must be an integer >= 1"),
    ("--match-distance-um", "0", "match_distance_um must be a finite number > 0"),
    ("--match-distance-um", "inf", "match_distance_um must be a finite number > 0"),
]


@pytest.mark.parametrize("flag, value, fragment", COMPARE_OPTIONS, ids=[f"{f} {v}" for f, v, _ in COMPARE_OPTIONS])
def test_compare_refuses_a_bad_option_before_any_work(tmp_path, capsys, flag, value, fragment):
    code, err = cli(capsys, ["compare", "--out", tmp_path / "c", f"{flag}={value}"])
    assert code == 2 and fragment in err and "\n" not in err, err
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "event, logs, fragment",
    [
        ("batch", {"loss": float("nan")}, "the loss became nan at epoch 3, batch 5"),
        ("batch", {"loss": float("inf")}, "the loss became inf at epoch 3, batch 5"),
        ("batch", {"loss": np.float32("-inf")}, "the loss became -inf"),
        ("epoch", {"loss": 0.5, "val_loss": float("nan")}, "the validation loss became nan after epoch 3"),
    ],
    ids=["nan", "inf", "-inf", "validation nan"],
)
def test_a_non_finite_loss_stops_training_with_a_clear_error(event, logs, fragment):
    from mitoseg_tf.training.fit import NonFiniteLoss, StopOnNonFiniteLoss

    stop = StopOnNonFiniteLoss()
    stop.on_epoch_begin(2)
    stop.on_train_batch_end(3, {"loss": 0.7})  # a finite loss goes on
    with pytest.raises(NonFiniteLoss, match=fragment) as info:
        stop.on_train_batch_end(4, logs) if event == "batch" else stop.on_epoch_end(2, logs)
    assert "no checkpoint of that epoch was kept" in str(info.value) and isinstance(info.value, ValueError)


def test_fit_stops_on_a_non_finite_loss_before_the_best_checkpoint_sees_the_epoch(tmp_path, monkeypatch):
    from mitoseg_tf.training import compile_model, fit
    from mitoseg_tf.training.callbacks import BestCheckpoint
    from mitoseg_tf.training.fit import StopOnNonFiniteLoss
    from mitoseg_tf.zoo import build

    model = compile_model(build("unet", base_filters=2, input_shape=(None, None, 3), dropout=0.0), ema=False)
    monkeypatch.setattr(model, "fit", lambda *a, callbacks, **k: [type(c) for c in callbacks])  # no training: the order
    order = fit(model, [], [], epochs=1, run_dir=str(tmp_path), verbose=0)
    assert order.index(StopOnNonFiniteLoss) < order.index(BestCheckpoint)


# ------------------------------------------------------------------ other commands


def test_evaluate_refuses_a_missing_checkpoint(tmp_path, capsys):
    code, err = cli(capsys, ["evaluate", tmp_path / "nope.keras"])
    assert code == 2 and "nope.keras" in err and "\n" not in err, err


def test_evaluate_refuses_an_out_that_is_a_file(ws, capsys):
    code, err = cli(capsys, ["evaluate", ws / "x.keras", "--out", ws / "file.txt"])
    assert code == 2 and "is a file" in err, err


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["export", "--checkpoint", "{ws}/nope.keras", "--out", "{ws}/e"], "does not exist"),
        (["export", "--weights", "unet/nope", "--out", "{ws}/e"], "unet/nope"),
        (["models", "nothing*"], "No registered model matches"),
        (["weights", "nothing/*"], "No shipped weights match"),
        (["datasets", "inspect", "nope", "--data-dir", "{ws}"], "nope"),
        (["datasets", "prepare", "nope", "--data-dir", "{ws}"], "nope"),
        (["datasets", "inspect", "midog", "--data-dir", "{ws}/missing"], "does not exist"),
        (["datasets", "inspect", "midog", "--data-dir", "{ws}/empty"], "is empty"),
        (["datasets", "inspect", "monuseg", "--data-dir", "{ws}/empty"], "is empty"),
        (["slide", "{ws}/nope.svs", "--out", "{ws}/o"], "neither a slide file nor a folder"),
        (["slide", "{ws}/empty", "--out", "{ws}/o"], "no slides or images"),
        (["slide", "{ws}/imgs", "--out", "{ws}/file.txt"], "is a file"),
        (["slide", "{ws}/imgs", "--out", "{ws}/file.txt/x"], "lies under the file"),
        (["slide", "{ws}/imgs", "--out", "{ws}/imgs"], "is the folder of the input"),
        (["train", "--model", "nope", "--output-dir", "{ws}/runs"], "nope"),
        (["train", "--data", "nope", "--output-dir", "{ws}/runs"], "nope"),
        (["train", "--radius-um", "3", "--output-dir", "{ws}/runs"], "apply to the public datasets"),
        (["export", "--weights", "unet/mitosis", "--out", "{ws}/e", "--tile=0"], "--tile must be at least"),
        (["export", "--weights", "unet/mitosis", "--out", "{ws}/e", "--overlap=1"], "--overlap"),
        (["evaluate", "{ws}/x.keras", "--batch-size=0"], "--batch-size must be at least 1"),
        (["evaluate", "{ws}/x.keras", "--match-distance-um=0"], "--match-distance-um must be a finite number > 0"),
        (["evaluate", "{ws}/x.keras", "--match-distance-um=nan"], "--match-distance-um must be a finite number > 0"),
        (["evaluate", "{ws}/x.keras", "--mpp=0"], "not a plausible pixel size"),
        (["evaluate", "{ws}/x.keras", "--out", "{ws}/file.txt/x"], "lies under the file"),
        (["evaluate", "{ws}/x.keras", "--data", "nope"], "nope"),
        (["slide", "{ws}/imgs", "--out", "{ws}/o", "--tile=0"], "--tile must be at least"),
        (["slide", "{ws}/imgs", "--out", "{ws}/o", "--batch-size=0"], "--batch-size must be at least 1"),
        (["slide", "{ws}/imgs", "--out", "{ws}/o", "--hpf10-area-mm2=-2"], "--hpf10-area-mm2 must be a finite"),
    ],
    ids=[
        "export missing checkpoint",
        "export unknown weights",
        "models no match",
        "weights no match",
        "inspect unknown dataset",
        "prepare unknown dataset",
        "inspect missing dir",
        "inspect empty dir",
        "inspect monuseg empty dir",
        "slide missing",
        "slide empty folder",
        "slide out is a file",
        "slide out under a file",
        "slide out is the input folder",
        "train unknown model",
        "train unknown data",
        "train dataset option on synthetic",
        "export tile 0",
        "export overlap 1",
        "evaluate batch 0",
        "evaluate match distance 0",
        "evaluate match distance nan",
        "evaluate mpp 0",
        "evaluate out under a file",
        "evaluate unknown data",
        "slide tile 0",
        "slide batch 0",
        "slide hpf area negative",
    ],
)
def test_other_commands_refuse_with_one_line(ws, capsys, args, fragment):
    code, err = cli(capsys, [a.format(ws=ws) for a in args])
    assert code == 2 and fragment in err and "\n" not in err, err


# ------------------------------------------------------------------ dataset readers

MIDOG = {
    "images": [{"id": 1, "file_name": "a.tiff", "width": 100, "height": 80}],
    "annotations": [{"id": 7, "image_id": 1, "category_id": 1, "bbox": [10, 10, 60, 60]}],
}


def _midog(**changes):
    db = json.loads(json.dumps(MIDOG))
    for where, value in changes.items():
        part, key = where.split("__")
        if value == "DROP":
            del db[part][0][key]
        else:
            db[part][0][key] = value
    return db


MIDOG_CASES = [
    ("truncated", json.dumps(MIDOG)[:30], "not valid JSON"),
    ("not an object", "[]", "COCO-style object"),
    ("no annotations", json.dumps({"images": MIDOG["images"]}), "COCO-style object"),
    ("no images", json.dumps({"images": [], "annotations": []}), "lists no images"),
    ("images not a list", json.dumps({"images": {"a": 1}, "annotations": []}), "must be lists"),
    ("image not an object", json.dumps({"images": [3], "annotations": []}), "images[0]: expected an object"),
    ("image without id", json.dumps(_midog(images__id="DROP")), "images[0]: lacks the field(s) id"),
    ("image without file name", json.dumps(_midog(images__file_name="DROP")), "lacks the field(s) file_name"),
    ("image without width", json.dumps(_midog(images__width="DROP")), "lacks the field(s) width"),
    ("width as text", json.dumps(_midog(images__width="wide")), "width: 'wide' is not a number"),
    ("width zero", json.dumps(_midog(images__width=0)), "whole numbers >= 1"),
    ("height negative", json.dumps(_midog(images__height=-80)), "whole numbers >= 1"),
    ("height fractional", json.dumps(_midog(images__height=80.5)), "whole numbers >= 1"),
    ("width nan", json.dumps(_midog(images__width=float("nan"))), "width: nan is not a finite number"),
    (
        "annotation without bbox",
        json.dumps(_midog(annotations__bbox="DROP")),
        "annotations[0]: lacks the field(s) bbox",
    ),
    ("annotation without image", json.dumps(_midog(annotations__image_id="DROP")), "lacks the field(s) image_id"),
    ("unknown image", json.dumps(_midog(annotations__image_id=9)), "unknown image id 9"),
    ("unknown category", json.dumps(_midog(annotations__category_id=5)), "has category 5"),
    ("bbox of 3", json.dumps(_midog(annotations__bbox=[1, 2, 3])), "bbox must be [x1, y1, x2, y2]"),
    ("bbox a string", json.dumps(_midog(annotations__bbox="1,2,3,4")), "bbox must be [x1, y1, x2, y2]"),
    ("bbox nan", json.dumps(_midog(annotations__bbox=[float("nan"), 1, 2, 3])), "(id 7), bbox: nan is not a finite"),
    ("bbox inf", json.dumps(_midog(annotations__bbox=[0, 1, float("inf"), 3])), "bbox: inf is not a finite"),
    ("bbox text", json.dumps(_midog(annotations__bbox=[0, 1, "x", 3])), "bbox: 'x' is not a number"),
    ("bbox null", json.dumps(_midog(annotations__bbox=[0, None, 2, 3])), "bbox: None is not a number"),
    ("annotation not an object", json.dumps({**MIDOG, "annotations": ["x"]}), "annotations[0]: expected an object"),
]


def _monuseg_xml(vertices='<Vertex X="1" Y="2"/><Vertex X="5" Y="2"/><Vertex X="5" Y="6"/>', mpp=""):
    stated = f' MicronsPerPixel="{mpp}"' if mpp else ""
    return (
        f'<Annotations{stated}><Annotation><Regions><Region Id="4"><Vertices>{vertices}</Vertices></Region>'
        "</Regions></Annotation></Annotations>"
    )


MONUSEG_CASES = [
    ("truncated", _monuseg_xml()[:40], "not a valid XML file"),
    ("no regions", "<Annotations/>", "no Region/Vertices polygons"),
    ("vertex without X", _monuseg_xml('<Vertex Y="2"/>'), "Region 4, Vertex 1 X: None is not a number"),
    ("vertex without Y", _monuseg_xml('<Vertex X="2"/>'), "Region 4, Vertex 1 Y: None is not a number"),
    ("vertex X text", _monuseg_xml('<Vertex X="1" Y="2"/><Vertex X="left" Y="2"/>'), "Vertex 2 X: 'left' is not"),
    ("vertex X empty", _monuseg_xml('<Vertex X="" Y="2"/>'), "Vertex 1 X: '' is not a number"),
    ("vertex X nan", _monuseg_xml('<Vertex X="nan" Y="2"/>'), "Vertex 1 X: 'nan' is not a finite number"),
    ("vertex Y inf", _monuseg_xml('<Vertex X="1" Y="inf"/>'), "Vertex 1 Y: 'inf' is not a finite number"),
    ("vertex Y -inf", _monuseg_xml('<Vertex X="1" Y="-Infinity"/>'), "is not a finite number"),
    ("mpp zero", _monuseg_xml(mpp="0"), "MicronsPerPixel"),
    ("mpp negative", _monuseg_xml(mpp="-0.25"), "MicronsPerPixel"),
    ("mpp text", _monuseg_xml(mpp="fine"), "MicronsPerPixel"),
    ("mpp nan", _monuseg_xml(mpp="nan"), "MicronsPerPixel"),
    ("mpp huge", _monuseg_xml(mpp="1e12"), "MicronsPerPixel"),
]

CSV_CASES = [
    ("tupac nan", "tupac16", "12,nan\n", "line 1 (expected row,col): 'nan' is not a finite number"),
    ("tupac inf", "tupac16", "inf,4\n", "'inf' is not a finite number"),
    ("tupac text", "tupac16", "12,four\n", "'four' is not a number"),
    ("tupac three values", "tupac16", "1,2,3\n", "expected row,col; got 3 values"),
    ("atypia nan", "atypia", "1,2,0.9\nnan,3,1\n", "line 2 (expected x,y,confidence): 'nan' is not a finite"),
    ("atypia text confidence", "atypia", "1,2,sure\n", "'sure' is not a number"),
    ("mitos12 pixel nan", "mitos12", "1,2,3,nan\n", "'nan' is not a finite number"),
    ("mitos12 odd count", "mitos12", "1,2,3\n", "got 3 values"),
]

LIST_CASES = [
    ("mitos12 centre list nan", "mitos12 list", "image,x,y\nA00_00,nan,3\n", "line 2 (x and y): 'nan' is not a finite"),
    ("mitos12 centre list text", "mitos12 list", "image,x,y\nA00_00,1,up\n", "line 2 (x and y): 'up' is not a number"),
    ("mitos12 centre list short", "mitos12 list", "image,x,y\nA00_00,1\n", "line 2 (x and y): None is not a number"),
    ("atypia point list inf", "atypia list", "d/A03/A03_00 inf 3\n", "line 1 (x and y): 'inf' is not a finite"),
    ("atypia point list text", "atypia list", "d/A03/A03_00 1 y\n", "line 1 (x and y): 'y' is not a number"),
]

VOC_BOXES = [
    ("xmin nan", "<xmin>nan</xmin><ymin>1</ymin><xmax>9</xmax><ymax>9</ymax>", "<bndbox><xmin>: 'nan' is not a finite"),
    ("ymax inf", "<xmin>1</xmin><ymin>1</ymin><xmax>9</xmax><ymax>inf</ymax>", "<bndbox><ymax>: 'inf' is not a finite"),
    ("xmax missing", "<xmin>1</xmin><ymin>1</ymin><ymax>9</ymax>", "<bndbox><xmax>: None is not a number"),
    ("ymin text", "<xmin>1</xmin><ymin>top</ymin><xmax>9</xmax><ymax>9</ymax>", "<bndbox><ymin>: 'top' is not"),
]


def _voc(box):
    return f"<annotation><object><name>mitosis</name><bndbox>{box}</bndbox></object></annotation>"


def _reader(name):
    from mitoseg_tf.data.formats import midog, mitos12, mitos_atypia14, monuseg, tupac16, voc

    return {
        "midog": midog.read_database,
        "monuseg": monuseg.read_xml,
        "tupac16": tupac16.read_points,
        "atypia": mitos_atypia14.read_frame_csv,
        "mitos12": mitos12.read_pixel_csv,
        "mitos12 list": mitos12.read_centre_list,
        "atypia list": mitos_atypia14.read_point_list,
        "voc": voc.read_xml,
    }[name]


# (id, reader, label file text, message fragment): every reader names the file, and the record where it has one.
READER_CASES = (
    [(i, "midog", text, fragment) for i, text, fragment in MIDOG_CASES]
    + [(i, "monuseg", text, fragment) for i, text, fragment in MONUSEG_CASES]
    + CSV_CASES
    + LIST_CASES
    + [(i, "voc", _voc(box), "object 0, " + fragment) for i, box, fragment in VOC_BOXES]
)


@pytest.mark.parametrize(
    "reader, text, fragment", [c[1:] for c in READER_CASES], ids=[f"{c[1]}: {c[0]}" for c in READER_CASES]
)
def test_dataset_readers_name_the_file_and_the_record(tmp_path, reader, text, fragment):
    path = tmp_path / "labels"
    path.write_text(text)
    with pytest.raises(ValueError) as info:
        _reader(reader)(str(path))
    assert str(path) in str(info.value) and fragment in str(info.value), info.value


RECORDS = [
    (dict(points=np.array([[np.nan, 3.0]])), "record 'r' (r.png), points: 1 coordinate(s) are not finite"),
    (dict(points=np.array([[1.0, np.inf]])), "points: 1 coordinate(s) are not finite numbers (e.g. inf)"),
    (dict(negatives=np.array([[-np.inf, 1.0]])), "negatives: 1 coordinate(s) are not finite"),
    (dict(polygons=[np.array([[1.0, 2.0], [np.nan, 4.0]])]), "polygons[0]: 1 coordinate(s) are not finite"),
    (dict(pixels=[np.array([[1, 2]]), np.array([[np.nan, 2]])]), "pixels[1]: 1 coordinate(s) are not finite"),
    (dict(points=[["a", "b"]]), "points: coordinates must be numbers"),
    (dict(mpp=0.0), "not a plausible pixel size"),
    (dict(mpp=-1.0), "not a plausible pixel size"),
    (dict(mpp=math.nan), "not a plausible pixel size"),
]


@pytest.mark.parametrize(
    "values, fragment",
    RECORDS,
    ids=[
        "nan point",
        "inf point",
        "inf negative",
        "nan polygon",
        "nan pixel",
        "text points",
        "mpp 0",
        "mpp -1",
        "mpp nan",
    ],
)
def test_no_reader_can_pass_on_a_non_finite_record(values, fragment):
    from mitoseg_tf.data.formats.record import Record

    with pytest.raises(ValueError) as info:
        Record(**{"id": "r", "image": "r.png", "slide": "r", "mpp": 0.25, **values})
    assert fragment in str(info.value), info.value


@pytest.mark.parametrize("point", [(np.nan, 1.0), (1.0, np.inf), (-np.inf, -np.inf)], ids=["nan", "inf", "-inf"])
def test_points_to_mask_refuses_a_non_finite_point(point):
    from mitoseg_tf.data.points import points_to_mask

    with pytest.raises(ValueError, match="is not finite"):
        points_to_mask(np.array([point], np.float32), (32, 32), mpp=0.25)


# ------------------------------------------------------------------ shipped weights and their manifest


@pytest.fixture
def weights_copy(tmp_path, monkeypatch):
    """A copy of the shipped manifest in a folder the package reads instead (the weights files are linked in)."""
    from mitoseg_tf.zoo import weights_card

    folder = tmp_path / "weights"
    folder.mkdir()
    for name in os.listdir(weights_card.WEIGHTS_DIR):
        source = os.path.join(weights_card.WEIGHTS_DIR, name)
        if name.endswith(".h5"):
            os.symlink(source, folder / name)
        else:
            (folder / name).write_bytes(open(source, "rb").read())
    monkeypatch.setattr(weights_card, "WEIGHTS_DIR", str(folder))
    return folder


def test_every_shipped_weights_file_has_the_sha256_its_manifest_records():
    from mitoseg_tf.zoo.pretrained import checked_path, rescorer_entry, weights_entry
    from mitoseg_tf.zoo.weights_card import read_manifest

    for key, entry in read_manifest().items():
        name, tag = key.split("/")
        assert len(entry["sha256"]) == 64 and checked_path(weights_entry(name, tag), key)
        if "rescorer" in entry:
            assert len(entry["rescorer"]["sha256"]) == 64 and checked_path(rescorer_entry(name, tag), key)


def _damage(folder, name, how):
    path = folder / name
    data = open(path, "rb").read()
    path.unlink()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "swapped":
        path.write_bytes(open(folder / "unet_monuseg.weights.h5", "rb").read())
    elif how == "flipped byte":
        path.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])


@pytest.mark.parametrize(
    "how, fragment",
    [
        ("truncated", "does not have the SHA-256"),
        ("swapped", "does not have the SHA-256"),
        ("flipped byte", "does not have the SHA-256"),
        ("missing", "is missing from"),
    ],
)
def test_damaged_weights_are_refused_before_they_load(weights_copy, capsys, how, fragment):
    _damage(weights_copy, "unet_mitosis.weights.h5", how)
    code, err = cli(capsys, ["export", "--weights", "unet/mitosis", "--no-rescore", "--out", weights_copy / "e"])
    assert code == 2 and fragment in err and "unet/mitosis" in err and "\n" not in err, err


def test_a_damaged_figure_classifier_is_refused(weights_copy):
    from mitoseg_tf.zoo.pretrained import load_rescorer

    _damage(weights_copy, "unet_mitosis_rescorer.weights.h5", "truncated")
    with pytest.raises(ValueError, match="figure classifier.*does not have the SHA-256"):
        load_rescorer("unet", "mitosis")


@pytest.mark.parametrize(
    "change, fragment",
    [
        (lambda m: '{"unet/mitosis": {', "manifest.json is not valid JSON"),
        (lambda m: "[]", "expected a mapping of MODEL/TAG"),
        (
            lambda m: {**m, "unet/mitosis": {k: v for k, v in m["unet/mitosis"].items() if k != "file"}},
            "manifest.json, unet/mitosis: lacks the field(s) file",
        ),
        (
            lambda m: {**m, "unet/mitosis": {k: v for k, v in m["unet/mitosis"].items() if k != "arguments"}},
            "lacks the field(s) arguments",
        ),
        (
            lambda m: {**m, "unet/mitosis": {**m["unet/mitosis"], "rescorer": {"file": "x.h5"}}},
            "unet/mitosis, rescorer: lacks the field(s) arguments, detection, training",
        ),
        (  # the settings the default runs: the figure classifier's block
            lambda m: {
                **m,
                "unet/mitosis": {
                    **m["unet/mitosis"],
                    "rescorer": {
                        **m["unet/mitosis"]["rescorer"],
                        "detection": {**m["unet/mitosis"]["rescorer"]["detection"], "tta": "false"},
                    },
                },
            },
            "card of unet/mitosis",
        ),
        (  # the network-only block, which the default overrides: still named
            lambda m: {
                **m,
                "unet/mitosis": {
                    **m["unet/mitosis"],
                    "detection": {**m["unet/mitosis"]["detection"], "pixel_threshold": 1.5},
                },
            },
            "card of unet/mitosis",
        ),
    ],
    ids=[
        "truncated",
        "a list",
        "no file",
        "no arguments",
        "rescorer without fields",
        "tta as text",
        "network block out of range",
    ],
)
def test_a_damaged_manifest_is_named(weights_copy, capsys, change, fragment):
    manifest = json.loads((weights_copy / "manifest.json").read_text())
    changed = change(manifest)
    (weights_copy / "manifest.json").write_text(changed if isinstance(changed, str) else json.dumps(changed))
    (weights_copy.parent / "imgs").mkdir()
    Image.new("RGB", (32, 32)).save(weights_copy.parent / "imgs" / "a.png")
    code, err = cli(
        capsys, ["predict", weights_copy.parent / "imgs", "--out", weights_copy.parent / "o", "--mpp", "0.25"]
    )
    assert code == 2 and fragment in err and "\n" not in err, err


# ------------------------------------------------------------------ images that would decode wrongly, silently


def _write_image(path, kind):
    import tifffile

    rgb = np.zeros((8, 8, 3), np.uint8)
    if kind == "16-bit RGB TIFF":
        tifffile.imwrite(path, (np.arange(192).reshape(8, 8, 3) * 20).astype(np.uint16))
    elif kind == "16-bit RGB PNG":
        import cv2

        cv2.imwrite(str(path), (np.arange(192).reshape(8, 8, 3) * 20).astype(np.uint16))
    elif kind == "16-bit grey PNG":
        Image.fromarray(np.full((8, 8), 4000, np.uint16)).save(path)
    elif kind == "float32 RGB TIFF":
        tifffile.imwrite(path, np.random.default_rng(0).random((8, 8, 3), np.float32))
    elif kind == "float32 grey TIFF":
        tifffile.imwrite(path, np.random.default_rng(0).random((8, 8), np.float32))
    elif kind == "animated GIF":
        frames = [Image.new("RGB", (8, 8), (50 * i, 0, 0)) for i in range(3)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    elif kind == "multi-page TIFF":
        tifffile.imwrite(path, np.zeros((3, 8, 8, 3), np.uint8))
    elif kind == "greyscale":
        Image.new("L", (8, 8)).save(path)
    elif kind == "transparent":
        Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)
    elif kind == "truncated":
        Image.fromarray(rgb).save(path)
        path.write_bytes(path.read_bytes()[:40])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello")


IMAGES = [
    ("16-bit RGB TIFF", "x.tif", "16 bits per channel"),
    ("16-bit RGB PNG", "x.png", "16 bits per channel"),
    ("16-bit grey PNG", "x.png", "16-bit or float"),
    ("float32 RGB TIFF", "x.tif", "a float32 TIFF of shape (8, 8, 3)"),
    ("float32 grey TIFF", "x.tif", "16-bit or float"),
    ("animated GIF", "x.gif", "GIF file of 3 frames"),
    ("multi-page TIFF", "x.tif", "TIFF file of 3 frames"),
    ("greyscale", "x.png", "greyscale image"),
    ("transparent", "x.png", "transparent pixels"),
    ("truncated", "x.png", "corrupt or truncated"),
    ("empty", "x.png", "corrupt or truncated"),
    ("text", "x.jpg", "corrupt or truncated"),
]


@pytest.mark.parametrize("kind, name, fragment", IMAGES, ids=[c[0] for c in IMAGES])
def test_an_image_that_would_decode_wrongly_is_refused_naming_it(tmp_path, kind, name, fragment):
    from mitoseg_tf.data.images import read_image

    path = tmp_path / name
    _write_image(path, kind)
    with pytest.raises(ValueError) as info:
        read_image(str(path))
    assert str(path) in str(info.value) and fragment in str(info.value), info.value


def test_an_image_over_the_pixel_limit_points_to_mitoseg_slide(tmp_path, monkeypatch):
    from mitoseg_tf.data.images import read_image

    Image.new("RGB", (20, 10)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ValueError, match="big.png.*mitoseg slide"):
        read_image(str(tmp_path / "big.png"))


def test_an_exif_orientation_is_applied_as_viewers_show_it(tmp_path):
    from mitoseg_tf.data.images import image_size, read_image

    image = Image.new("RGB", (20, 10), (255, 0, 0))
    exif = image.getexif()
    exif[0x0112] = 6  # stored lying down, shown turned a quarter clockwise
    image.save(tmp_path / "turned.jpg", exif=exif)
    assert read_image(str(tmp_path / "turned.jpg")).shape == (20, 10, 3)
    assert image_size(str(tmp_path / "turned.jpg")) == (20, 10)


# ------------------------------------------------------------------ slides cut short or with a damaged tile

# Each damage as (cut: keep this many bytes, negative: drop this many; garbage: (TIFF page, tile) overwritten).
SLIDES = [
    # (id, compression, cut, garbage, message fragment)
    ("cut mid-tile", "deflate", 5000, None, "truncated: it ends at byte 5,000, but tile 5 (row 1, column 2)"),
    ("cut in the last tile", "deflate", -10, None, "truncated: it ends at byte"),
    ("cut in a directory", "deflate", 300, None, "corrupt or truncated: its TIFF directories are damaged"),
    ("cut in the header", "deflate", 100, None, "corrupt or truncated (100 bytes): it starts as a TIFF"),
    ("cut to 8 bytes", "deflate", 8, None, "the file is corrupt or truncated"),
    ("cut jpeg mid-tile", "jpeg", 3000, None, "the file is truncated: it ends at byte 3,000"),
    ("garbage tile", "deflate", None, (0, 4), "tile 4 (row 1, column 1) of TIFF page 0 (700x600 px), in level 0"),
    ("garbage first tile", "deflate", None, (0, 0), "tile 0 (row 0, column 0) of TIFF page 0"),
    ("garbage low-level tile", "deflate", None, (1, 0), "tile 0 (row 0, column 0) of TIFF page 1 (175x150 px)"),
    ("garbage jpeg tile", "jpeg", None, (0, 4), "tile 4 (row 1, column 1) of TIFF page 0"),
    ("garbage tile, tiffslide", "deflate", None, (0, 4), "tile 4 (row 1, column 1) of TIFF page 0"),
]


def _slide(path, compression="deflate", cut=None, garbage=None):
    """A 700x600 two-level slide of 256-px tiles (9 at level 0), cut short or with one tile's bytes replaced."""
    import tifffile
    from slides.slide_testing import blob_canvas, write_pyramid

    image = blob_canvas(600, 700, [(300, 300), (420, 310)], tissue_boxes=[(50, 50, 650, 550)])
    write_pyramid(str(path), image, downsamples=(1, 4), compression=compression)
    data = bytearray(path.read_bytes())
    if garbage is not None:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[garbage[0]]
            start, size = page.dataoffsets[garbage[1]], page.databytecounts[garbage[1]]
        data[start : start + size] = (bytes(range(256)) * (size // 256 + 1))[:size]
    if cut is not None:
        data = data[:cut]
    path.write_bytes(bytes(data))
    return path


def _damaged(tmp_path, case, monkeypatch):
    name, compression, cut, garbage, fragment = case
    if "tiffslide" in name:
        import mitoseg_tf.slides.reader as reader

        monkeypatch.setattr(reader, "_open_openslide", lambda path: None)  # as on a machine without OpenSlide
    folder = tmp_path / "slides"
    folder.mkdir()
    _slide(folder / "good.svs", compression)
    return _slide(folder / "bad.svs", compression, cut, garbage), fragment


@pytest.mark.parametrize("case", SLIDES, ids=[c[0] for c in SLIDES])
def test_a_damaged_slide_is_one_row_naming_it_and_the_folder_finishes(tmp_path, monkeypatch, capsys, caplog, case):
    from slides.slide_testing import FakeDetector

    from mitoseg_tf.detector import Detector

    bad, fragment = _damaged(tmp_path, case, monkeypatch)
    monkeypatch.setattr(Detector, "load", staticmethod(lambda **options: FakeDetector()))
    out = tmp_path / "out"
    code = main(["slide", str(bad.parent), "--out", str(out), "--tile", "256", "--no-progress"])
    printed = capsys.readouterr()
    assert code == 1, printed  # the CLI's status for a folder run with some files failed
    assert "Traceback" not in printed.err and "tifffile" not in printed.err, printed.err
    assert not [r for r in caplog.records if r.name == "tifffile"]  # its complaints are in the one error, not beside
    line = next(line for line in printed.out.splitlines() if line.startswith("bad.svs:"))
    assert line.startswith("bad.svs: failed: ") and f"{bad}: " in line, line
    assert fragment in line and "copy it again" in line, line
    assert "good.svs: 2 mitoses" in printed.out
    with open(out / "summary.csv", newline="") as fh:
        rows = {r["slide"]: r["status"] for r in csv.DictReader(fh)}
    assert rows["good.svs"] == "ok" and rows["bad.svs"].startswith("failed: ") and fragment in rows["bad.svs"]
    assert (out / "good.svs.geojson").exists() and not (out / "bad.svs.geojson").exists()


@pytest.mark.parametrize("case", SLIDES, ids=[c[0] for c in SLIDES])
def test_predict_slide_refuses_a_damaged_slide_naming_it(tmp_path, monkeypatch, case):
    from slides.slide_testing import FakeDetector

    from mitoseg_tf.slides import predict_slide

    bad, fragment = _damaged(tmp_path, case, monkeypatch)
    with pytest.raises(ValueError) as info:
        predict_slide(FakeDetector(), str(bad), tile=256, progress=False)
    assert str(info.value).startswith(f"{bad}: ") and fragment in str(info.value), info.value
