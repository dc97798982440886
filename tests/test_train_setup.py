"""minivae.train_setup: a resume refuses changed settings, naming each; float16 params are refused up front; the guard's
finiteness test is exact."""

from __future__ import annotations

import json

import numpy
import pytest

from minivae.checkpoint import load_checkpoint, save_checkpoint
from minivae.models import VAE
from minivae.objectives import iwae_objective, vae_objective
from minivae.optim import SGD, Adam
from minivae.train import RunFiles, TrainSettings, fit
from minivae.train_setup import all_finite, data_fingerprint
from minivae.tree import tree_map


def tiny_run(tmp_path, **settings):
    """A 12-pixel Bernoulli VAE trained 2 epochs with a checkpoint: ``(vae, params, x, path)``."""
    rng = numpy.random.default_rng(0)
    vae = VAE(12, [8], 2)
    params, x = vae.init(rng), rng.random((200, 12)).astype(numpy.float32)
    path = tmp_path / "c.npz"
    run = {"epochs": 2, "batch_size": 50, "progress": False, **settings}
    fit(vae_objective(vae), params, x, optimizer=Adam(1e-3), settings=TrainSettings(**run),
        files=RunFiles(checkpoint=path))
    return vae, params, x, path


def changed_data(x):
    y = x.copy()
    y[0, 0] = 1.0 - y[0, 0]
    return y


@pytest.mark.parametrize("change, words", [
    ({"optimizer": Adam(1e-2)}, r"lr 0\.001 -> 0\.01"),
    ({"optimizer": Adam(1e-3, b2=0.99)}, r"b2 0\.999 -> 0\.99"),
    ({"optimizer": Adam(1e-3, eps=1e-6)}, r"eps 1e-08 -> 1e-06"),
    ({"batch_size": 20}, "batch_size 50 -> 20"),
    ({"binarize": "threshold"}, "binarize None -> 'threshold'"),
    ({"beta": 0.5}, "objective 'elbo' -> 'elbo_beta0.5'"),
    ({"iwae": 5}, "objective 'elbo' -> 'iwae_5'"),
    ({"x": lambda x: x[:150]}, "n_train 200 -> 150, data_fingerprint"),
    ({"x": changed_data}, "data_fingerprint '[0-9a-f]{16}' -> '[0-9a-f]{16}'"),
])
def test_a_resume_refuses_each_changed_setting_by_name(tmp_path, change, words):
    vae, params, x, path = tiny_run(tmp_path)
    before = path.read_bytes()
    objective = (iwae_objective(vae, change["iwae"]) if "iwae" in change
                 else vae_objective(vae, change.get("beta", 1.0)))
    run = TrainSettings(epochs=3, batch_size=change.get("batch_size", 50), binarize=change.get("binarize"),
                   progress=False)
    with pytest.raises(ValueError, match=f"resume=.*c.npz was saved by a run with other settings \\(.*{words}"):
        fit(objective, params, change.get("x", lambda x: x)(x), optimizer=change.get("optimizer", Adam(1e-3)),
            settings=run, files=RunFiles(checkpoint=path, resume=path))
    assert path.read_bytes() == before


def test_several_changes_are_named_in_one_sentence_and_the_same_settings_resume(tmp_path):
    vae, params, x, path = tiny_run(tmp_path)
    with pytest.raises(ValueError) as caught:
        fit(vae_objective(vae), params, x, optimizer=Adam(3e-3),
            settings=TrainSettings(epochs=3, batch_size=25, progress=False), files=RunFiles(resume=path))
    message = str(caught.value)
    assert "lr 0.001 -> 0.003, batch_size 50 -> 25)" in message and message.count(". ") == 0
    # the same settings go on (the bit-for-bit resume itself is test_train's)
    done = fit(vae_objective(vae), params, x, optimizer=Adam(1e-3),
               settings=TrainSettings(epochs=3, batch_size=50, progress=False), files=RunFiles(resume=path))
    assert [h["epoch"] for h in done.history] == [1, 2, 3]


