"""minivae.train: learning on a toy, the NaN guard, bit-identical resume, atomic checkpoints, reproducibility,
objective schedules (KL warm-up)."""

from __future__ import annotations

import json

import autograd.numpy as anp
import numpy
import pytest

from minivae import checkpoint, objectives
from minivae.data import two_gaussians
from minivae.models import VAE
from minivae.objectives import Objective, kl_warmup, vae_objective
from minivae.optim import SGD, Adam
from minivae.train import NonFiniteLossError, evaluate, fit, load_checkpoint
from minivae.tree import tree_leaves

WALL_CLOCK = {"seconds", "examples_per_second", "eval_seconds"}


def tiny_bernoulli(seed: int = 0):
    """A 12-pixel Bernoulli VAE and grey-level data in [0, 1]: small enough for many runs per test."""
    rng = numpy.random.default_rng(seed)
    vae = VAE(12, [8], 2)
    x = rng.random((230, 12)).astype(numpy.float32)
    return vae, vae.init(rng), x[:200], x[200:]


def assert_same_tree(a, b) -> None:
    leaves_a, leaves_b = tree_leaves(a), tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for u, v in zip(leaves_a, leaves_b):
        assert type(u) is type(v) and getattr(u, "dtype", None) == getattr(v, "dtype", None)
        numpy.testing.assert_array_equal(u, v)


def without_wall_clock(history: list) -> list:
    return [{k: v for k, v in h.items() if k not in WALL_CLOCK} for h in history]


def test_loss_falls_on_the_two_gaussians_toy():
    x, _ = two_gaussians(600, numpy.random.default_rng(0))
    vae = VAE(2, [16], 1, likelihood="gaussian")
    params = vae.init(numpy.random.default_rng(1))
    before = evaluate(vae_objective(vae), params, x[500:], numpy.random.default_rng(2))
    result = fit(vae_objective(vae), params, x[:500], x_test=x[500:], optimizer=Adam(1e-2), epochs=8,
                 batch_size=50, seed=0, progress=False)
    train_elbo = [h["train_elbo"] for h in result.history]
    test_elbo = [h["test_elbo"] for h in result.history]
    per_example = vae.elbo(result.params, x[500:], numpy.random.default_rng(3).standard_normal((100, 1)))
    standard_error = float(numpy.std(per_example) / numpy.sqrt(100))
    assert len(result.history) == 8 and all(numpy.isfinite(train_elbo + test_elbo))
    # the test ELBO rises from its value at the initial parameters by far more than 4 standard errors
    assert test_elbo[-1] > before + max(1.0, 4 * standard_error)
    assert train_elbo[-1] > train_elbo[0] + 0.5


def counting(objective: Objective, poison_call: int | None = None) -> tuple[Objective, list]:
    """The objective, counting its calls; call number ``poison_call`` returns NaN."""
    calls = []

    def loss(p, x, eps):
        calls.append(1)
        value = objective.loss(p, x, eps)
        return value * numpy.nan if len(calls) == poison_call else value

    return Objective(loss, objective.noise_shape, objective.bound, objective.likelihood, objective.x_dim), calls


def test_nan_guard_names_epoch_and_step_and_keeps_last_good_params():
    vae, params, x, _ = tiny_bernoulli()
    # 200 rows, batch 100: two steps per epoch, so the third call is epoch 2, step 1
    poisoned, _ = counting(vae_objective(vae), poison_call=3)
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 1") as err:
        fit(poisoned, params, x, epochs=3, seed=5, progress=False)
    assert (err.value.epoch, err.value.step) == (2, 1)
    # the last good parameters are exactly those after epoch 1
    reference = fit(vae_objective(vae), params, x, epochs=1, seed=5, progress=False)
    assert_same_tree(err.value.params, reference.params)


