"""Weights shipped with the package: float16 files, manifest, ``build(name, weights=tag)``."""

import json
import os

import numpy as np
import pytest

from mitoseg_tf.zoo import build, pretrained


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A weights folder holding tiny U-Net weights under the tag "demo"."""
    model = build("unet", base_filters=4, input_shape=(None, None, 3))
    pretrained.save_float16_weights(model, str(tmp_path / "unet_demo.weights.h5"))
    manifest = {"unet/demo": {"file": "unet_demo.weights.h5", "arguments": {"base_filters": 4}, "threshold": 0.5}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(pretrained, "WEIGHTS_DIR", str(tmp_path))
    return model, tmp_path


def test_float16_file_is_half_the_size_and_loads_back(shipped, tmp_path):
    import h5py

    model, folder = shipped
    model.save_weights(str(tmp_path / "f32.weights.h5"))
    with h5py.File(folder / "unet_demo.weights.h5") as fh:
        kinds = []
        fh.visititems(lambda n, o: kinds.append(o.dtype) if isinstance(o, h5py.Dataset) and o.dtype.kind == "f" else None)
    assert kinds and all(k == np.float16 for k in kinds)
    assert os.path.getsize(folder / "unet_demo.weights.h5") < 0.7 * os.path.getsize(tmp_path / "f32.weights.h5")
    loaded = build("unet", weights="demo", input_shape=(32, 32, 3))
    x = np.random.default_rng(0).uniform(0, 255, (1, 32, 32, 3)).astype("float32")
    expected = model.predict_on_batch(x)
    got = loaded.predict_on_batch(x)
    assert all(v.dtype == "float32" for v in loaded.weights)
    # float16 storage rounds each weight to 11 significant bits; outputs agree closely, not bitwise
    np.testing.assert_allclose(got, expected, atol=2e-2)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a).astype(np.float16).astype(np.float32))


def test_unknown_tag_and_architecture_changes_are_refused(shipped):
    with pytest.raises(ValueError, match=r"No shipped weights 'nope' for model 'unet'; shipped \(model/weights\): unet/demo"):
        build("unet", weights="nope")
    with pytest.raises(ValueError, match=r"base_filters would change the network"):
        build("unet", weights="demo", base_filters=8)
    with pytest.raises(FileNotFoundError, match="not found"):
        build("unet", weights="/no/such.weights.h5")
