"""Conflicting distribution / resume options fail with one clear error before any training starts."""

import dataclasses
import json
import os

import keras
import numpy as np
import pytest

from mitoseg_tf.cli.main import main
from mitoseg_tf.training import compile_model, distribute, fit, resume
from mitoseg_tf.training.record import config_differences
from mitoseg_tf.training.run import RunConfig, train_run
from mitoseg_tf.zoo import build

TINY = dict(model="unet", base_filters=4, epochs=1, steps_per_epoch=1, batch_size=2, crop_size=32, num_examples=2)


def _tiny(**overrides):
    return build("unet", **{"base_filters": 4, "depth": 2, "input_shape": (None, None, 3), "dropout": 0.0, **overrides})


def test_multi_worker_without_tf_config_fails_before_the_run_folder_exists(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG") as info:
        train_run(RunConfig(**TINY, strategy="multi_worker", output_dir=str(tmp_path), run_name="r"))
    assert "not set" in str(info.value) and '"cluster"' in str(info.value)  # says what to set
    assert not (tmp_path / "r").exists()


def test_a_new_run_in_a_folder_that_holds_one_is_refused_before_anything_is_written(tmp_path):
    # Its logs would append to the earlier run's, and the earlier metrics.json would sit beside the new config.
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "config.json").write_text('{"model": "unet"}')
    (folder / "history.csv").write_text("epoch,loss\n0,0.5\n")
    with pytest.raises(FileExistsError, match="already holds a run") as info:
        train_run(RunConfig(**TINY, output_dir=str(tmp_path), run_name="r"))
    assert "--resume" in str(info.value) and "--run-name" in str(info.value)
    assert (folder / "config.json").read_text() == '{"model": "unet"}'
    assert (folder / "history.csv").read_text() == "epoch,loss\n0,0.5\n"


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("{not json", "not valid JSON"),
        ('["worker"]', "must be an object with 'cluster' and 'task'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "must be an object with 'cluster' and 'task'"),
        ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}', "task type 'chief'"),
        (
            '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}',
            "task index 1 is not in 0..0",
        ),
        ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "'host:port'"),
        ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "non-empty list"),
        ('{"cluster": {"ps": ["h:1"], "worker": ["h:2"]}, "task": {"type": "worker", "index": 0}}', "'ps' is not used"),
    ],
)
def test_malformed_tf_config_says_what_is_wrong(raw, expected):
    with pytest.raises(ValueError, match="TF_CONFIG") as info:
        distribute.read_tf_config({"TF_CONFIG": raw})
    assert expected in str(info.value)


def test_valid_tf_config_is_accepted():
    raw = '{"cluster": {"chief": ["h:1"], "worker": ["h:2", "h:3"]}, "task": {"type": "worker", "index": 1}}'
    assert distribute.read_tf_config({"TF_CONFIG": raw})["task"] == {"type": "worker", "index": 1}


