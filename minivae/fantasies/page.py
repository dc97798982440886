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
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy

from minivae.backend import to_numpy
from minivae.checks import check_keys
from minivae.files import atomic_write
from minivae.models import VAE, unit_activity

# the half-width of the pad beyond which codes make no sense under the prior N(0, I): |z| > 10 has density
# below e^-50 there, and every unit of extent costs the page grid lines (codes of 1e7 would never finish drawing)
MAX_EXTENT = 10.0

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
    check_keys(params, {"decoder": ("hidden", "logits")}, "VAE with a bernoulli decoder")
    dec = params["decoder"]
    layers = [(W, b, vae.activation) for W, b in dec["hidden"]] + [(*dec["logits"], "none")]
    width = vae.z_dim
    out = []
    for W, b, act in layers:
        W, b = to_numpy(W), to_numpy(b)
        if not (numpy.all(numpy.isfinite(W)) and numpy.all(numpy.isfinite(b))):
            raise ValueError(f"params hold NaN or infinite weights in decoder layer {len(out) + 1}, so the page "
                             "would draw NaN pixels; pass params from a run whose loss stayed finite.")
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
    Without codes, units keep their order. The pad's half-width is max(3, the 99th percentile of |μ|), and
    at most ``MAX_EXTENT`` (10 prior standard deviations): wider codes are a ``ValueError``.
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
    spread = float(numpy.percentile(numpy.abs(codes), 99))
    if not spread <= MAX_EXTENT:
        raise ValueError(f"codes reach |μ| = {spread:.3g} (the 99th percentile over the pad's units), beyond "
                         f"±{MAX_EXTENT:g}, where the prior N(0, I) has no mass; the pad could not be drawn. Pass "
                         "the encoder means of a trained VAE (codes this wide come from a diverged encoder).")
    view["extent"] = float(max(3.0, numpy.ceil(2 * spread) / 2))
    view["codes"] = numpy.round(codes[:max_points].astype(float), 3).ravel().tolist()
    if labels is not None:
        view["labels"] = [int(v) for v in to_numpy(labels)[:max_points]]
    return view


def _refuse_undrawable(z_dim: int, codes: Any, labels: Any) -> None:
    """Raise one ``ValueError`` unless ``codes`` is ``(N, z_dim)`` and finite, and ``labels`` N class numbers."""
    if codes is None:
        if labels is not None:
            raise ValueError("labels were given without codes; pass the encoder means as codes as well.")
        return
    shape = numpy.shape(codes)
    if len(shape) != 2 or shape[1] != z_dim:
        raise ValueError(f"codes has shape {shape}, but this model's codes are (N, {z_dim}): pass the encoder "
                         "means vae.encode(params, x)[0].")
    bad = int(numpy.size(codes) - numpy.count_nonzero(numpy.isfinite(to_numpy(codes))))
    if bad:
        raise ValueError(f"codes hold {bad} NaN or infinite values, which the page cannot place; pass the encoder "
                         "means of a trained VAE (a NaN code means the encoder diverged).")
    if labels is None:
        return
    if numpy.shape(labels) != (shape[0],):
        raise ValueError(f"labels has shape {numpy.shape(labels)}; it needs one integer per code, ({shape[0]},).")
    values = to_numpy(labels)
    if values.dtype.kind not in "iub" and not numpy.all(numpy.isfinite(values) & (values == numpy.round(values))):
        raise ValueError("labels must be class numbers 0, 1, 2, ... (integers); got values that are not.")
    if numpy.size(values) and values.min() < 0:
        raise ValueError(f"labels must be class numbers 0, 1, 2, ..., got {values.min()}.")


