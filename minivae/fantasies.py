r"""Digit fantasies: a trained decoder p = σ(f_θ(z)) as one self-contained web page you can play with.

Shan, Variational Autoencoder: the demo slide "Digit Fantasies by a Deep Generative Model" (Kingma's
interactive SGVB demo on MNIST). You move the latent variables z and watch the decoded digit change.

:func:`write_fantasies` writes one HTML file that opens from disk, with no network and no external library.
The decoder's weights are embedded as base64 float32 and run in plain JavaScript: the same MLP as
:meth:`minivae.models.VAE.decode` (hidden layers h_l = a(h_{l-1} W_l + b_l), then the logits head
l = h W + b), then p = σ(l), drawn as a 28 × 28 image. The arithmetic is float64 (JavaScript's Number), so
the page agrees with NumPy's ``sigmoid(vae.decode(params, z))`` for a float64 z to about 1e-15.

On the page:

- a latent pad: click or drag a point in z-space (the two most active units of a higher-D model), with the
  encoder means of test digits scattered behind it, coloured by label;
- sliders over the most active latent units (:func:`minivae.models.unit_activity`), for a model with z_dim > 2;
- a "sample" button that draws z ~ N(0, I).

The testing hook, which outside checks rely on: ``fantasies.html?z=v1,v2,...`` (one value per latent
dimension) sets z on load. After every render the page writes the 784 decoded probabilities, row-major, as
space-separated numbers (``toPrecision(9)``) into the element ``id="pixels"``; a malformed ``z`` leaves it
empty and says why in ``id="status"``.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import numpy

from minivae.backend import to_numpy
from minivae.files import atomic_write
from minivae.models import VAE, unit_activity

# matplotlib's tab10, the colours of minivae.plotting.save_latent_scatter (digit 0 to 9)
TAB10 = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
         "#17becf")


def float32_base64(a: Any) -> str:
    r"""base64 of the little-endian float32 bytes of ``a``, row-major (what the page's ``Float32Array`` reads)."""
    return base64.b64encode(numpy.ascontiguousarray(to_numpy(a), dtype="<f4").tobytes()).decode("ascii")


def decoder_layers(vae: VAE, params: dict) -> list[dict]:
    r"""The decoder's layers h_l = a(h_{l-1} W_l + b_l), then l = h W + b, as the page embeds them.

    Shan, Variational Autoencoder: the decoder p_θ(x|z) = Bern(σ(l)). Each layer is a dict with ``n_in``,
    ``n_out``, ``act`` (the activation, ``"none"`` for the logits head) and ``W`` ``(n_in, n_out)`` and
    ``b`` ``(n_out,)`` as :func:`float32_base64` strings.
    """
    if vae.likelihood != "bernoulli":
        raise ValueError(f"the fantasies page draws σ(logits) of a Bernoulli decoder; this VAE's likelihood is "
                         f"{vae.likelihood!r}: build it with likelihood='bernoulli'.")
    dec = params["decoder"]
    layers = [(W, b, vae.activation) for W, b in dec["hidden"]] + [(*dec["logits"], "none")]
    width = vae.z_dim
    out = []
    for W, b, act in layers:
        W, b = to_numpy(W), to_numpy(b)
        if W.ndim != 2 or W.shape[0] != width or b.shape != (W.shape[1],):
            raise ValueError(f"params do not fit this VAE: a decoder layer has W {W.shape} and b {b.shape} after "
                             f"a layer of width {width}; build params with this model's init.")
        out.append({"n_in": W.shape[0], "n_out": W.shape[1], "act": act, "W": float32_base64(W),
                    "b": float32_base64(b)})
        width = W.shape[1]
    if width != vae.x_dim:
        raise ValueError(f"params do not fit this VAE: its decoder draws {width} pixels, not {vae.x_dim}; build "
                         "params with this model's init.")
    return out


def latent_view(z_dim: int, codes: Any = None, labels: Any = None, n_sliders: int = 10,
                max_points: int = 5000) -> dict:
    r"""What the page shows of z-space: the pad's two axes, the slider units, the scatter and its extent.

    Burda et al. (IWAE), active units: units are ranked by A_j = Var_x(μ_j(x)) over ``codes`` (the encoder
    means, ``(N, z_dim)``); the pad spans the two most active, the sliders the ``n_sliders`` most active.
    Without codes, units keep their order. The pad's half-width is max(3, the 99th percentile of |μ|).
    """
    if z_dim < 2:
        raise ValueError(f"the fantasies page needs a latent space of at least 2 dimensions; z_dim is {z_dim}.")
    activity = None if codes is None else unit_activity(codes)
    order = list(range(z_dim)) if activity is None else [int(j) for j in numpy.argsort(-activity, kind="stable")]
    # a 2-D model keeps its own axes (z1 across, z2 up); a higher-D one shows its two most active units
    axes = [0, 1] if z_dim == 2 else order[:2]
    view = {"axes": axes, "units": order[:n_sliders] if z_dim > 2 else [], "extent": 3.0, "codes": [],
            "labels": [], "activity": None if activity is None else [float(a) for a in activity]}
    if codes is None:
        return view
    codes = to_numpy(codes)[:, axes]
    # half-width of the pad: 3 prior standard deviations, or more when the codes spread further
    view["extent"] = float(max(3.0, numpy.ceil(2 * numpy.percentile(numpy.abs(codes), 99)) / 2))
    view["codes"] = numpy.round(codes[:max_points].astype(float), 3).ravel().tolist()
    if labels is not None:
        view["labels"] = [int(v) for v in to_numpy(labels)[:max_points]]
    return view


def check_codes(z_dim: int, codes: Any, labels: Any) -> None:
    r"""Raise a ``ValueError`` unless ``codes`` is ``(N, z_dim)`` and ``labels`` (if given) has N integers."""
    if codes is None:
        if labels is not None:
            raise ValueError("labels were given without codes; pass the encoder means as codes as well.")
        return
    shape = numpy.shape(codes)
    if len(shape) != 2 or shape[1] != z_dim:
        raise ValueError(f"codes has shape {shape}, but this model's codes are (N, {z_dim}): pass the encoder "
                         "means vae.encode(params, x)[0].")
    if labels is not None and numpy.shape(labels) != (shape[0],):
        raise ValueError(f"labels has shape {numpy.shape(labels)}; it needs one integer per code, ({shape[0]},).")


def fantasies_html(vae: VAE, params: dict, codes: Any = None, labels: Any = None, title: str = "",
                   n_sliders: int = 10, max_points: int = 5000) -> str:
    r"""The page: p = σ(f_θ(z)) for the z you pick, drawn as a 28 × 28 digit (Kingma's "digit fantasies").

    Shan, Variational Autoencoder: the demo slide. ``codes`` ``(N, z_dim)`` are encoder means to scatter
    behind the pad (at most ``max_points`` of them) and to rank the units by; ``labels`` ``(N,)`` colour them.
    """
    if vae.x_dim != 784:
        raise ValueError(f"the fantasies page draws 28 × 28 digits, so x_dim must be 784; this VAE has {vae.x_dim}.")
    check_codes(vae.z_dim, codes, labels)
    sizes = " → ".join(str(s) for s in (*reversed(vae.hidden), vae.x_dim))
    model = {"z_dim": vae.z_dim, "layers": decoder_layers(vae, params), "colors": TAB10,
             "title": title or f"the decoder of a VAE with a {vae.z_dim}-D latent space",
             "sizes": f"z ({vae.z_dim}-D) → {sizes} pixels ({vae.activation} hidden layers, then σ of the logits)",
             **latent_view(vae.z_dim, codes, labels, n_sliders, max_points)}
    # "</" must not appear inside a <script> element; JSON allows "<\/" for it
    blob = json.dumps(model, separators=(",", ":")).replace("</", "<\\/")
    return PAGE.replace("__STYLE__", STYLE).replace("__SCRIPT__", SCRIPT).replace("__MODEL__", blob)


def write_fantasies(path: str | os.PathLike, vae: VAE, params: dict, codes: Any = None, labels: Any = None,
                    title: str = "", n_sliders: int = 10, max_points: int = 5000) -> Path:
    r"""Write :func:`fantasies_html` to ``path`` atomically and return the path (open it with ``file://``)."""
    page = fantasies_html(vae, params, codes, labels, title, n_sliders, max_points).encode("utf-8")
    atomic_write(path, lambda f: f.write(page))
    return Path(path)


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Digit fantasies</title>
<style>__STYLE__</style>
</head>
<body>
<h1>Digit fantasies</h1>
<p id="subtitle"></p>
<div class="row">
  <figure>
    <canvas id="pad" width="440" height="440"></canvas>
    <figcaption id="padcap"></figcaption>
    <div id="legend"></div>
  </figure>
  <figure>
    <canvas id="digit" width="280" height="280"></canvas>
    <figcaption>p = σ(decoder(z)), 28 × 28 pixels</figcaption>
    <div id="zread"></div>
    <p><button id="sample">sample z ~ N(0, I)</button> <button id="origin">z = 0</button></p>
    <div id="sliders"></div>
  </figure>
</div>
<p id="status"></p>
<p class="credit">After the lecture's demo slide, "Digit Fantasies by a Deep Generative Model" (Kingma's
interactive SGVB demo). Written by minivae.fantasies; it runs offline, in this file alone.</p>
<details>
  <summary>the 784 probabilities, row by row (the testing hook: open this page as
  <code>fantasies.html?z=v1,v2,...</code>)</summary>
  <pre id="pixels"></pre>
