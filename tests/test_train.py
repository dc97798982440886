"""minivae.train: learning on a toy, the NaN guard, bit-identical resume, atomic checkpoints, reproducibility,
objective schedules (KL warm-up)."""

from __future__ import annotations

import dataclasses
import json

import autograd.numpy as anp
import numpy
import pytest

from minivae.checkpoint import load_checkpoint, save_checkpoint
from minivae.data import two_gaussians
from minivae.fast.adam import Adam as FastAdam
from minivae.grad import value_and_grad
from minivae.m2 import M2
from minivae.models import VAE
from minivae.objectives import Objective, kl_warmup, m2_objective, vae_objective
from minivae.optim import SGD, Adam
from minivae.train import NonFiniteLossError, RunFiles, TrainSettings, evaluate, fit, train_epoch
from minivae.tree import tree_leaves, tree_map, tree_unflatten

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
    result = fit(vae_objective(vae), params, x[:500], x_test=x[500:], optimizer=Adam(1e-2),
                 settings=TrainSettings(epochs=8, batch_size=50, seed=0, progress=False))
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

    return dataclasses.replace(objective, loss=loss), calls


def test_nan_guard_names_epoch_and_step_and_keeps_last_good_params():
    vae, params, x, _ = tiny_bernoulli()
    # 200 rows in one batch: one step per epoch, so the third call is epoch 3, step 1
    poisoned, _ = counting(vae_objective(vae), poison_call=3)
    with pytest.raises(NonFiniteLossError, match="loss became non-finite.*epoch 3, step 1") as err:
        fit(poisoned, params, x, settings=TrainSettings(epochs=4, batch_size=200, seed=5, progress=False))
    assert (err.value.epoch, err.value.step) == (3, 1)
    # the parameters that gave the NaN (after epoch 2) are not handed back, but those before the last update,
    # whose loss and gradient were finite: exactly those after epoch 1
    reference = fit(vae_objective(vae), params, x,
                    settings=TrainSettings(epochs=1, batch_size=200, seed=5, progress=False))
    assert_same_tree(err.value.params, reference.params)


def test_the_last_good_params_cross_epoch_boundaries():
    vae, params, x, _ = tiny_bernoulli()
    # 200 rows, batch 100: the third call is epoch 2, step 1, so the last good parameters are those after one
    # step, the input of epoch 1's second step; that step by hand:
    poisoned, _ = counting(vae_objective(vae), poison_call=3)
    with pytest.raises(NonFiniteLossError, match="epoch 2, step 1") as err:
        fit(poisoned, params, x, optimizer=Adam(1e-2), settings=TrainSettings(epochs=3, seed=5, progress=False))
    rng = numpy.random.default_rng(5)
    order = rng.permutation(200)
    eps = rng.standard_normal((100, 2)).astype(numpy.float32)
    _, grads = value_and_grad(vae_objective(vae).loss)(params, x[order[:100]], eps)
    # fit runs the fast Adam (the same update in Kingma & Ba's Section 2 order)
    assert_same_tree(err.value.params, FastAdam(1e-2).step(params, grads))


def test_nan_guard_catches_a_non_finite_gradient_under_a_finite_loss():
    w = numpy.ones((3, 1), numpy.float32)

    def loss(p, x, eps):
        # sqrt(w − w) = 0 adds nothing to the loss, but its gradient is ∞ · 0 = NaN
        return anp.mean((x @ p["w"]) ** 2) + anp.sum(anp.sqrt(p["w"] - p["w"]))

    x = numpy.random.default_rng(0).random((10, 3)).astype(numpy.float32)
    with pytest.raises(NonFiniteLossError, match="gradient.*epoch 1, step 1") as err, \
            numpy.errstate(divide="ignore", invalid="ignore"):
        fit(Objective(loss, None, "neg_loss"), {"w": w}, x,
            settings=TrainSettings(epochs=1, batch_size=10, progress=False))
    numpy.testing.assert_array_equal(err.value.params["w"], w)


def marked_row_problem(poisoned: str) -> tuple:
    """``(x, params, clean, marked)``: 100 rows of which row 37 is marked (x = 5), params ``{"w", "u"}``, a linear
    least-squares loss in w, and the same loss whose gradient is NaN (under a finite loss) in every entry of
    ``p[poisoned]`` for a batch holding the marked row; u plays no other part in either loss."""
    rng = numpy.random.default_rng(0)
    x, w = rng.random((100, 3)).astype(numpy.float32), rng.standard_normal((3, 2)).astype(numpy.float32)
    x[37, 0] = 5.0

    def clean(p, x, eps):
        return anp.mean((x @ p["w"]) ** 2) + 0.0 * anp.sum(p["u"])

    def marked(p, x, eps):
        # sqrt(a·0 + 0) adds 0 to the loss, but its gradient ∞ · 0 is NaN
        flag = float(numpy.max(x[:, 0]) < 4.0)
        return anp.mean((x @ p["w"]) ** 2) + anp.sum(anp.sqrt(p[poisoned] * 0.0 + flag))

    params = {"w": w, "u": numpy.zeros(2, numpy.float32)}
    return x, params, Objective(clean, None, "neg_loss"), Objective(marked, None, "neg_loss")