def test_cli_multi_worker_without_tf_config_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    code = main(["train", "--strategy", "multi_worker", "--output-dir", str(tmp_path), "--run-name", "r"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "TF_CONFIG" in err
    assert not (tmp_path / "r").exists()


def test_unknown_strategy_lists_the_valid_ones(tmp_path, capsys):
    assert main(["train", "--strategy", "tpu", "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'tpu'" in err and "none, mirrored, multi_worker" in err


def test_global_batch_must_split_over_the_replicas():
    class TwoReplicas:  # only the replica count matters to the check
        num_replicas_in_sync = 2

    distribute.check_global_batch(4, TwoReplicas())
    with pytest.raises(ValueError, match="global batch size 5 does not split evenly over 2 replicas"):
        distribute.check_global_batch(5, TwoReplicas())
    distribute.check_global_batch(5, None)


def test_resume_of_a_missing_folder(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_run(RunConfig(**TINY, resume=True, output_dir=str(tmp_path), run_name="nope"))
    assert main(["train", "--resume", "--output-dir", str(tmp_path), "--run-name", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--run-name"):
        train_run(RunConfig(**TINY, resume=True, output_dir=str(tmp_path)))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.json"):
        train_run(RunConfig(**TINY, resume=True, output_dir=str(tmp_path), run_name="empty"))


def test_resume_with_another_model_or_config_names_the_differing_keys(tmp_path, capsys):
    saved = RunConfig(**TINY, output_dir=str(tmp_path), run_name="r")
    os.makedirs(tmp_path / "r")
    with open(tmp_path / "r" / "config.json", "w") as fh:
        json.dump({**dataclasses.asdict(saved), "resolved_precision": "float32", "data_split": None}, fh)
    other = dataclasses.replace(saved, model="mcsa_unet", learning_rate=0.01, resume=True, strategy="mirrored")
    with pytest.raises(ValueError) as info:
        train_run(other)
    message = str(info.value)
    assert "model: run folder has 'unet', requested 'mcsa_unet'" in message
    assert "learning_rate: run folder has 0.001, requested 0.01" in message
    assert "strategy" not in message  # a run may continue on other hardware
    assert not os.path.exists(tmp_path / "r" / "resume")  # nothing was trained
    code = main(["train", "--resume", "--model", "res_unet", "--output-dir", str(tmp_path), "--run-name", "r"])
    err = capsys.readouterr().err
    assert code == 2 and "model: run folder has 'unet', requested 'res_unet'" in err


def test_config_differences_lists_changed_added_and_removed_keys():
    assert config_differences({"a": 1, "b": 2}, {"a": 1, "b": 3, "c": 4}, ignore=("c",)) == [
        "b: run folder has 2, requested 3"
    ]
    assert config_differences({"a": 1}, {}) == ["a: run folder has 1, requested '(absent)'"]


def test_fit_refuses_a_model_built_outside_the_strategy_and_resume_without_a_folder(tmp_path):
    import tensorflow as tf

    model = compile_model(_tiny())
    data = [(np.zeros((2, 16, 16, 3), "float32"), np.zeros((2, 16, 16, 1), "int32"))]
    with pytest.raises(ValueError, match="inside distribute.scope"):
        fit(model, data, epochs=1, strategy=tf.distribute.MirroredStrategy(["/cpu:0"]))
    with pytest.raises(ValueError, match="resume=True needs run_dir"):
        fit(model, data, epochs=1, resume=True)


def test_resume_state_of_another_model_is_refused(tmp_path):
    model = compile_model(_tiny())
    model.optimizer.build(model.trainable_variables)
    resume.save_state(str(tmp_path), model, 1)
    other = compile_model(_tiny(base_filters=8))
    with pytest.raises(ValueError, match="does not match this model's model variables"):
        resume.restore_state(str(tmp_path), other)


def test_resume_state_round_trips_model_and_optimizer_variables(tmp_path):
    model = compile_model(_tiny())
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    for v in model.variables + list(model.optimizer.variables):
        v.assign(rng.normal(size=v.shape).astype(v.dtype) if "float" in v.dtype else np.full(v.shape, 3, v.dtype))
    resume.save_state(str(tmp_path), model, 2, {"ema_in_model": True})
    resume.save_state(str(tmp_path), model, 3, {"ema_in_model": True})
    assert sorted(os.listdir(tmp_path)) == ["state-3.npz", "state.json"]  # the older arrays are gone
    fresh = compile_model(_tiny())
    record = resume.restore_state(str(tmp_path), fresh)
    assert record["completed_epochs"] == 3 and record["ema_in_model"] is True
    for got, want in zip(
        fresh.variables + list(fresh.optimizer.variables), model.variables + list(model.optimizer.variables)
    ):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want))
    assert resume.restore_state(str(tmp_path / "none"), fresh) is None


def test_truncate_epoch_log_drops_the_interrupted_epochs(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("epoch,batch,loss\n0,0,1\n0,1,2\n1,0,3\n1,1,4\n2,0,5\n")
    resume.truncate_epoch_log(str(path), 2)
    assert path.read_text().splitlines() == ["epoch,batch,loss", "0,0,1", "0,1,2", "1,0,3", "1,1,4"]
    resume.truncate_epoch_log(str(path), 0)
    assert path.read_text() == ""


def test_skip_consumed_positions_a_stream_after_the_finished_epochs():
    import tensorflow as tf

    stream = tf.data.Dataset.range(100).batch(2)
    skipped = resume.skip_consumed(stream, completed_epochs=2, steps_per_epoch=3)
    assert next(iter(skipped)).numpy().tolist() == [12, 13]
    assert resume.skip_consumed(stream, 2, None) is stream  # epochs restart the data: nothing to skip
    with pytest.raises(ValueError, match="tf.data.Dataset"):
        resume.skip_consumed([1, 2], 1, 3)
