"""The walkthroughs' shared command line, results table and metrics.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from minivae.walkthrough import print_table
from minivae.walkthrough_files import save_metrics


def test_parser_defaults_and_flags(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = _settings([])
    assert (args.quick, args.seed, str(args.out), args.device) == (False, 0, "figures/99_demo", "cpu")
    args = _settings(["--quick", "--seed", "3", "--out", str(tmp_path), "--device", "auto"])
    assert (args.quick, args.seed, args.out, args.device) == (True, 3, tmp_path, "auto")


def test_device_gpu_without_cupy_is_one_sentence_not_a_traceback(tmp_path, monkeypatch, capsys) -> None:
    # a cupy module that cannot be imported stands for a machine without CuPy
    monkeypatch.setitem(sys.modules, "cupy", None)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        _settings(["--device", "gpu"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "CuPy could not be imported" in err and "--device cpu" in err and "Traceback" not in err


def test_save_metrics_writes_plain_json_atomically(tmp_path) -> None:
    path = save_metrics(tmp_path, {"elbo": np.float32(-1.5), "curve": np.arange(3), "nested": {"k": (1, 2)}})
    assert json.loads(path.read_text()) == {"elbo": -1.5, "curve": [0, 1, 2], "nested": {"k": [1, 2]}}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_print_table_aligns_columns(capsys) -> None:
    print_table([{"quantity": "test ELBO", "nats": -98.7654}, {"quantity": "KL", "nats": 21.0}], title="t")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "t"
    assert len({len(line) for line in lines[1:]}) == 1
    assert "-98.77" in lines[2]


# ---- the flag types, the progress bars, the end of a run ----

@pytest.mark.parametrize("text, ok", [("3", 3), ("0", None), ("-1", None), ("2.5", None), ("x", None)])
def test_positive_int(text, ok) -> None:
    import argparse

    from minivae.walkthrough import positive_int

    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError, match="whole number of at least 1"):
            positive_int(text)
    else:
        assert positive_int(text) == ok


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "one"])
def test_positive_float_refuses_zero_negative_and_non_finite(text) -> None:
    import argparse

    from minivae.walkthrough import non_negative_float, positive_float

    with pytest.raises(argparse.ArgumentTypeError, match="finite number above 0"):
        positive_float(text)
    if text != "0":
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_float(text)
    assert positive_float("1e-3") == 1e-3 and non_negative_float("0") == 0.0


@pytest.mark.parametrize("text", ["1", "1.5", "-0.1", "nan", "inf", "x"])
def test_decay_takes_zero_up_to_but_not_one(text) -> None:
    import argparse

    from minivae.walkthrough import decay

    with pytest.raises(argparse.ArgumentTypeError, match=r"decay in \[0, 1\)"):
        decay(text)
    assert decay("0") == 0.0 and decay("0.9") == 0.9


def test_progress_is_silent_in_a_log(monkeypatch) -> None:
    import minivae.console as console
    import minivae.walkthrough as walkthrough
    from minivae.walkthrough_data import in_chunks

    monkeypatch.setattr(console, "in_notebook", lambda: False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    items = [1, 2]
    assert walkthrough.progress(items, "x") is items
    assert in_chunks(lambda b: np.asarray(b) * 2, np.arange(5), "x", chunk=2).tolist() == [0, 2, 4, 6, 8]


def test_finish_saves_params_and_metrics_and_lists_them(tmp_path, capsys) -> None:
    import minivae
    from minivae.walkthrough_files import finish

    params = {"w": [np.arange(3.0), np.ones((2, 2), np.float32)]}
    run = finish(tmp_path, params, {"elbo": -1.0, "bad": float("nan")}, [], "walkthroughs/99_next.py: more.",
                 variant="square")
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["wrote:", f"  {tmp_path / 'params_square.npz'}", f"  {tmp_path / 'metrics_square.json'}",
                     "next: walkthroughs/99_next.py: more."]
    back = minivae.load_params(tmp_path / "params_square.npz")
    assert all((a == b).all() and a.dtype == b.dtype for a, b in zip(back["w"], params["w"]))
    # strict JSON: NaN is written as null
    assert json.loads((tmp_path / "metrics_square.json").read_text()) == {"elbo": -1.0, "bad": None}
    assert run.params is params and run.metrics["elbo"] == -1.0


def test_the_help_title_is_the_first_markdown_cells_first_paragraph(tmp_path, monkeypatch, capsys) -> None:
    import types

    from minivae.walkthrough import NOTEBOOK_HINT, settings

    source = tmp_path / "99_demo.py"
    source.write_text("# %% [markdown]\n# # 99 - a title\n#\n#     z ~ N(0, I)\n\n# %%\nx = 1\n"
                      "# %% [markdown]\n# later\n")
    module = types.ModuleType("demo_99")
    module.__file__ = str(source)
    monkeypatch.setitem(sys.modules, "demo_99", module)
    monkeypatch.chdir(tmp_path)
    for name, title in (("demo_99", "99 - a title "), ("no_such_module", "")):
        with pytest.raises(SystemExit):
            settings(name, "99_demo", {}, argv=["--help"])
        out = capsys.readouterr().out
        # the description, after the usage lines: the title, then the hint (alone without a source file: a notebook)
        assert " ".join(out.split("\n\n")[1].split()) == f"{title}{NOTEBOOK_HINT}"
        assert "z ~ N" not in out and "later" not in out


# ---- every file through the atomic writer; --out never empty ----


def test_out_must_not_be_empty(tmp_path, monkeypatch, capsys) -> None:
    # --out '' would scatter the run's files in the current folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        _settings(["--out", ""])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--out: expected a folder for the figures, got an empty name" in err and "Traceback" not in err


def test_save_metrics_fsyncs_and_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch) -> None:
    import os

    from minivae import files

    save_metrics(tmp_path, {"elbo": -1.0})
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    save_metrics(tmp_path, {"elbo": -2.0})
    assert synced, "metrics.json was renamed into place without an fsync"

    def failing_rename(src, dst):
        raise OSError(28, "No space left on device", src)

    monkeypatch.setattr(files.os, "replace", failing_rename)
    with pytest.raises(OSError, match="metrics.json") as err:
        save_metrics(tmp_path, {"elbo": -3.0})
    assert ".tmp" not in str(err.value) and ".part" not in str(err.value)
    # the previous file is whole, and nothing is left beside it
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == {"elbo": -2.0}


METRICS_RACER = """
import sys
from minivae.walkthrough_files import save_metrics