@pytest.mark.parametrize("poisoned", ["w", "u"])
def test_the_guard_checked_once_per_epoch_stops_where_the_guard_at_every_step_stops(monkeypatch, poisoned):
    # fit checks the fast Adam's θ once per epoch and, when that finds a NaN, runs the epoch again with the guard
    # at every step: the error must be the one the guard at every step gives (epoch, step, last good θ, state).
    # Epoch 1 is clean; from epoch 2 on the batch holding row 37 (marked by x = 5) has a NaN gradient. A NaN in
    # w makes the next loss NaN (found at that step); a NaN in u never reaches the loss (found at the epoch's end).
    x, start, clean, marked = marked_row_problem(poisoned)
    schedule = lambda epoch: clean if epoch == 1 else marked  # noqa: E731
    optimizer, guards = Adam(1e-2), []

    def spy(*args, guard_every_step=True, **kwargs):
        guards.append(guard_every_step)
        return train_epoch(*args, guard_every_step=guard_every_step, **kwargs)

    monkeypatch.setattr("minivae.train.train_epoch", spy)
    with pytest.raises(NonFiniteLossError) as err, numpy.errstate(divide="ignore", invalid="ignore"):
        fit(schedule, start, x, optimizer=optimizer,
            settings=TrainSettings(epochs=3, batch_size=10, seed=4, progress=False))
    # the reference: train_epoch with its guard at every step, the fast Adam, fit's stream
    stream, reference, params = numpy.random.default_rng(4), FastAdam(1e-2), start
    params, _ = train_epoch(clean, params, x, reference, stream, 10)
    with pytest.raises(NonFiniteLossError) as expected, numpy.errstate(divide="ignore", invalid="ignore"):
        train_epoch(marked, params, x, reference, stream, 10)
    # not vacuous: the failure is in the middle of epoch 2, after good steps of that epoch
    assert err.value.what == "gradient" and (err.value.epoch, err.value.step) == (2, expected.value.step)
    assert 1 < err.value.step < 10
    # epoch 1 checked once; epoch 2 checked once, then run again with the guard at every step
    assert guards == [False, False, True]
    assert_same_tree(err.value.params, expected.value.params)
    # the optimizer handed back holds the state of the last good step, not that of the NaN step
    state, want = optimizer.state(), reference.state()
    assert state["t"] == want["t"] == 10 + err.value.step - 1
    assert_same_tree((state["m"], state["v"]), (want["m"], want["v"]))


def test_an_epoch_run_again_that_fails_at_its_first_step_hands_back_the_params_before_the_last_good_step():
    # one step per epoch: epochs 1 and 2 are clean, epoch 3's only batch has a NaN gradient, so the last params
    # whose gradient was finite are those after epoch 1 (epoch 2's step was taken from them). The run again must
    # start from epoch 3's start, including which θ came before the last step.
    x, start, clean, marked = marked_row_problem("w")
    with pytest.raises(NonFiniteLossError, match="gradient.*epoch 3, step 1") as err, \
            numpy.errstate(divide="ignore", invalid="ignore"):
        fit(lambda epoch: clean if epoch <= 2 else marked, start, x, optimizer=Adam(1e-2),
            settings=TrainSettings(epochs=3, batch_size=100, seed=4, progress=False))
    after_epoch_1 = fit(clean, start, x, optimizer=Adam(1e-2),
                        settings=TrainSettings(epochs=1, batch_size=100, seed=4, progress=False))
    assert_same_tree(err.value.params, after_epoch_1.params)


@pytest.mark.parametrize("bad, words", [(numpy.nan, "NaN or infinite"), (1.5, "Bernoulli")])
def test_bad_data_is_refused_before_any_step(bad, words):
    vae, params, x, _ = tiny_bernoulli()
    x = x.copy()
    x[7, 3] = bad
    counted, calls = counting(vae_objective(vae))
    with pytest.raises(ValueError, match=f"x_train.*{words}|{words}"):
        fit(counted, params, x, settings=TrainSettings(epochs=1, progress=False))
    assert calls == []