</details>
<script type="application/json" id="model">__MODEL__</script>
<script>__SCRIPT__</script>
</body>
</html>
"""

STYLE = """
body { font: 15px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 60em; }
h1 { font-size: 1.5em; margin: 0 0 0.2em 0; }
.row { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; }
canvas { border: 1px solid #999; display: block; }
#pad { cursor: crosshair; touch-action: none; }
#digit { image-rendering: pixelated; }
figcaption, #zread, #status { color: #555; font-size: 0.9em; margin-top: 0.3em; max-width: 440px; }
#zread { font-family: ui-monospace, monospace; max-width: 280px; }
#legend span { display: inline-block; margin-right: 0.6em; font-size: 0.9em; }
#legend i { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.2em; border-radius: 50%; }
.slider { display: flex; align-items: center; gap: 0.5em; font-size: 0.85em; }
.slider label { width: 8.5em; font-family: ui-monospace, monospace; }
.slider input { width: 11em; }
#status.error { color: #b00; }
.credit { color: #777; font-size: 0.85em; }
pre#pixels { white-space: pre-wrap; word-break: break-all; font-size: 0.75em; max-width: 60em; }
"""

SCRIPT = r"""
"use strict";
const M = JSON.parse(document.getElementById("model").textContent);

// the weights: base64 -> bytes -> little-endian float32
function floats(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Float32Array(bytes.buffer);
}
const LAYERS = M.layers.map((l) => ({ nIn: l.n_in, nOut: l.n_out, act: l.act, W: floats(l.W), b: floats(l.b) }));
const ACT = {
  none: (x) => x,
  relu: (x) => (x > 0 ? x : 0),
  tanh: Math.tanh,
  softplus: (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x))),
};