def test_an_old_checkpoint_without_settings_is_resumed_with_the_other_checks(tmp_path):
    vae, params, x, path = tiny_run(tmp_path)
    state = load_checkpoint(path)
    rng = numpy.random.default_rng()
    rng.bit_generator.state = state["rng"]
    optimizer = Adam(1e-3)
    optimizer.load_state(state["optimizer"])
    # as written before checkpoints stored settings
    save_checkpoint(path, state["params"], optimizer, 2, rng, state["history"], seed=0)
    assert load_checkpoint(path)["settings"] is None
    done = fit(vae_objective(vae), params, x, optimizer=Adam(1e-2),
               settings=TrainSettings(epochs=3, batch_size=50, progress=False), files=RunFiles(resume=path))
    assert len(done.history) == 3
    with pytest.raises(ValueError, match="saved with Adam, but fit got SGD"):
        fit(vae_objective(vae), params, x, optimizer=SGD(1e-2), settings=TrainSettings(epochs=3, progress=False),
            files=RunFiles(resume=path))


def test_metrics_json_records_the_settings_every_epoch_ran_with(tmp_path):
    rng = numpy.random.default_rng(0)
    vae = VAE(12, [8], 2)
    x = rng.random((100, 12)).astype(numpy.float32)
    fit(vae_objective(vae), vae.init(rng), x, optimizer=Adam(2e-3, b1=0.8),
        settings=TrainSettings(epochs=1, batch_size=40, progress=False), files=RunFiles(metrics=tmp_path / "m.json"))
    body = json.loads((tmp_path / "m.json").read_text())
    assert {k: body[k] for k in ("optimizer", "lr", "b1", "b2", "eps", "batch_size", "n_train", "binarize")} == {
        "optimizer": "Adam", "lr": 2e-3, "b1": 0.8, "b2": 0.999, "eps": 1e-8, "batch_size": 40, "n_train": 100,
        "binarize": None}
    assert body["data_fingerprint"] == data_fingerprint(x)


def test_the_fingerprint_sees_shape_dtype_and_values_and_is_cheap():
    x = numpy.random.default_rng(0).random((60000, 784)).astype(numpy.float32)
    prints = {data_fingerprint(x), data_fingerprint(x[:-1]), data_fingerprint(x.astype(numpy.float64)),
              data_fingerprint(changed_data(x)), data_fingerprint(x.reshape(784, 60000))}
    assert len(prints) == 5 and data_fingerprint(x.copy()) == data_fingerprint(x)
    assert data_fingerprint(lambda epoch: x) is None


def test_float16_params_are_refused_up_front_naming_adams_eps():
    rng = numpy.random.default_rng(0)
    vae = VAE(12, [8], 2)
    params = tree_map(lambda a: a.astype(numpy.float16), vae.init(rng))
    x = rng.random((50, 12)).astype(numpy.float16)
    with pytest.raises(ValueError, match=r"params are float16, in which Adam's eps \(1e-8\) .* train in float32"):
        fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=1, progress=False))


@pytest.mark.parametrize("dtype", [numpy.float32, numpy.float64])
def test_all_finite_is_exact_at_nan_inf_and_at_squares_too_large_to_add(dtype):
    rng = numpy.random.default_rng(0)
    nest = {"w": rng.standard_normal((30, 7)).astype(dtype), "b": [numpy.zeros(0, dtype), rng.random(5).astype(dtype)]}
    assert all_finite(nest)
    big = numpy.finfo(dtype).max / 2
    # finite entries whose squares overflow: the sum of squares is inf, and the exact test says finite
    assert all_finite({"w": numpy.full((4, 3), big, dtype), "t": nest["w"].T})
    for bad in (numpy.nan, numpy.inf, -numpy.inf):
        for where in ((0, 0), (29, 6), (13, 2)):
            broken = tree_map(lambda a: a.copy(), nest)
            broken["w"][where] = bad
            assert not all_finite(broken), (bad, where)
            # a NaN next to values whose squares overflow, and in a transposed (non-contiguous) view
            broken["w"][0, 1] = big
            assert not all_finite({"t": broken["w"].T})