def test_wrong_width_is_refused():
    vae, params, x, _ = tiny_bernoulli()
    with pytest.raises(ValueError, match="x_test has 11 values per row but the model expects 12"):
        fit(vae_objective(vae), params, x, x_test=x[:, :11], settings=TrainSettings(epochs=1, progress=False))


@pytest.mark.parametrize("make_optimizer", [lambda: Adam(1e-2), lambda: SGD(0.05, momentum=0.9)],
                         ids=["adam", "sgd_momentum"])
def test_resume_is_bit_identical(tmp_path, make_optimizer):
    vae, params, x, x_test = tiny_bernoulli()
    run = TrainSettings(epochs=4, batch_size=64, seed=11, progress=False, binarize="stochastic")
    straight = fit(vae_objective(vae), params, x, x_test=x_test, optimizer=make_optimizer(), settings=run)
    path = tmp_path / "run" / "checkpoint.npz"
    first = fit(vae_objective(vae), params, x, x_test=x_test, optimizer=make_optimizer(),
                settings=dataclasses.replace(run, epochs=2), files=RunFiles(checkpoint=path))
    assert load_checkpoint(path)["epoch"] == 2
    resumed = fit(vae_objective(vae), params, x, x_test=x_test, optimizer=make_optimizer(), settings=run,
                  files=RunFiles(resume=path))
    assert_same_tree(resumed.params, straight.params)
    assert_same_tree(resumed.optimizer.state(), straight.optimizer.state())
    assert without_wall_clock(resumed.history) == without_wall_clock(straight.history)
    assert without_wall_clock(first.history) == without_wall_clock(straight.history[:2])


def test_resume_refuses_a_different_model_or_optimizer(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    path = tmp_path / "c.npz"
    fit(vae_objective(vae), params, x,
        settings=TrainSettings(epochs=1, progress=False), files=RunFiles(checkpoint=path))
    other = VAE(12, [9], 2)
    with pytest.raises(ValueError, match="different model"):
        fit(vae_objective(other), other.init(numpy.random.default_rng(0)), x,
            settings=TrainSettings(epochs=2, progress=False), files=RunFiles(resume=path))
    with pytest.raises(ValueError, match="saved with Adam"):
        fit(vae_objective(vae), params, x, optimizer=SGD(0.1), settings=TrainSettings(epochs=2, progress=False),
            files=RunFiles(resume=path))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.npz"):
        fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=2, progress=False),
            files=RunFiles(resume=tmp_path / "junk.npz"))


def test_same_seed_same_numbers_and_metrics_json(tmp_path):
    vae, params, x, x_test = tiny_bernoulli()
    runs = [fit(vae_objective(vae), params, x, x_test=x_test, settings=TrainSettings(epochs=2, seed=7, progress=False),
                files=RunFiles(metrics=tmp_path / f"m{i}.json")) for i in range(2)]
    assert without_wall_clock(runs[0].history) == without_wall_clock(runs[1].history)
    assert_same_tree(runs[0].params, runs[1].params)
    other = fit(vae_objective(vae), params, x, x_test=x_test, settings=TrainSettings(epochs=2, seed=8, progress=False))
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
    fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=1, progress=False))
    for before, after in zip(copy, tree_leaves(params)):
        numpy.testing.assert_array_equal(before, after)


def test_a_fit_result_is_not_changed_by_the_next_fit_with_the_same_optimizer():
    # no array fit hands out is changed later: a snapshot (the params of an earlier epoch, a moving average's
    # start) stays what it was, whichever Adam runs inside
    vae, params, x, _ = tiny_bernoulli()
    optimizer = Adam(1e-2)
    first = fit(vae_objective(vae), params, x, optimizer=optimizer, settings=TrainSettings(epochs=1, progress=False))
    copy = [numpy.array(leaf) for leaf in tree_leaves(first.params)]
    second = fit(vae_objective(vae), first.params, x, optimizer=optimizer,
                 settings=TrainSettings(epochs=1, progress=False))
    for before, after in zip(copy, tree_leaves(first.params)):
        numpy.testing.assert_array_equal(before, after)
    assert any(not numpy.array_equal(a, b) for a, b in zip(copy, tree_leaves(second.params)))