// p = sigmoid(f(z)): h_l = a(h_{l-1} W_l + b_l), logits l = h W + b, in float64 (Number)
function decode(z) {
  let h = Float64Array.from(z);
  for (const L of LAYERS) {
    const out = Float64Array.from(L.b);
    for (let i = 0; i < L.nIn; i++) {
      const hi = h[i];
      if (hi === 0) continue;
      const row = i * L.nOut;
      for (let j = 0; j < L.nOut; j++) out[j] += hi * L.W[row + j];
    }
    const f = ACT[L.act];
    for (let j = 0; j < L.nOut; j++) out[j] = f(out[j]);
    h = out;
  }
  // sigma(l) = 1 / (1 + e^{-l}), as minivae.nn.sigmoid writes it (0 where e^{-l} overflows)
  return h.map((l) => 1 / (1 + Math.exp(-l)));
}

const z = new Array(M.z_dim).fill(0);
const [A, B] = M.axes;
const R = M.extent;
const pad = document.getElementById("pad");
const padCtx = pad.getContext("2d");
const digitCtx = document.getElementById("digit").getContext("2d");
const pixels = document.getElementById("pixels");
const status = document.getElementById("status");
const sliders = {};

function padX(v) { return ((v + R) / (2 * R)) * pad.width; }
function padY(v) { return ((R - v) / (2 * R)) * pad.height; }