for i in range(150):
    save_metrics(sys.argv[1], {"writer": sys.argv[2], "i": i, "curve": list(range(2000))})
"""


def test_two_runs_writing_metrics_at_once_both_finish(tmp_path) -> None:
    import subprocess

    racers = [subprocess.Popen([sys.executable, "-c", METRICS_RACER, str(tmp_path), tag], stderr=subprocess.PIPE)
              for tag in "ab"]
    errors = [racer.communicate(timeout=120)[1].decode() for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0], errors
    assert json.loads((tmp_path / "metrics.json").read_text())["i"] == 149
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


# ---- streams: a closed or broken stdout/stderr, or an ASCII console, never costs a run its files ----

WALKTHROUGH_01 = __import__("pathlib").Path(__file__).resolve().parents[1] / "walkthroughs" / "01_ring_mapping.py"
RUN_FILES = ["01_ring_mapping.png", "01_ring_vae.png", "metrics.json", "params.npz"]


def _run_01(out, env: dict | None = None, **popen):
    """Start walkthrough 01 --quick (about 2 s) writing into ``out``, with one BLAS thread and Agg figures."""
    import os
    import subprocess

    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.Popen([sys.executable, str(WALKTHROUGH_01), "--quick", "--out", str(out)], env=env, **popen)


@pytest.mark.skipif(sys.platform == "win32", reason="closing a child's descriptor is POSIX")
@pytest.mark.parametrize("closed", [1, 2], ids=["stdout >&-", "stderr 2>&-"])
def test_a_closed_stream_still_writes_every_file(tmp_path, closed) -> None:
    import os
    import subprocess

    keep = subprocess.PIPE
    run = _run_01(tmp_path / "out", preexec_fn=lambda: os.close(closed),
                  stdout=keep if closed == 2 else None, stderr=keep if closed == 1 else None)
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, (out, err)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == RUN_FILES
    if closed == 2:  # printing still works where it can
        assert b"wrote:" in out


@pytest.mark.skipif(sys.platform == "win32", reason="pipes that break are POSIX")
def test_a_broken_pipe_stops_printing_not_the_run(tmp_path) -> None:
    import subprocess

    # like `| head -1`: the reader is gone before the first line
    run = _run_01(tmp_path / "out", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    run.stdout.close()
    err = run.stderr.read().decode()
    run.wait(timeout=300)
    assert run.returncode == 0, err
    assert "Traceback" not in err and "stdout was closed (broken pipe)" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == RUN_FILES


def test_an_ascii_console_gets_ascii_not_a_unicode_error(tmp_path) -> None:
    import subprocess

    out = tmp_path / "r\u00e9sultats"  # a folder name the console cannot show
    run = _run_01(out, env={"PYTHONIOENCODING": "ascii"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stdout, err = run.communicate(timeout=300)
    assert run.returncode == 0, err.decode()
    assert sorted(p.name for p in out.iterdir()) == RUN_FILES
    assert f"  {tmp_path}/r\\xe9sultats/params.npz" in stdout.decode("ascii").splitlines()


def test_plain_spells_out_symbols_and_escapes_the_rest() -> None:
    from minivae.console import plain

    assert plain("σ ≥ 0 → β×2, caf\u00e9", "ascii") == "sigma >= 0 -> betax2, caf\\xe9"
    assert plain("σ", "utf-8") == "sigma"  # only called when the encoding failed: spelled out all the same


# ---- the notebook-first pattern: settings(), Settings, lesson_check(), epoch_bar() ----

VALUES = {"epochs": (2, 10, "passes"), "lr": (1e-2, 1e-3, "rate"), "ks": ((1, 4), (1, 2, 4), "samples"),
          "n_train": (300, None, "digits"), "mask": ("hole", "hole", "which pixels")}


def _settings(argv, **kwargs):
    from minivae.walkthrough import settings

    return settings("not_main", "99_demo", VALUES, types={"mask": ("hole", "square")}, argv=argv, **kwargs)


def test_settings_fill_quick_or_full_and_an_explicit_flag_wins(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    full = _settings([])
    quick = _settings(["--quick", "--epochs", "5", "--ks", "8", "16", "--mask", "square"])
    assert (full.epochs, full.lr, full.ks, full.n_train, full.mask) == (10, 1e-3, (1, 2, 4), None, "hole")
    assert (quick.epochs, quick.lr, quick.ks, quick.n_train, quick.mask) == (5, 1e-2, [8, 16], 300, "square")
    # --quick has its own folder, so it never overwrites the full run's params.npz; both exist already
    assert (full.out, quick.out) == (Path("figures/99_demo"), Path("figures/99_demo_quick"))
    assert (tmp_path / "figures/99_demo_quick").is_dir() and (tmp_path / "figures/99_demo").is_dir()
    assert _settings(["--quick", "--out", str(tmp_path / "mine")]).out == tmp_path / "mine"
    # imported (not run as a script) it never saves: the script-only cell is skipped
    assert full.script is False and full.written == [] and full.names == list(VALUES)


BAD = [(["--epochs", "0"], "--epochs: expected a whole number of at least 1"),
       (["--lr", "nan"], "--lr: expected a finite number above 0"), (["--ks", "2", "x"], "--ks: expected a whole"),
       (["--mask", "ring"], "--mask: invalid choice"),
       (["--out", ""], "--out: expected a folder for the figures, got an empty name"),
       (["--data-dir", "/no/such/mnist"], "--data-dir /no/such/mnist does not exist")]


@pytest.mark.parametrize("flags, says", BAD, ids=[" ".join(f) for f, _ in BAD])
def test_settings_refuse_a_bad_flag_in_one_line(flags, says, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        _settings(flags, mnist=True)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    # argparse's usage lines, then one error line
    assert says in err and "Traceback" not in err and err.startswith("usage: 99_demo.py")
    assert len([line for line in err.splitlines() if "error:" in line]) == 1
    assert not Path("/no/such").exists()


def test_settings_in_a_notebook_read_the_variable_and_run_quick_without_it(tmp_path, monkeypatch, capsys) -> None:
    import minivae.walkthrough as walkthrough

    monkeypatch.chdir(tmp_path)
    # what ipykernel's argv looks like; argparse would refuse it
    monkeypatch.setattr(sys, "argv", ["ipykernel_launcher.py", "-f", "/tmp/kernel-1.json"])
    monkeypatch.setattr(walkthrough, "in_notebook", lambda: True)
    monkeypatch.delenv(walkthrough.ARGS_VARIABLE, raising=False)
    S = walkthrough.settings("__main__", "99_demo", VALUES)
    assert (S.quick, S.epochs, S.script) == (True, 2, False)
    monkeypatch.setenv(walkthrough.ARGS_VARIABLE, "")
    assert walkthrough.settings("__main__", "99_demo", VALUES).quick is False
    # the variable's flags, an explicit one beating --quick
    monkeypatch.setenv(walkthrough.ARGS_VARIABLE, "--quick --epochs 3")
    S = walkthrough.settings("__main__", "99_demo", VALUES)
    assert (S.quick, S.epochs, S.n_train) == (True, 3, 300)
    monkeypatch.setenv(walkthrough.ARGS_VARIABLE, "--quick --out 'my figures")
    with pytest.raises(SystemExit) as stop:
        walkthrough.settings("__main__", "99_demo", VALUES)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "$MINIVAE_WALKTHROUGH_ARGS = \"--quick --out 'my figures\" is not a line of flags" in err
    assert "Traceback" not in err


def test_help_is_one_paragraph_and_the_flags(tmp_path, monkeypatch, capsys) -> None:
    import types

    from minivae.walkthrough import settings

    source = tmp_path / "99_demo.py"
    source.write_text("# %% [markdown]\n# # 99 - a title\n# on two lines.\n#\n#     the long lesson\n\n# %%\nx = 1\n")
    module = types.ModuleType("demo_99")
    module.__file__ = str(source)
    monkeypatch.setitem(sys.modules, "demo_99", module)
    with pytest.raises(SystemExit) as stop:
        settings("demo_99", "99_demo", VALUES, argv=["--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out.replace("\n", " ")
    assert "99 - a title on two lines. The lesson is this file's text" in text and "the long lesson" not in text
    assert "--epochs N passes (default 10; --quick: 2)" in " ".join(text.split())


def test_lesson_check_prints_and_returns_the_number(capsys) -> None:
    from minivae.walkthrough import lesson_check

    assert lesson_check("ratio above 3", 9.5, 3.0) == {"claim": "ratio above 3", "value": 9.5, "threshold": 3.0,
                                                       "holds": True}
    assert lesson_check("distance below 0.1", 0.2, 0.1, above=False)["holds"] is False
    assert capsys.readouterr().out.splitlines() == ["lesson: ratio above 3", "  9.5 > 3: holds",
                                                    "lesson: distance below 0.1", "  0.2 < 0.1: DOES NOT HOLD"]


def test_settings_finish_saves_the_settings_with_the_metrics(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    S = _settings(["--quick"])
    S.finish({"w": np.ones(2)}, {"lesson": {"holds": True}, "epochs": 7}, "walkthroughs/99_next.py: more.")
    metrics = json.loads((S.out / "metrics.json").read_text())
    # the settings and the run's seed, quick and wall time; a key of the metrics wins
    assert (metrics["epochs"], metrics["lr"], metrics["quick"], metrics["seed"]) == (7, 1e-2, True, 0)
    assert metrics["wall_seconds"] >= 0 and metrics["lesson"] == {"holds": True}
    assert capsys.readouterr().out.splitlines()[-1] == "next: walkthroughs/99_next.py: more."


def test_one_bar_per_run_is_silent_in_a_log_and_plain_text_in_a_notebook(monkeypatch, capsys) -> None:
    import minivae.console as console
    import minivae.walkthrough as walkthrough

    # the bar and the choice to show it live in minivae.console (data/ and train.py use them too)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setattr(console, "in_notebook", lambda: False)
    silent = walkthrough.epoch_bar(2, "VAE")
    silent(1, None, {"epoch": 1, "train_elbo": -3.0})
    assert silent.bar is None
    monkeypatch.setattr(console, "in_notebook", lambda: True)
    shown = walkthrough.epoch_bar(2, "VAE")
    for epoch in (1, 2):
        shown(epoch, None, {"epoch": epoch, "train_elbo": -3.0, "test_elbo": -2.5, "seconds": 0.1})
    out = capsys.readouterr()
    # on stdout, ASCII, closed after the last epoch with the test bound shown
    assert out.err == "" and out.out.isascii()
    assert "VAE: 100%|" in out.out and "2/2" in out.out and "test_elbo -2.500" in out.out
    assert out.out.endswith("\n")


def test_a_run_that_diverges_keeps_the_last_good_params_and_says_what_to_change(tmp_path) -> None:
    import os
    import subprocess

    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    run = subprocess.run([sys.executable, str(WALKTHROUGH_01), "--quick", "--lr", "1e6", "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("stopped: the loss became non-finite") and "Traceback" not in run.stderr
    assert f"{tmp_path / 'params_last_good.npz'}; try --lr 100000." in last
    from minivae import load_params
    from minivae.tree import tree_leaves

    params = load_params(tmp_path / "params_last_good.npz")
    assert all(np.isfinite(leaf).all() for leaf in tree_leaves(params))
    assert not (tmp_path / "params.npz").exists() and not (tmp_path / "metrics.json").exists()


def test_fit_and_download_bars_are_plain_text_in_a_notebook(monkeypatch, capsys) -> None:
    import minivae.console as console
    from minivae import train
    from minivae.data import download

    monkeypatch.setattr(console, "in_notebook", lambda: True)
    for _ in train._bar(range(3), "epoch 1/1"):
        pass
    with console.bar(desc="downloading x.gz", total=2048, leave=False, unit="B", unit_scale=True) as shown:
        shown.update(2048)
    out = capsys.readouterr()
    # plain ASCII text on stdout, which Jupyter shows without ipywidgets (leave=False clears it at the end)
    assert "epoch 1/1:   0%|" in out.out and "downloading x.gz:   0%|" in out.out
    assert out.out.isascii() and out.err == ""
    # nothing imports tqdm.auto, which warns "IProgress not found" in Jupyter without ipywidgets
    for module in (train, download, console):
        assert "from tqdm.auto" not in Path(module.__file__).read_text(), module.__name__
    assert "from minivae.console import bar" in Path(download.__file__).read_text()


def test_whole_number_in_and_the_binarize_default(tmp_path, monkeypatch) -> None:
    import argparse

    from minivae.walkthrough import whole_number_in

    pixels = whole_number_in(0, 4)
    assert [pixels(t) for t in ("0", "4")] == [0, 4]
    for bad in ("-1", "5", "1.5", "one"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected a whole number from 0 to 4, got '{bad}'"):
            pixels(bad)
    # an MNIST walkthrough's --binarize defaults to threshold, or to what the walkthrough names
    monkeypatch.chdir(tmp_path)
    assert _settings([], mnist=True).binarize == "threshold"
    assert _settings([], mnist=True, binarize="stochastic").binarize == "stochastic"
    assert _settings(["--binarize", "none"], mnist=True, binarize="stochastic").binarize == "none"
