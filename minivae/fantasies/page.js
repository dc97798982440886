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

// the page opens on a digit: the start code Python chose (an encoder mean), named in the pad's caption
const z = M.start.slice();
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
cap += " The page opened at " + M.start_note + ".";
if (M.z_dim > 2) {
  cap += " The pad and the sliders hold the most active of the " + M.z_dim + " units (A = Var of the encoder" +
    " mean); the others keep the values the page opened with, or the last sample's.";
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