// the pad's background, drawn once: grid, axes and the test digits' codes
const background = document.createElement("canvas");
background.width = pad.width;
background.height = pad.height;
(function drawBackground() {
  const g = background.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, pad.width, pad.height);
  g.strokeStyle = "#eee";
  for (let t = Math.ceil(-R); t <= R; t++) {
    g.beginPath(); g.moveTo(padX(t), 0); g.lineTo(padX(t), pad.height); g.stroke();
    g.beginPath(); g.moveTo(0, padY(t)); g.lineTo(pad.width, padY(t)); g.stroke();
  }
  g.strokeStyle = "#bbb";
  g.beginPath(); g.moveTo(padX(0), 0); g.lineTo(padX(0), pad.height); g.stroke();
  g.beginPath(); g.moveTo(0, padY(0)); g.lineTo(pad.width, padY(0)); g.stroke();
  g.globalAlpha = 0.55;
  for (let n = 0; 2 * n < M.codes.length; n++) {
    g.fillStyle = M.labels.length ? M.colors[M.labels[n] % 10] : "#888";
    g.fillRect(padX(M.codes[2 * n]) - 1.5, padY(M.codes[2 * n + 1]) - 1.5, 3, 3);
  }
  g.globalAlpha = 1;
  g.fillStyle = "#666";
  g.font = "12px sans-serif";
  for (let t = Math.ceil(-R); t <= R; t++) {
    if (t !== 0) { g.fillText(String(t), padX(t) + 2, padY(0) - 3); g.fillText(String(t), padX(0) + 3, padY(t) - 2); }
  }
  g.font = "bold 13px sans-serif";
  g.fillText("z" + (A + 1) + " →", pad.width - 34, padY(0) + 15);
  g.fillText("z" + (B + 1) + " ↑", padX(0) - 34, 14);
})();

function drawPad() {
  padCtx.drawImage(background, 0, 0);
  const x = padX(z[A]), y = padY(z[B]);
  padCtx.strokeStyle = "#000";
  padCtx.lineWidth = 2;
  padCtx.beginPath(); padCtx.arc(x, y, 7, 0, 2 * Math.PI); padCtx.stroke();
  padCtx.beginPath();
  padCtx.moveTo(x - 11, y); padCtx.lineTo(x + 11, y); padCtx.moveTo(x, y - 11); padCtx.lineTo(x, y + 11);
  padCtx.lineWidth = 1; padCtx.stroke();
}

// a pixel of probability p is drawn with ink 1 - p (dark on white, as minivae's figures)
function drawDigit(p) {
  const s = digitCtx.canvas.width / 28;
  for (let r = 0; r < 28; r++) {
    for (let c = 0; c < 28; c++) {
      const v = Math.round(255 * (1 - p[28 * r + c]));
      digitCtx.fillStyle = "rgb(" + v + "," + v + "," + v + ")";
      digitCtx.fillRect(c * s, r * s, s, s);
    }
  }
}