def test_fit_runs_the_lessons_adam_as_the_fast_adam_with_the_same_numbers_and_state():
    vae, params, x, x_test = tiny_bernoulli()
    run = TrainSettings(epochs=2, batch_size=64, seed=3, progress=False)
    lesson, fast = Adam(1e-2), FastAdam(1e-2)
    a = fit(vae_objective(vae), params, x, x_test=x_test, optimizer=lesson, settings=run)
    b = fit(vae_objective(vae), params, x, x_test=x_test, optimizer=fast, settings=run)
    assert a.optimizer is lesson and b.optimizer is fast
    assert_same_tree(a.params, b.params)
    assert without_wall_clock(a.history) == without_wall_clock(b.history)
    # the caller's lesson Adam holds the state of the steps fit took: t, m and v, bit for bit
    assert_same_tree(lesson.state(), fast.state())
    assert lesson.t == 2 * 4


def test_rows_and_on_epoch_per_epoch():
    vae, params, x, _ = tiny_bernoulli()
    run = TrainSettings(epochs=3, batch_size=64, seed=2, progress=False)
    asked, seen = [], []

    def rows(epoch):
        asked.append(epoch)
        return x

    def on_epoch(epoch, params, record):
        seen.append((epoch, params, record))

    by_function = fit(vae_objective(vae), params, rows, settings=run, on_epoch=on_epoch)
    fixed = fit(vae_objective(vae), params, x, settings=run)
    # a function epoch -> rows that gives the same rows trains exactly as the rows themselves
    assert asked == [1, 2, 3]
    assert_same_tree(by_function.params, fixed.params)
    assert [e for e, _, _ in seen] == [1, 2, 3] and [r for _, _, r in seen] == by_function.history
    # on_epoch gets each epoch's params as host arrays of its own: the last ones are the result
    assert_same_tree(seen[-1][1], by_function.params)
    assert seen[-1][1]["encoder"] is not by_function.params["encoder"]
    with pytest.raises(ValueError, match="x_train has 11 values per row but the model expects 12"):
        fit(vae_objective(vae), params, lambda epoch: x[:, :11], settings=run)


def test_progress_bar_shows_the_running_loss(capsys):
    vae, params, x, _ = tiny_bernoulli()
    fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=1, progress=True))
    err = capsys.readouterr().err
    assert "epoch 1/1" in err
    fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=1, progress=False))
    assert capsys.readouterr().err == ""


def test_bad_epochs_and_batch_size():
    vae, params, x, _ = tiny_bernoulli()
    for kw in ({"epochs": 0}, {"batch_size": 0}, {"batch_size": 2.5}):
        with pytest.raises(ValueError, match="positive integer"):
            fit(vae_objective(vae), params, x, settings=TrainSettings(progress=False, **kw))


def test_threshold_binarization_equals_binarizing_first():
    vae, params, x, x_test = tiny_bernoulli()
    inside = fit(vae_objective(vae), params, x, x_test=x_test,
                 settings=TrainSettings(epochs=2, seed=4, binarize="threshold", progress=False))
    first = fit(vae_objective(vae), params, (x > 0.5).astype(numpy.float32),
                x_test=(x_test > 0.5).astype(numpy.float32), settings=TrainSettings(epochs=2, seed=4, progress=False))
    assert_same_tree(inside.params, first.params)
    assert without_wall_clock(inside.history) == without_wall_clock(first.history)
    with pytest.raises(ValueError, match="binarize"):
        fit(vae_objective(vae), params, x, settings=TrainSettings(binarize="otsu", progress=False))


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

    result = fit(schedule, params, x, x_test=x_test, settings=TrainSettings(epochs=3, seed=1, progress=False))
    # schedule(3) once up front (the final objective), then once per epoch, in order
    assert asked == [3, 1, 2, 3]
    # 200 rows in batches of 100: two training steps with epoch e's loss, then one test batch with the final one
    assert calls == [1, 1, 3, 2, 2, 3, 3, 3, 3]
    assert [sorted(k for k in h if k.startswith(("train_", "test_"))) for h in result.history] == [
        ["test_elbo_e3", f"train_elbo_e{e}"] for e in (1, 2, 3)]
    with pytest.raises(ValueError, match="schedule returned None for epoch 3"):
        fit(lambda epoch: None, params, x, settings=TrainSettings(epochs=3, progress=False))


