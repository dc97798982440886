"""minivae.threads: the BLAS cap is applied inside and restored after (read back with threadpoolctl's
threadpool_info), an explicit count beats --threads, which beats $MINIVAE_THREADS, which beats the default;
the default is one thread, whatever the load; bad counts are refused with one sentence. OPENBLAS_* are never changed."""

import inspect
import subprocess
import sys

import numpy
import pytest
from threadpoolctl import ThreadpoolController

from minivae import threads
from minivae.models import VAE
from minivae.objectives import vae_objective
from minivae.threads import blas_info, blas_threads, check_threads, choose_threads, set_blas_threads
from minivae.train import TrainSettings, fit
from minivae.tree import tree_leaves
from minivae.walkthrough import settings


def walkthrough_flags(tmp_path, *flags: str):
    """A walkthrough's settings (no values of its own) from ``flags``, its figures in ``tmp_path / "out"``."""
    return settings("not_main", "99_demo", {}, argv=["--out", str(tmp_path / "out"), *flags])


def blas_now() -> int:
    counts = {info["num_threads"] for info in blas_info()}
    assert len(counts) == 1, f"NumPy loaded several BLAS libraries with different counts: {blas_info()}"
    return counts.pop()


@pytest.fixture(autouse=True)
def clean(monkeypatch):
    """No $MINIVAE_THREADS and no run-level --threads unless a test sets them; NumPy's BLAS count put back."""
    monkeypatch.delenv(threads.VARIABLE, raising=False)
    monkeypatch.setattr(threads, "_run", {})
    before = ThreadpoolController().limit(limits=blas_now(), user_api="blas")
    yield
    before.restore_original_limits()


@pytest.mark.parametrize("n", [1, 2])
def test_the_cap_holds_inside_and_the_old_count_comes_back(n):
    other = 3 - n
    with ThreadpoolController().limit(limits=other, user_api="blas"):
        assert blas_now() == other
        with blas_threads(n) as cap:
            assert cap.threads == n and blas_now() == n
        assert blas_now() == other


def test_the_cap_is_restored_when_the_body_raises():
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        with pytest.raises(KeyError), blas_threads(1):
            raise KeyError("boom")
        assert blas_now() == 2


def test_the_environment_variable_sets_the_count_and_an_explicit_one_beats_it(monkeypatch):
    monkeypatch.setenv("MINIVAE_THREADS", "1")
    assert choose_threads() == 1
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        with blas_threads():
            assert blas_now() == 1
        with blas_threads(2):
            assert blas_now() == 2
    monkeypatch.setenv("MINIVAE_THREADS", "2")
    assert choose_threads() == 2 and choose_threads(1) == 1


def test_fit_trains_under_the_cap_and_puts_numpys_count_back(monkeypatch):
    # the count BLAS had during each epoch, read inside fit by its on_epoch callback
    monkeypatch.setenv("MINIVAE_THREADS", "1")
    vae = VAE(12, [5], 2)
    x = (numpy.random.default_rng(0).random((20, 12)) < 0.5).astype(numpy.float32)
    seen = []
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        fit(vae_objective(vae), vae.init(numpy.random.default_rng(1)), x,
            settings=TrainSettings(epochs=2, batch_size=10, progress=False),
            on_epoch=lambda epoch, params, record: seen.append(blas_now()))
        assert seen == [1, 1] and blas_now() == 2
    # the decorator keeps fit's own signature and docstring
    assert list(inspect.signature(fit).parameters)[:3] == ["objective", "params", "x_train"]
    assert fit.__doc__.startswith("Minimise")


def test_a_walkthroughs_threads_flag_caps_the_run_and_beats_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIVAE_THREADS", "2")
    args = walkthrough_flags(tmp_path, "--threads", "1")
    assert args.threads == 1 and blas_now() == 1
    # later fits of the run use it too
    assert choose_threads() == 1
    with blas_threads():
        assert blas_now() == 1
    # a run without the flag chooses again: here the environment's 2
    walkthrough_flags(tmp_path)
    assert choose_threads() == 2 and blas_now() == 2