function render() {
  const p = decode(z);
  drawDigit(p);
  drawPad();
  for (const j in sliders) { sliders[j].input.value = z[j]; sliders[j].value.textContent = z[j].toFixed(2); }
  document.getElementById("zread").textContent = "z = (" + z.map((v) => v.toFixed(2)).join(", ") + ")";
  pixels.textContent = Array.from(p, (v) => v.toPrecision(9)).join(" ");
  pixels.dataset.z = z.join(",");
}

function moveTo(event) {
  const box = pad.getBoundingClientRect();
  z[A] = ((event.clientX - box.left) / box.width) * 2 * R - R;
  z[B] = R - ((event.clientY - box.top) / box.height) * 2 * R;
  render();
}
let dragging = false;
pad.addEventListener("pointerdown", (e) => {
  dragging = true;
  // keep receiving the drag outside the pad (a synthetic event has no pointer to capture)
  try { pad.setPointerCapture(e.pointerId); } catch (error) { /* nothing to capture */ }
  moveTo(e);
});
pad.addEventListener("pointermove", (e) => { if (dragging) moveTo(e); });
pad.addEventListener("pointerup", () => { dragging = false; });

// z ~ N(0, I) by Box-Muller
function gauss() {
  let u = 0;
  while (u === 0) u = Math.random();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * Math.random());
}
document.getElementById("sample").addEventListener("click", () => {
  for (let j = 0; j < M.z_dim; j++) z[j] = gauss();
  render();
});
document.getElementById("origin").addEventListener("click", () => { z.fill(0); render(); });

// sliders over the most active units (higher-D models)
for (const j of M.units) {
  const row = document.createElement("div");
  row.className = "slider";
  const label = document.createElement("label");
  label.textContent = "z" + (j + 1) + (M.activity ? " (A=" + M.activity[j].toFixed(2) + ")" : "");
  const input = document.createElement("input");
  Object.assign(input, { type: "range", min: -R, max: R, step: 0.01, value: 0 });
  const value = document.createElement("span");
  input.addEventListener("input", () => { z[j] = Number(input.value); render(); });
  row.append(label, input, value);
  document.getElementById("sliders").append(row);
  sliders[j] = { input, value };
}

// captions
document.getElementById("subtitle").textContent =
  M.title.charAt(0).toUpperCase() + M.title.slice(1) + ": " + M.sizes + ". Move z and watch the digit change.";
const nCodes = M.codes.length / 2;
let cap = "Click or drag a point in z-space: horizontal z" + (A + 1) + ", vertical z" + (B + 1) + ".";
if (M.z_dim > 2) {
  cap += " The pad and the sliders hold the most active of the " + M.z_dim + " units (A = Var of the encoder" +
    " mean); the others stay where the sample button put them.";
}
if (nCodes) {
  cap += " Dots: the encoder means of " + nCodes.toLocaleString("en-US") + " test digits" +
    (M.labels.length ? ", coloured by label." : ".");
}
document.getElementById("padcap").textContent = cap;
if (M.labels.length) {
  document.getElementById("legend").innerHTML =
    M.colors.map((c, d) => '<span><i style="background:' + c + '"></i>' + d + "</span>").join("");
}

// the testing hook: ?z=v1,v2,... sets z on load
const query = new URLSearchParams(location.search).get("z");
let bad = null;
if (query !== null) {
  const parts = query.split(",");
  const values = parts.map((s) => (s.trim() === "" ? NaN : Number(s)));
  if (values.length !== M.z_dim || values.some((v) => !Number.isFinite(v))) {
    bad = "?z= needs " + M.z_dim + " comma-separated numbers, one per latent dimension; got \"" + query + "\".";
  } else {
    values.forEach((v, j) => { z[j] = v; });
  }
}
render();
if (bad !== null) {
  pixels.textContent = "";
  status.textContent = bad;
  status.className = "error";
}
"""
