"""The benchmark's ``numpy by hand`` contender is the same step as minivae's: its hand-derived backward pass
gives minivae's loss and gradients, in float64 to rounding, so ``minivae / numpy by hand`` times the tracer
and nothing else."""

import sys
from pathlib import Path

import numpy
import pytest

from minivae.grad import value_and_grad
from minivae.models import VAE
from minivae.tree import tree_leaves, tree_map

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import engines  # noqa: E402


@pytest.mark.parametrize("hidden", [[40], [30, 20]])
@pytest.mark.parametrize("k", [None, 5])
def test_numpy_by_hand_gives_minivaes_loss_and_gradients(hidden, k):
    vae = VAE(784, hidden, 6)
    params = vae.init(numpy.random.default_rng(0), dtype=numpy.float64)
    rng = numpy.random.default_rng(1)
    x = (rng.random((16, 784)) < 0.2).astype(numpy.float64)
    eps = rng.standard_normal((16, 6) if k is None else (k, 16, 6))
    loss, grads = engines.numpy_by_hand(vae, params, k).loss_and_grads(params, x, eps)
    want_loss, want = value_and_grad(engines.objective(vae, k).loss)(params, x, eps)
    # the same nest (Adam.step needs it) and the same numbers; 1e-12 leaves room for the other summation order
    tree_map(lambda a, b: None, grads, want, name="by-hand and minivae gradients")
    assert loss == pytest.approx(float(want_loss), rel=1e-13)
    for got, ref in zip(tree_leaves(grads), tree_leaves(want)):
        assert got.dtype == numpy.float64
        numpy.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12 * numpy.abs(ref).max())


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the processes' states from /proc")
def test_the_busy_benchmarks_hogs_run_during_the_body_and_are_gone_after():
    # benchmarks/busy.py's busy machine: processes that never sleep while the round runs, none left behind
    import busy

    with busy.hogs(2) as procs:
        assert len(procs) == 2 and all(p.poll() is None for p in procs)
        # each spends its time on the CPU: in state R (running or runnable), not S (sleeping)
        states = [Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] for p in procs]
        assert states == ["R", "R"]
    assert all(p.returncode is not None for p in procs)