def test_kl_warmup_equals_one_fit_per_beta_chained_by_resume(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    kw = {"batch_size": 64, "seed": 3, "progress": False}
    warm = fit(kl_warmup(vae, 2), params, x, settings=TrainSettings(epochs=3, **kw))
    # the same run by hand: epoch 1 at beta 0.1, epoch 2 at 0.55, epoch 3 at 1, each resuming the last (a
    # schedule that agrees with the epochs done: a resume refuses an objective other than its checkpoint's)
    path, betas = tmp_path / "c.npz", {1: 0.1, 2: 0.55, 3: 1.0}
    for epoch in betas:
        by_hand = fit(lambda e: vae_objective(vae, betas[e]), params, x, settings=TrainSettings(epochs=epoch, **kw),
                      files=RunFiles(checkpoint=path, resume=path if epoch > 1 else None))
    assert_same_tree(warm.params, by_hand.params)
    assert without_wall_clock(warm.history) == without_wall_clock(by_hand.history)
    assert [next(k for k in h if k.startswith("train_")) for h in warm.history] == [
        "train_elbo_beta0.1", "train_elbo_beta0.55", "train_elbo"]


def test_resume_with_a_schedule_is_bit_identical(tmp_path):
    vae, params, x, x_test = tiny_bernoulli()
    run = TrainSettings(epochs=5, batch_size=64, seed=13, progress=False)
    straight = fit(kl_warmup(vae, 3), params, x, x_test=x_test, optimizer=Adam(1e-2), settings=run)
    path = tmp_path / "c.npz"

    def crash_after_epoch_2(epoch, params, record):
        if epoch == 2:
            raise KeyboardInterrupt("killed after epoch 2")

    with pytest.raises(KeyboardInterrupt):
        fit(kl_warmup(vae, 3), params, x, x_test=x_test, optimizer=Adam(1e-2), on_epoch=crash_after_epoch_2,
            settings=run, files=RunFiles(checkpoint=path))
    assert load_checkpoint(path)["epoch"] == 2
    resumed = fit(kl_warmup(vae, 3), params, x, x_test=x_test, optimizer=Adam(1e-2), settings=run,
                  files=RunFiles(resume=path, metrics=tmp_path / "m.json"))
    assert_same_tree(resumed.params, straight.params)
    assert without_wall_clock(resumed.history) == without_wall_clock(straight.history)
    # every epoch's test bound is the final objective's: the ELBO at beta = 1
    assert all("test_elbo" in h for h in straight.history)
    assert json.loads((tmp_path / "m.json").read_text())["objective"] == "elbo"



# ------------------------------------------------------------------------------- the guard (issue 12: 1, 2)


def strict_json(path) -> dict:
    return json.loads(path.read_text(), parse_constant=lambda token: pytest.fail(f"non-strict JSON: {token}"))


def test_a_diverging_run_keeps_its_last_good_checkpoint_and_strict_metrics(tmp_path):
    # the repro: a Gaussian VAE on uniform data with SGD(0.3), full batch, diverges within 40 epochs
    # (with this seed, the unguarded trainer wrote a bare NaN into metrics.json)
    rng = numpy.random.default_rng(1)
    vae = VAE(12, [8], 2, likelihood="gaussian")
    params, x = vae.init(rng), rng.random((230, 12)).astype(numpy.float32)
    path, metrics = tmp_path / "c.npz", tmp_path / "m.json"
    with pytest.raises(NonFiniteLossError, match="non-finite|became") as err, numpy.errstate(all="ignore"):
        fit(vae_objective(vae), params, x[:200], x_test=x[200:], optimizer=SGD(0.3),
            settings=TrainSettings(epochs=40, batch_size=200, seed=0, progress=False),
            files=RunFiles(checkpoint=path, metrics=metrics))
    saved, history = load_checkpoint(path), strict_json(metrics)["history"]
    # the checkpoint and metrics.json stop at the last epoch that passed every check, and hold finite numbers
    assert saved["epoch"] == len(history) == err.value.epoch - 1
    assert all(numpy.isfinite(leaf).all() for leaf in tree_leaves([saved["params"], saved["optimizer"]]))
    assert all(numpy.isfinite(v) for record in history for v in record.values())
    # the parameters handed back are finite, and so is their ELBO on the training set
    assert all(numpy.isfinite(leaf).all() for leaf in tree_leaves(err.value.params))
    assert numpy.isfinite(evaluate(vae_objective(vae), err.value.params, x[:200], numpy.random.default_rng(1)))


class Exploding:
    """SGD(0.01) whose update number ``at`` turns one parameter array into inf (a blown-up step)."""

    def __init__(self, at: int) -> None:
        self.inner, self.at, self.steps = SGD(0.01), at, 0

    def step(self, params, grads):
        self.steps += 1
        new = self.inner.step(params, grads)
        if self.steps == self.at:
            tree_leaves(new)[0][...] = numpy.inf
        return new

    def state(self):
        return self.inner.state()


def test_parameters_blown_up_by_a_step_are_caught_at_that_step(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    path = tmp_path / "c.npz"
    with pytest.raises(NonFiniteLossError, match="updated parameters became non-finite.*epoch 2, step 1") as err:
        fit(vae_objective(vae), params, x, optimizer=Exploding(at=3),
            settings=TrainSettings(epochs=3, seed=1, progress=False), files=RunFiles(checkpoint=path))
    # handed back: the input of that step (its loss and gradient were finite), which is the end of epoch 1
    assert load_checkpoint(path)["epoch"] == 1
    assert_same_tree(err.value.params, load_checkpoint(path)["params"])


def test_a_non_finite_test_bound_stops_before_anything_of_that_epoch_is_written(tmp_path):
    vae, params, x, x_test = tiny_bernoulli()
    # calls: epoch 1 steps 1, 2, its evaluation (call 3), epoch 2 steps 1, 2, its evaluation (call 6)
    poisoned, _ = counting(vae_objective(vae), poison_call=6)
    path, metrics = tmp_path / "c.npz", tmp_path / "m.json"
    with pytest.raises(NonFiniteLossError, match="test elbo became nan at epoch 2") as err:
        fit(poisoned, params, x, x_test=x_test, settings=TrainSettings(epochs=3, seed=1, progress=False),
            files=RunFiles(checkpoint=path, metrics=metrics))
    assert (err.value.epoch, err.value.step) == (2, None)
    assert load_checkpoint(path)["epoch"] == 1 and [h["epoch"] for h in strict_json(metrics)["history"]] == [1]
    assert_same_tree(err.value.params, load_checkpoint(path)["params"])


# ---------------------------------------------------------------- one sentence per mistake (issue 12: 6-8)


def test_output_paths_that_cannot_be_written_are_refused_before_the_first_step(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    (tmp_path / "a_file").write_text("x")
    counted, calls = counting(vae_objective(vae))
    for kw, words in (({"checkpoint": tmp_path}, "checkpoint=.* is a folder"),
                      ({"metrics": tmp_path}, "metrics=.* is a folder"),
                      ({"checkpoint": tmp_path / "a_file" / "c.npz"}, "lies under .*a_file, which is a file"),
                      ({"metrics": tmp_path / "a_file" / "m.json"}, "lies under")):
        with pytest.raises(ValueError, match=words):
            fit(counted, params, x, settings=TrainSettings(epochs=1, progress=False), files=RunFiles(**kw))
    assert calls == []


def edited_checkpoint(path, edit_optimizer_state=None, edit_params=None, **meta) -> None:
    """Rewrite the checkpoint at ``path`` as a hand edit would: its optimizer state, params or metadata."""
    state = load_checkpoint(path)
    optimizer_state = (edit_optimizer_state or (lambda s: s))(state["optimizer"])
    stand_in = type(state["optimizer_class"], (), {"state": lambda self: optimizer_state})()
    rng = numpy.random.default_rng()
    rng.bit_generator.state = state["rng"]
    save_checkpoint(path, (edit_params or (lambda p: p))(state["params"]), stand_in, meta.get("epoch", state["epoch"]),
                    rng, state["history"], seed=meta.get("seed", state["seed"]))


def test_resume_refuses_a_checkpoint_that_does_not_fit_this_run(tmp_path):
    vae, params, x, _ = tiny_bernoulli()
    path = tmp_path / "c.npz"
    fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=2, seed=4, progress=False),
        files=RunFiles(checkpoint=path))
    good = path.read_bytes()

    def wrong_moment(state):
        leaves = tree_leaves(state["m"])
        state["m"] = tree_unflatten(state["m"], [numpy.zeros((leaves[0].shape[0] + 1, *leaves[0].shape[1:]),
                                                             leaves[0].dtype)] + leaves[1:])
        return state

    def nan_params(path):
        # written past save_checkpoint (which refuses NaN), as a hand edit of the arrays would be
        with numpy.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays["a0"] = arrays["a0"] * numpy.nan
        numpy.savez(path, **arrays)

    cases = [({"edit_optimizer_state": wrong_moment}, {}, "optimizer state 'm' .* has an array of shape"),
             ({"edit_optimizer_state": lambda s: {"t": s["t"], "m": s["m"]}}, {}, r"entries \['m', 't'\]"),
             ({"edit_optimizer_state": lambda s: {**s, "t": -3}}, {}, "'t' is -3, not a count"),
             ({"edit_params": lambda p: tree_map(lambda a: a.astype(numpy.float64), p)}, {}, "dtype float64"),
             (nan_params, {}, "non-finite parameters"),
             ({}, {"epochs": 1}, "already at epoch 2, but epochs=1"),
             ({}, {"seed": 5}, "seed=4, but fit got seed=5"),
             ({"epoch": -5}, {}, "damaged metadata: epoch -5")]
    for edit, change, words in cases:
        path.write_bytes(good)
        if callable(edit):
            edit(path)
        elif edit:
            edited_checkpoint(path, **edit)
        with pytest.raises(ValueError, match=words):
            run = TrainSettings(epochs=change.get("epochs", 3), seed=change.get("seed", 4), progress=False)
            fit(vae_objective(vae), params, x, settings=run, files=RunFiles(resume=path))


def test_bad_arguments_are_one_sentence():
    vae, params, x, _ = tiny_bernoulli()
    objective = vae_objective(vae)
    for kw, words in (({"epochs": 2.0}, "epochs must be a positive integer"),
                      ({"epochs": True}, "epochs must be a positive integer"),
                      ({"batch_size": 64.0}, "batch_size must be a positive integer"),
                      ({"seed": -1}, "seed must be a non-negative integer"),
                      ({"seed": 1.5}, "seed must be a non-negative integer")):
        with pytest.raises(ValueError, match=words):
            fit(objective, params, x, settings=TrainSettings(progress=False, **kw))
    for bad, words in ((None, "params must be a nest"), ({}, "params must be a nest"),
                       ({"w": [1.0, 2.0]}, r"params\['w'\]\[0\] is a float"),
                       ({"w": numpy.array([None, 1.0], dtype=object)}, "dtype object"),
                       ({"w": numpy.ones(2, numpy.float32), "b": numpy.ones(2)}, "mix the dtypes"),
                       ({"w": numpy.array([numpy.nan], numpy.float32)}, r"params\['w'\] holds NaN")):
        with pytest.raises(ValueError, match=words):
            fit(Objective(lambda p, x, eps: 0.0, None, "neg_loss"), bad, x,
                settings=TrainSettings(epochs=1, progress=False))
    with pytest.raises(ValueError, match="x must be a 2-D array"):
        evaluate(objective, params, x[:0], numpy.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        evaluate(objective, params, x, numpy.random.default_rng(0), batch_size=0)
    with pytest.raises(ValueError, match="x has no rows"):
        train_epoch(objective, params, x[:0], Adam(), numpy.random.default_rng(0))


def test_params_of_another_model_are_refused_before_the_first_step():
    vae, _, x, _ = tiny_bernoulli()
    counted, calls = counting(vae_objective(vae))
    wider = VAE(12, [9], 2).init(numpy.random.default_rng(0))
    with pytest.raises(ValueError, match=r"objective's model has an array of shape \(12, 8\).*params has \(12, 9\)"):
        fit(counted, wider, x, settings=TrainSettings(epochs=1, progress=False))
    with pytest.raises(ValueError, match="params and the objective's model have different structures"):
        fit(counted, {"w": numpy.ones((12, 2), numpy.float32)}, x, settings=TrainSettings(epochs=1, progress=False))
    assert calls == []


# ----------------------------------------------------------------- what is trained and recorded (13-15, 18)


def test_the_test_set_never_changes_what_is_trained():
    vae, params, x, x_test = tiny_bernoulli()
    run = TrainSettings(epochs=2, batch_size=64, seed=6, progress=False, binarize="stochastic")
    alone = fit(vae_objective(vae), params, x, settings=run)
    for test in (x_test, x_test[:10]):
        assert_same_tree(fit(vae_objective(vae), params, x, x_test=test, settings=run).params, alone.params)


def test_the_train_bound_weights_examples_not_batches():
    vae, params, x, _ = tiny_bernoulli()
    losses, sizes = [], []

    def recording(p, xb, eps):
        value = vae_objective(vae).loss(p, xb, eps)
        losses.append(float(value._value if hasattr(value, "_value") else value))
        sizes.append(len(xb))
        return value

    # 200 rows in batches of 64: 64, 64, 64 and a short last batch of 8
    result = fit(dataclasses.replace(vae_objective(vae), loss=recording), params, x,
                 settings=TrainSettings(epochs=1, batch_size=64, progress=False))
    assert sizes == [64, 64, 64, 8]
    # -(1/N) Σ_b n_b L_b, summed in another order than the trainer's, so equal up to float64 rounding
    expected = -float(numpy.dot(sizes, losses)) / 200
    assert result.history[0]["train_elbo"] == pytest.approx(expected, rel=1e-14)
    assert abs(expected + numpy.mean(losses)) > 1e-6  # the unweighted mean is another number


def test_float64_data_train_float32_params_in_float32():
    vae, params, x, x_test = tiny_bernoulli()
    seen = []

    def recording(p, xb, eps):
        seen.append((xb.dtype, eps.dtype))
        return vae_objective(vae).loss(p, xb, eps)

    result = fit(dataclasses.replace(vae_objective(vae), loss=recording), params, x.astype(numpy.float64),
                 x_test=x_test.astype(numpy.float64), optimizer=SGD(0.1, momentum=0.5),
                 settings=TrainSettings(epochs=1, progress=False))
    float32 = numpy.dtype(numpy.float32)
    assert set(seen) == {(float32, float32)}
    assert {leaf.dtype for leaf in tree_leaves([result.params, result.optimizer.velocity])} == {float32}


def test_binarization_reaches_the_data_an_objective_carries():
    vae, params, x, x_test = tiny_bernoulli()
    grey = numpy.random.default_rng(9).random((50, 12)).astype(numpy.float32)
    seen = []

    def carrying(f):
        seen.append(f(grey))
        return vae_objective(vae)

    objective = dataclasses.replace(vae_objective(vae), data_map=carrying)
    fit(objective, params, x, x_test=x_test,
        settings=TrainSettings(epochs=3, seed=2, binarize="stochastic", progress=False))
    # once for the final objective (test), then once per epoch: Bernoulli draws, fresh every epoch
    assert len(seen) == 4 and all(set(numpy.unique(s)) <= {0.0, 1.0} for s in seen)
    assert len({s.tobytes() for s in seen[1:]}) == 3
    # each pixel is 1 with probability equal to its grey level: 150 draws per pixel, mean within 4 s.e.
    frequency = numpy.mean(seen[1:], axis=0).mean()
    assert abs(frequency - grey.mean()) < 4 * numpy.sqrt(0.25 / (3 * grey.size))
    seen.clear()
    fit(objective, params, x, settings=TrainSettings(epochs=1, binarize="threshold", progress=False))
    assert len(seen) == 1 and numpy.array_equal(seen[0], (grey > 0.5).astype(numpy.float32))


def test_m2_trains_on_binarized_labelled_digits_with_stochastic_binarization():
    m2 = M2(12, [8], 2, n_classes=3)
    rng = numpy.random.default_rng(3)
    x_l, labels, x_u = rng.random((6, 12)).astype(numpy.float32), numpy.array([0, 1, 2, 0, 1, 2]), \
        rng.random((40, 12)).astype(numpy.float32)
    seen = []
    objective = m2_objective(m2, x_l, labels, 1.0)
    spying = dataclasses.replace(objective, data_map=lambda f: objective.map_data(
        lambda x: seen.append(f(x)) or seen[-1]))
    fit(spying, m2.init(rng), x_u,
        settings=TrainSettings(epochs=2, batch_size=20, binarize="stochastic", progress=False))
    assert len(seen) == 2 and all(set(numpy.unique(s)) <= {0.0, 1.0} and s.shape == x_l.shape for s in seen)


def test_train_epoch_visits_every_row_once_and_returns_the_mean_loss_per_example():
    w = numpy.zeros((3, 1))
    rows = []

    def loss(p, xb, eps):
        rows.extend(map(tuple, xb))
        # L(w; x_b) = mean_b (x_b·w − 1)²: at w = 0 each row scores exactly 1
        return anp.mean((xb @ p["w"] - 1.0) ** 2)

    x = numpy.random.default_rng(0).random((25, 3))
    params, mean_loss = train_epoch(Objective(loss, None, "neg_loss"), {"w": w}, x, SGD(0.0 + 1e-9),
                                    numpy.random.default_rng(1), batch_size=10)
    assert sorted(rows) == sorted(map(tuple, x)) and mean_loss == pytest.approx(1.0, abs=1e-8)


def test_fit_lets_go_of_old_params_so_the_fast_adam_reuses_its_buffers(monkeypatch):
    # the guard keeps only the θ before the last step: one older is let go before each step, so the fast Adam
    # writes into that buffer instead of a new one (a loop that held it allocated a new buffer every step)
    written = {"reused": 0, "new": 0}
    free_buffer = FastAdam._free_buffer

    def counting(self, k, like):
        spare = id(self._spares[k]) if k < len(self._spares) else None  # an id, not a reference: that would count
        out = free_buffer(self, k, like)
        written["reused" if id(out) == spare else "new"] += 1
        return out

    monkeypatch.setattr(FastAdam, "_free_buffer", counting)
    vae, params, x, _ = tiny_bernoulli()
    fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=3, batch_size=20, progress=False))
    # 30 steps: the first two have no buffer two steps old, and each epoch's first step starts from a host copy
    assert written["reused"] >= 24 and written["new"] <= 6, written