@pytest.mark.parametrize("flag", ["0", "-1", "abc", "1.5", ""])
def test_a_bad_threads_flag_is_one_line_and_exit_2(flag, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        walkthrough_flags(tmp_path, "--threads", flag)
    assert stop.value.code == 2
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--threads" in message and "at least 1" in message and repr(flag) in message


@pytest.mark.parametrize("value", ["x", "0", "two", "-3", "2.0"])
def test_a_bad_environment_variable_is_one_sentence_everywhere(value, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("MINIVAE_THREADS", value)
    want = f"MINIVAE_THREADS must be a whole number of BLAS threads of at least 1 (e.g. 1 or 2), got {value!r}."
    with pytest.raises(ValueError) as error:
        choose_threads()
    assert str(error.value) == want
    # fit refuses it before any step
    vae = VAE(4, [], 2)
    with pytest.raises(ValueError, match="MINIVAE_THREADS must be"):
        fit(vae_objective(vae), vae.init(numpy.random.default_rng(0)), numpy.zeros((4, 4), numpy.float32),
            epochs=1, progress=False)
    # a walkthrough: the sentence on argparse's error line, exit 2
    with pytest.raises(SystemExit) as stop:
        walkthrough_flags(tmp_path)
    assert stop.value.code == 2 and capsys.readouterr().err.strip().endswith(want)


@pytest.mark.parametrize("value", [0, -2, 1.0, True, None, "abc", "", [2]])
def test_check_threads_refuses_what_is_not_a_count(value):
    with pytest.raises(ValueError, match=r"^threads must be a whole number of BLAS threads of at least 1"):
        check_threads(value)
    if value is not None:
        with pytest.raises(ValueError):
            blas_threads(value)


def test_check_threads_takes_ints_and_digit_strings():
    assert [check_threads(v) for v in (1, 2, numpy.int64(3), "4", " 5 ")] == [1, 2, 3, 4, 5]


def test_the_default_is_one_thread_whatever_the_load(monkeypatch):
    # a fixed count: one that followed the load would change the numbers from run to run (next test)
    monkeypatch.delenv("MINIVAE_THREADS", raising=False)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert choose_threads() == threads.DEFAULT == 1
    finally:
        spinner.kill()
        spinner.wait()
    assert choose_threads() == 1


def test_a_resume_gives_the_same_numbers_as_one_run_without_a_thread_setting(monkeypatch, tmp_path):
    # OpenBLAS sums a product differently on 1 and 2 threads: a default that followed the machine's load made
    # this resume differ from the straight run in the last bits whenever the load changed between the fits
    from minivae.train import RunFiles

    monkeypatch.delenv("MINIVAE_THREADS", raising=False)
    vae = VAE(784, [32], 4)
    x = (numpy.random.default_rng(0).random((300, 784)) < 0.3).astype(numpy.float32)
    params = vae.init(numpy.random.default_rng(1))
    run = TrainSettings(epochs=2, batch_size=50, progress=False)
    fit(vae_objective(vae), params, x, settings=run, files=RunFiles(checkpoint=tmp_path / "c.npz"))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        resumed = fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=4, batch_size=50, progress=False),
                      files=RunFiles(resume=tmp_path / "c.npz"))
    finally:
        spinner.kill()
        spinner.wait()
    straight = fit(vae_objective(vae), params, x, settings=TrainSettings(epochs=4, batch_size=50, progress=False))
    for a, b in zip(tree_leaves(resumed.params), tree_leaves(straight.params)):
        numpy.testing.assert_array_equal(a, b)


def test_set_blas_threads_caps_the_process_until_changed():
    assert set_blas_threads(1) == 1 and blas_now() == 1 and choose_threads() == 1
    assert set_blas_threads(2) == 2 and blas_now() == 2