def start_code(z_dim: int, codes: Any = None, labels: Any = None, start: Any = None) -> tuple[list, str]:
    r"""Where the page opens, and its name on the page: ``start`` if given, else the first of ``codes``.

    Kingma's demo opens on a digit, not on the grey average at z = 0: without ``start`` the page opens at
    the encoder mean μ(x₁) of the first digit in ``codes``, and at z = 0 (the prior's mean) only when there
    are no codes. ``start`` ``(z_dim,)`` must be finite and within ±``MAX_EXTENT``.
    """
    if start is None:
        if codes is None or len(codes) == 0:
            return [0.0] * z_dim, "z = 0, the prior's mean"
        digit = None if labels is None else int(to_numpy(labels)[0])
        # "an 8", "a 7": the article the digit's spoken name takes
        label = "" if digit is None else f", {'an' if digit == 8 else 'a'} {digit}"
        return [float(v) for v in to_numpy(codes)[0]], f"the encoder mean of the first test digit{label}"
    z = numpy.asarray(to_numpy(start), dtype=float)
    if z.shape != (z_dim,):
        raise ValueError(f"start has shape {z.shape}; it is one point of this model's latent space, ({z_dim},).")
    if not numpy.all(numpy.abs(z) <= MAX_EXTENT):
        raise ValueError(f"start must be finite and within ±{MAX_EXTENT:g} (where the prior N(0, I) has mass), "
                         f"got {z.tolist()}; pass an encoder mean, such as vae.encode(params, x)[0][0].")
    return z.tolist(), "the start code given to the page"


def fantasies_html(vae: VAE, params: dict, codes: Any = None, labels: Any = None, title: str = "",
                   n_sliders: int = 10, max_points: int = 5000, start: Any = None) -> str:
    r"""The page: p = σ(f_θ(z)) for the z you pick, drawn as a 28 × 28 digit (Kingma's "digit fantasies").

    Shan, Variational Autoencoder: the demo slide. ``codes`` ``(N, z_dim)`` are encoder means to scatter
    behind the pad (at most ``max_points`` of them) and to rank the units by; ``labels`` ``(N,)`` colour them.
    The page opens at :func:`start_code`. Text (``title``) goes in as text, never as markup.
    """
    if vae.x_dim != 784:
        raise ValueError(f"the fantasies page draws 28 × 28 digits, so x_dim must be 784; this VAE has {vae.x_dim}.")
    _refuse_undrawable(vae.z_dim, codes, labels)
    sizes = " → ".join(str(s) for s in (*reversed(vae.hidden), vae.x_dim))
    z, note = start_code(vae.z_dim, codes, labels, start)
    model = {"z_dim": vae.z_dim, "layers": decoder_layers(vae, params), "colors": TAB10,
             "title": title or f"the decoder of a VAE with a {vae.z_dim}-D latent space",
             "sizes": f"z ({vae.z_dim}-D) → {sizes} pixels ({vae.activation} hidden layers, then σ of the logits)",
             "start": z, "start_note": note, **latent_view(vae.z_dim, codes, labels, n_sliders, max_points)}
    return _fill(_asset("page.html"), {"STYLE": _asset("page.css"), "SCRIPT": _asset("page.js"),
                                       "MODEL": _script_json(model)})


def write_fantasies(path: str | os.PathLike, vae: VAE, params: dict, codes: Any = None, labels: Any = None,
                    title: str = "", n_sliders: int = 10, max_points: int = 5000, start: Any = None) -> Path:
    r"""Write :func:`fantasies_html` to ``path`` atomically and return the path (open it with ``file://``)."""
    page = fantasies_html(vae, params, codes, labels, title, n_sliders, max_points, start).encode("utf-8")
    atomic_write(path, lambda f: f.write(page))
    return Path(path)


def _script_json(model: dict) -> str:
    """``model`` as JSON that is safe inside a ``<script>`` element: strict (no NaN), with no ``<``, ``>``, ``&``.

    Inside a script element ``</script>`` would end it and ``<!--<script>`` would swallow the next one, so
    every ``<`` (and ``>``, ``&``) is written as its JSON escape \\u003c; JSON.parse reads the same text back.
    """
    blob = json.dumps(model, separators=(",", ":"), allow_nan=False)
    return blob.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _asset(name: str) -> str:
    """One of the page's files shipped with the package: ``page.html``, ``page.css`` or ``page.js``."""
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def _fill(template: str, parts: dict) -> str:
    """``template`` with each ``__NAME__`` replaced by ``parts[NAME]`` in one pass (no part is scanned again)."""
    return re.sub(r"__([A-Z]+)__", lambda m: parts[m.group(1)], template)