def test_nan_guard_catches_a_non_finite_gradient_under_a_finite_loss():
    w = numpy.ones((3, 1), numpy.float32)

    def loss(p, x, eps):
        # sqrt(w − w) = 0 adds nothing to the loss, but its gradient is ∞ · 0 = NaN
        return anp.mean((x @ p["w"]) ** 2) + anp.sum(anp.sqrt(p["w"] - p["w"]))

    x = numpy.random.default_rng(0).random((10, 3)).astype(numpy.float32)
    with pytest.raises(NonFiniteLossError, match="gradient.*epoch 1, step 1") as err, \
            numpy.errstate(divide="ignore", invalid="ignore"):
        fit(Objective(loss, None, "neg_loss"), {"w": w}, x, epochs=1, batch_size=10, progress=False)
    numpy.testing.assert_array_equal(err.value.params["w"], w)


@pytest.mark.parametrize("bad, words", [(numpy.nan, "NaN or infinite"), (1.5, "Bernoulli")])
def test_bad_data_is_refused_before_any_step(bad, words):
    vae, params, x, _ = tiny_bernoulli()
    x = x.copy()
    x[7, 3] = bad
    counted, calls = counting(vae_objective(vae))
    with pytest.raises(ValueError, match=f"x_train.*{words}|{words}"):
        fit(counted, params, x, epochs=1, progress=False)
    assert calls == []


def test_wrong_width_is_refused():
    vae, params, x, _ = tiny_bernoulli()
    with pytest.raises(ValueError, match="x_test has 11 values per row but the model expects 12"):
        fit(vae_objective(vae), params, x, x_test=x[:, :11], epochs=1, progress=False)


@pytest.mark.parametrize("make_optimizer", [lambda: Adam(1e-2), lambda: SGD(0.05, momentum=0.9)],
                         ids=["adam", "sgd_momentum"])
def test_resume_is_bit_identical(tmp_path, make_optimizer):
    vae, params, x, x_test = tiny_bernoulli()
    kw = {"x_test": x_test, "batch_size": 64, "seed": 11, "progress": False, "binarize": "stochastic"}
    straight = fit(vae_objective(vae), params, x, optimizer=make_optimizer(), epochs=4, **kw)
    path = tmp_path / "run" / "checkpoint.npz"
    first = fit(vae_objective(vae), params, x, optimizer=make_optimizer(), epochs=2, checkpoint=path, **kw)
    assert load_checkpoint(path)["epoch"] == 2
    resumed = fit(vae_objective(vae), params, x, optimizer=make_optimizer(), epochs=4, resume=path, **kw)
    assert_same_tree(resumed.params, straight.params)
    assert_same_tree(resumed.optimizer.state(), straight.optimizer.state())
    assert without_wall_clock(resumed.history) == without_wall_clock(straight.history)
    assert without_wall_clock(first.history) == without_wall_clock(straight.history[:2])


def test_checkpoint_contents_and_no_pickles(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    path = tmp_path / "c.npz"
    result = fit(vae_objective(vae), params, x, epochs=1, seed=2, progress=False, checkpoint=path)
    with numpy.load(path, allow_pickle=False) as npz:
        assert all(npz[key].dtype != object for key in npz.files)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and state["optimizer_class"] == "Adam" and state["optimizer"]["t"] == 2
    assert_same_tree(state["params"], result.params)
    assert state["rng"]["bit_generator"] == "PCG64"


def test_a_crash_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    vae, params, x, _ = tiny_bernoulli()
    path = tmp_path / "c.npz"
    fit(vae_objective(vae), params, x, epochs=1, seed=3, progress=False, checkpoint=path)
    before = path.read_bytes()

    def dying_writer(f, arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt("killed while saving")

    monkeypatch.setattr(checkpoint, "_write_npz", dying_writer)
    with pytest.raises(KeyboardInterrupt):
        fit(vae_objective(vae), params, x, epochs=2, seed=3, progress=False, checkpoint=path, resume=path)
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.npz"]


def test_resume_refuses_a_different_model_or_optimizer(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    path = tmp_path / "c.npz"
    fit(vae_objective(vae), params, x, epochs=1, progress=False, checkpoint=path)
    other = VAE(12, [9], 2)
    with pytest.raises(ValueError, match="different model"):
        fit(vae_objective(other), other.init(numpy.random.default_rng(0)), x, epochs=2, progress=False,
            resume=path)
    with pytest.raises(ValueError, match="saved with Adam"):
        fit(vae_objective(vae), params, x, optimizer=SGD(0.1), epochs=2, progress=False, resume=path)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        load_checkpoint(tmp_path / "junk.npz")


def test_same_seed_same_numbers_and_metrics_json(tmp_path):
    vae, params, x, x_test = tiny_bernoulli()
    runs = [fit(vae_objective(vae), params, x, x_test=x_test, epochs=2, seed=7, progress=False,
                metrics_path=tmp_path / f"m{i}.json") for i in range(2)]
    assert without_wall_clock(runs[0].history) == without_wall_clock(runs[1].history)
    assert_same_tree(runs[0].params, runs[1].params)
    other = fit(vae_objective(vae), params, x, x_test=x_test, epochs=2, seed=8, progress=False)
    assert other.history[-1]["train_elbo"] != runs[0].history[-1]["train_elbo"]
    metrics = [json.loads((tmp_path / f"m{i}.json").read_text()) for i in range(2)]
    assert metrics[0]["objective"] == "elbo" and metrics[0]["n_train"] == 200 and metrics[0]["seed"] == 7
    assert without_wall_clock(metrics[0]["history"]) == without_wall_clock(metrics[1]["history"])
    for record in metrics[0]["history"]:
        assert {"epoch", "train_elbo", "test_elbo", "seconds", "examples_per_second"} <= set(record)
        assert record["examples_per_second"] > 0


def test_fit_leaves_the_callers_params_alone():
    vae, params, x, _ = tiny_bernoulli()
    copy = [numpy.array(leaf) for leaf in tree_leaves(params)]
    fit(vae_objective(vae), params, x, epochs=1, progress=False)
    for before, after in zip(copy, tree_leaves(params)):
        numpy.testing.assert_array_equal(before, after)


def test_progress_bar_shows_the_running_loss(capsys):
    vae, params, x, _ = tiny_bernoulli()
    fit(vae_objective(vae), params, x, epochs=1, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err
    fit(vae_objective(vae), params, x, epochs=1, progress=False)
    assert capsys.readouterr().err == ""


def test_bad_epochs_and_batch_size():
    vae, params, x, _ = tiny_bernoulli()
    for kw in ({"epochs": 0}, {"batch_size": 0}, {"batch_size": 2.5}):
        with pytest.raises(ValueError, match="positive integer"):
            fit(vae_objective(vae), params, x, progress=False, **kw)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        objectives.iwae_objective(vae, 0)


def test_threshold_binarization_equals_binarizing_first():
    vae, params, x, x_test = tiny_bernoulli()
    inside = fit(vae_objective(vae), params, x, x_test=x_test, epochs=2, seed=4, progress=False,
                 binarize="threshold")
    first = fit(vae_objective(vae), params, (x > 0.5).astype(numpy.float32),
                x_test=(x_test > 0.5).astype(numpy.float32), epochs=2, seed=4, progress=False)
    assert_same_tree(inside.params, first.params)
    assert without_wall_clock(inside.history) == without_wall_clock(first.history)
    with pytest.raises(ValueError, match="binarize"):
        fit(vae_objective(vae), params, x, progress=False, binarize="otsu")


# ----------------------------------------------------------------------------------- objective schedules


def tagged(objective: Objective, tag: int, calls: list) -> Objective:
    """The objective, appending ``tag`` to ``calls`` every time its loss is evaluated."""
    def loss(p, x, eps):
        calls.append(tag)
        return objective.loss(p, x, eps)

    return Objective(loss, objective.noise_shape, f"{objective.bound}_e{tag}", objective.likelihood,
                     objective.x_dim)


def test_a_schedule_is_called_per_epoch_and_its_objective_used():
    vae, params, x, x_test = tiny_bernoulli()
    asked, calls = [], []

    def schedule(epoch):
        asked.append(epoch)
        return tagged(vae_objective(vae), epoch, calls)

    result = fit(schedule, params, x, x_test=x_test, epochs=3, seed=1, progress=False)
    # schedule(3) once up front (the final objective), then once per epoch, in order
    assert asked == [3, 1, 2, 3]
    # 200 rows in batches of 100: two training steps with epoch e's loss, then one test batch with the final one
    assert calls == [1, 1, 3, 2, 2, 3, 3, 3, 3]
    assert [sorted(k for k in h if k.startswith(("train_", "test_"))) for h in result.history] == [
        ["test_elbo_e3", f"train_elbo_e{e}"] for e in (1, 2, 3)]
    with pytest.raises(ValueError, match="schedule returned None for epoch 3"):
        fit(lambda epoch: None, params, x, epochs=3, progress=False)


def test_kl_warmup_steps_beta_from_beta_start_to_one():
    vae = VAE(12, [8], 2)
    schedule = kl_warmup(vae, 4)
    # beta_e = 0.1 + 0.9 (e - 1) / 4: 0.1, 0.325, 0.55, 0.775, then exactly 1 (the plain ELBO)
    assert [schedule(e).bound for e in range(1, 8)] == [
        "elbo_beta0.1", "elbo_beta0.325", "elbo_beta0.55", "elbo_beta0.775", "elbo", "elbo", "elbo"]
    assert kl_warmup(vae, 2, beta_start=0.0)(2).bound == "elbo_beta0.5"
    betas = []
    kl_warmup(vae, 3, 0.4, objective=lambda v, beta: betas.append(beta) or vae_objective(v, beta))(2)
    assert betas == [pytest.approx(0.6, abs=1e-15)]
    for kw, words in (({"warmup_epochs": 0}, "warmup_epochs"), ({"warmup_epochs": 2, "beta_start": 1.5},
                                                                  "beta_start")):
        with pytest.raises(ValueError, match=words):
            kl_warmup(vae, **kw)


def test_kl_warmup_equals_one_fit_per_beta_chained_by_resume(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    kw = {"batch_size": 64, "seed": 3, "progress": False}
    warm = fit(kl_warmup(vae, 2), params, x, epochs=3, **kw)
    # the same run by hand: epoch 1 at beta 0.1, epoch 2 at 0.55, epoch 3 at 1, each resuming the last
    path = tmp_path / "c.npz"
    for epoch, beta in ((1, 0.1), (2, 0.55), (3, 1.0)):
        by_hand = fit(vae_objective(vae, beta), params, x, epochs=epoch, checkpoint=path,
                      resume=path if epoch > 1 else None, **kw)
    assert_same_tree(warm.params, by_hand.params)
    assert without_wall_clock(warm.history) == without_wall_clock(by_hand.history)
    assert [next(k for k in h if k.startswith("train_")) for h in warm.history] == [
        "train_elbo_beta0.1", "train_elbo_beta0.55", "train_elbo"]


def test_resume_with_a_schedule_is_bit_identical(tmp_path):
    vae, params, x, x_test = tiny_bernoulli()
    kw = {"x_test": x_test, "batch_size": 64, "seed": 13, "progress": False}
    straight = fit(kl_warmup(vae, 3), params, x, optimizer=Adam(1e-2), epochs=5, **kw)
    path = tmp_path / "c.npz"

    def crash_after_epoch_2(epoch, record):
        if epoch == 2:
            raise KeyboardInterrupt("killed after epoch 2")

    with pytest.raises(KeyboardInterrupt):
        fit(kl_warmup(vae, 3), params, x, optimizer=Adam(1e-2), epochs=5, checkpoint=path,
            on_epoch=crash_after_epoch_2, **kw)
    assert load_checkpoint(path)["epoch"] == 2
    resumed = fit(kl_warmup(vae, 3), params, x, optimizer=Adam(1e-2), epochs=5, resume=path,
                  metrics_path=tmp_path / "m.json", **kw)
    assert_same_tree(resumed.params, straight.params)
    assert without_wall_clock(resumed.history) == without_wall_clock(straight.history)
    # every epoch's test bound is the final objective's: the ELBO at beta = 1
    assert all("test_elbo" in h for h in straight.history)
    assert json.loads((tmp_path / "m.json").read_text())["objective"] == "elbo"
