// The drawing page of `softmax serve`: draw, send the drawing to /api/predict, show what the model answers.
// Plain JavaScript with no library and nothing fetched from the internet: it works offline, in a classroom.
"use strict";

const BRUSH = 22;  // pen width on the 280-pixel pad: MNIST strokes are 2 to 3 of its 28 pixels wide

const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const strokes = [];      // each stroke is a list of [x, y] points in pad pixels; undo drops the last one
let model = null;        // GET /api/model
let result = null;       // the last answer of POST /api/predict for the drawing as it is now
let chosenClass = null;  // the class whose evidence is shown; null: the predicted one
let inFlight = false, pending = false, drawn = 0;  // one request at a time; drawn counts changes to the drawing
const collected = [];    // labelled drawings: {pixels: Uint8Array (framed image), label: class index}

// --- drawing --------------------------------------------------------------------------------------------------

function redraw() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  pen.strokeStyle = "#fff";
  pen.fillStyle = "#fff";
  pen.lineWidth = BRUSH;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  for (const points of strokes) {
    if (points.length === 1) {  // a tap is a dot
      pen.beginPath();
      pen.arc(points[0][0], points[0][1], BRUSH / 2, 0, 2 * Math.PI);
      pen.fill();
      continue;
    }
    pen.beginPath();
    pen.moveTo(points[0][0], points[0][1]);
    for (const [x, y] of points.slice(1)) pen.lineTo(x, y);
    pen.stroke();
  }
}

function where(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

let drawing = false;
pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  drawing = true;
  strokes.push([where(event)]);
  changed();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  // A pen or a finger reports more points than the frame shows: take them all, for smooth strokes.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) strokes[strokes.length - 1].push(where(e));
  changed();
});
for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, () => {
    if (!drawing) return;
    drawing = false;
    changed();
  });
}

document.getElementById("undo").addEventListener("click", () => { strokes.pop(); changed(); });
document.getElementById("clear").addEventListener("click", () => { strokes.length = 0; changed(); });
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { strokes.pop(); changed(); event.preventDefault(); }
});

function changed() {
  redraw();
  drawn += 1;
  result = null;
  document.getElementById("add").disabled = true;
  if (!strokes.length) { showNothing("Draw a digit in the black square."); return; }
  predictSoon();
}

// --- asking the model -----------------------------------------------------------------------------------------

function predictSoon() {
  if (inFlight) { pending = true; return; }  // the answer to the newest drawing is asked for when this one is in
  inFlight = true;
  const version = drawn;
  pad.toBlob(async (blob) => {
    try {
      const body = await blob.arrayBuffer();  // bytes, not the Blob: the browser's tools then show what was sent
      const response = await fetch("/api/predict", { method: "POST", headers: { "Content-Type": "image/png" }, body });
      const answer = await response.json();
      if (version === drawn) {  // an answer to an older drawing would show what is no longer there
        if (response.ok) show(answer);
        else showNothing(answer.error, true);
      }
      // another page taught (or reset) the server's model: take its weights, and ask again
      if (response.ok && answer.model_version !== model.version) pending = await reloadModel(false) || pending;
    } catch (error) {
      showNothing(`The server does not answer (${error.message}): is softmax serve still running?`, true);
    } finally {
      inFlight = false;
      if (pending) { pending = false; if (strokes.length) predictSoon(); }
    }
  }, "image/png");
}

function percent(p) { return `${(100 * p).toFixed(p >= 0.9995 || p < 0.0005 ? 0 : 1)} %`; }

function show(answer) {
  result = answer;
  const names = model.class_names;
  const top = names.indexOf(answer.label);
  document.getElementById("predicted").textContent = answer.label;
  document.getElementById("confidence").textContent = percent(answer.probability);
  document.getElementById("entropy").textContent = `entropy ${answer.entropy_bits.toFixed(2)} bits`;
  const bars = document.getElementById("bars").children;
  answer.probabilities.forEach((p, k) => {
    const bar = bars[k];
    bar.dataset.probability = String(p);
    bar.classList.toggle("top", k === top);
    bar.querySelector(".fill").style.width = `${100 * p}%`;
    bar.querySelector(".value").textContent = percent(p);
  });
  paint("seen", answer.input.flat(), (v) => [255 * v, 255 * v, 255 * v]);
  showEvidence();
  setStatus(answer.entropy_bits > 1 ? "The model is unsure: see the bars." : "");
  document.getElementById("add").disabled = false;
}

function showNothing(message, isError = false) {
  document.getElementById("predicted").textContent = "?";
  document.getElementById("confidence").textContent = "";
  document.getElementById("entropy").textContent = "";
  for (const bar of document.getElementById("bars").children) {
    delete bar.dataset.probability;
    bar.classList.remove("top");
    bar.querySelector(".fill").style.width = "0";
    bar.querySelector(".value").textContent = "";
  }
  for (const id of ["seen", "evidence", "template"]) {
    const canvas = document.getElementById(id);
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
  document.getElementById("evidence-sum").textContent = "";
  setStatus(message, isError);
}

function setStatus(message, isError = false) {
  const status = document.getElementById("status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

// --- the model's view: its input, the evidence map and the weight template ------------------------------------

function paint(id, values, colour) {
  const canvas = document.getElementById(id);
  const context = canvas.getContext("2d");
  const image = context.createImageData(canvas.width, canvas.height);
  values.forEach((v, j) => {
    const [r, g, b] = colour(v);
    image.data.set([r, g, b, 255], 4 * j);
  });
  context.putImageData(image, 0, 0);
}

// Red for a positive value, blue for a negative one, white for zero; scaled by the largest magnitude.
function diverging(values) {
  const largest = Math.max(...values.map(Math.abs)) || 1;
  return (v) => {
    const t = Math.min(1, Math.abs(v) / largest);
    return v >= 0 ? [255, 255 * (1 - t), 255 * (1 - t)] : [255 * (1 - t), 255 * (1 - 0.6 * t), 255];
  };
}

function showEvidence() {
  if (!result) return;
  const k = chosenClass ?? model.class_names.indexOf(result.label);
  const name = model.class_names[k];
  const x = result.input.flat();
  const weights = model.W[k];
  const evidence = x.map((v, j) => v * weights[j]);
  paint("evidence", evidence, diverging(evidence));
  paint("template", weights, diverging(weights));
  document.getElementById("evidence-class").textContent = name;
  document.getElementById("template-class").textContent = name;
  const score = (c) => x.reduce((a, v, j) => a + v * model.W[c][j], model.b[c]);
  const total = evidence.reduce((a, v) => a + v, 0), top = model.class_names.indexOf(result.label);
  document.getElementById("evidence-sum").textContent =
    `score of ${name}: evidence ${total.toFixed(2)} + bias ${model.b[k].toFixed(2)} = ${(total + model.b[k]).toFixed(2)}` +
    (k === top ? " (the highest: softmax turns the scores into the probabilities)"
      : `; of ${result.label}, the prediction: ${score(top).toFixed(2)}`);
  for (const [i, bar] of [...document.getElementById("bars").children].entries()) {
    bar.classList.toggle("chosen", chosenClass === i);
  }
}

// --- a labelled set of drawings, downloaded as a Keras-layout .npz built here (the server writes no file) -------

document.getElementById("add").addEventListener("click", () => {
  if (!result) return;
  const label = Number(document.getElementById("label").value);
  const pixels = Uint8Array.from(result.framed.flat(), (v) => Math.round(255 * v));
  collected.push({ pixels, label });
  const count = collected.length;
  document.getElementById("count").textContent = `${count} drawing${count === 1 ? "" : "s"}`;
  document.getElementById("download").disabled = false;
  document.getElementById("add").disabled = true;  // one drawing, added once
  updateTeachButtons();
  setStatus(`Added as ${model.class_names[label]}. Clear and draw the next one.`);
});

document.getElementById("download").addEventListener("click", () => {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(drawingsNpz());
  link.download = "drawings.npz";
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
});

// The labelled drawings as a Keras-layout .npz: what "Download .npz" saves and what /api/learn is sent.
function drawingsNpz() {
  const [height, width] = model.image_shape;
  const n = collected.length;
  const images = new Uint8Array(n * height * width);
  collected.forEach((drawing, i) => images.set(drawing.pixels, i * height * width));
  const labels = Uint8Array.from(collected, (drawing) => drawing.label);
  // Every drawing is in both halves: evaluate measures x_test; x_train makes the file a complete data set.
  const x = npy("|u1", [n, height, width], images), y = npy("|u1", [n], labels);
  return zip([
    ["x_train.npy", x], ["y_train.npy", y], ["x_test.npy", x], ["y_test.npy", y],
    ["class_names.npy", unicodeNpy(model.class_names)],
    ["framing.npy", unicodeNpy([model.framing])],  // the images are framed as predict frames them: read as they are
  ]);
}

// --- teaching the model the drawings: POST /api/learn, served from then on; reset goes back --------------------

let teaching = false;

function canTeach() { return model && model.can_teach && collected.length > 0 && !teaching; }

function setTeachStatus(message, isError = false) {
  const status = document.getElementById("teach-status");
  status.textContent = message;
  status.classList.toggle("error", isError);
}

function lessonText(lesson) {
  const pc = (p) => `${(100 * p).toFixed(1)} %`;
  const n = lesson.examples;
  let text = `Taught ${n} drawing${n === 1 ? "" : "s"} in ${lesson.seconds.toFixed(2)} s. `;
  text += lesson.after == null
    ? `Add a second drawing to measure what teaching does (the model read ${pc(lesson.before)} of them before). `
    : `Your drawings, each read by a model that was not taught it: ${pc(lesson.before)} before, ` +
      `${pc(lesson.after)} after (${lesson.folds} folds). `;
  if (lesson.test_accuracy_before != null) {
    text += `${model.dataset} test set: ${pc(lesson.test_accuracy_before)} before, ${pc(lesson.test_accuracy_after)} after.`;
  }
  return text;
}

document.getElementById("teach").addEventListener("click", async () => {
  if (!canTeach()) return;
  teaching = true;
  document.getElementById("teach").disabled = true;
  setTeachStatus(`Teaching the model ${collected.length} drawing${collected.length === 1 ? "" : "s"}…`);
  try {
    const body = await drawingsNpz().arrayBuffer();
    const response = await fetch("/api/learn", { method: "POST", headers: { "Content-Type": "application/zip" }, body });
    const answer = await response.json();
    if (!response.ok) { setTeachStatus(answer.error, true); return; }
    await reloadModel();
    setTeachStatus(lessonText(answer));
  } catch (error) {
    setTeachStatus(`The server does not answer (${error.message}): is softmax serve still running?`, true);
  } finally {
    teaching = false;
    updateTeachButtons();
  }
});

document.getElementById("reset").addEventListener("click", async () => {
  try {
    const response = await fetch("/api/reset", { method: "POST" });
    if (!response.ok) { setTeachStatus((await response.json()).error, true); return; }
    await reloadModel();
    setTeachStatus("Back to the model as the server loaded it.");
  } catch (error) {
    setTeachStatus(`The server does not answer (${error.message}): is softmax serve still running?`, true);
  }
});

document.getElementById("download-model").addEventListener("click", () => {
  const link = document.createElement("a");
  link.href = "/api/model.npz";  // the server names the file (its attachment header)
  document.body.append(link);
  link.click();
  link.remove();
});

function updateTeachButtons() {
  document.getElementById("teach").disabled = !canTeach();
  const taught = Boolean(model && model.taught);
  document.getElementById("reset").disabled = !taught;
  document.getElementById("download-model").disabled = !taught;
  document.body.dataset.taught = String(taught);
}

// The model the server answers with now (after a lesson or a reset): its weights, figures and the drawing's answer.
async function reloadModel(ask = true) {
  const response = await fetch("/api/model");
  model = await response.json();
  describeModel();
  updateTeachButtons();
  if (ask && strokes.length) predictSoon();
  return strokes.length > 0;  // (from predictSoon, which asks again once its own request is done)
}

function describeModel() {
  const accuracy = model.test_accuracy == null ? "not measured" : `${(100 * model.test_accuracy).toFixed(2)} %`;
  const taught = model.taught ? `, taught ${model.taught.examples} drawings` : "";
  document.getElementById("model-info").textContent =
    `Model ${model.model}${taught}: trained on ${model.dataset}, preprocessing ${model.preprocess}, test accuracy ${accuracy}`;
}

// A .npy file (format 1.0): magic, header length, a Python-literal header padded to 64 bytes, then the data.
function npy(descr, shape, data) {
  const dims = shape.join(", ") + (shape.length === 1 ? "," : "");
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${dims}), }`;
  header += " ".repeat((64 - ((10 + header.length + 1) % 64)) % 64) + "\n";
  const bytes = new Uint8Array(10 + header.length + data.byteLength);
  bytes.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);  // \x93NUMPY, version 1.0
  new DataView(bytes.buffer).setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) bytes[10 + i] = header.charCodeAt(i);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), 10 + header.length);
  return bytes;
}

// Strings as numpy's '<U{n}': n UTF-32 code units per string, little-endian, padded with zeros.
function unicodeNpy(strings) {
  const points = strings.map((s) => Array.from(s, (c) => c.codePointAt(0)));
  const longest = Math.max(1, ...points.map((p) => p.length));
  const data = new Uint32Array(strings.length * longest);
  points.forEach((p, i) => data.set(p, i * longest));
  const bytes = new Uint8Array(data.buffer);
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {  // a big-endian machine: swap to little-endian
    const view = new DataView(data.buffer);
    for (let i = 0; i < data.length; i++) view.setUint32(4 * i, data[i], true);
  }
  return npy(`<U${longest}`, [strings.length], bytes);
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// A zip archive of stored (uncompressed) members, which is what np.savez writes and np.load reads.
function zip(files) {
  const encoder = new TextEncoder();
  const parts = [], directory = [];
  let offset = 0;
  for (const [name, data] of files) {
    const nameBytes = encoder.encode(name), crc = crc32(data);
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);           // version needed: 2.0
    local.setUint16(12, 0x21, true);        // date: 1 January 1980, as zip's epoch
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, nameBytes.length, true);
    const central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, 20, true);
    central.setUint16(6, 20, true);
    central.setUint16(14, 0x21, true);
    central.setUint32(16, crc, true);
    central.setUint32(20, data.length, true);
    central.setUint32(24, data.length, true);
    central.setUint16(28, nameBytes.length, true);
    central.setUint32(42, offset, true);
    parts.push(new Uint8Array(local.buffer), nameBytes, data);
    directory.push(new Uint8Array(central.buffer), nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const size = directory.reduce((total, part) => total + part.length, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...directory, new Uint8Array(end.buffer)]);
}

// --- start: describe the model, lay out one bar per class ----------------------------------------------------

async function start() {
  redraw();
  try {
    const response = await fetch("/api/model");
    model = await response.json();
  } catch (error) {
    setStatus(`Cannot reach the server (${error.message}): is softmax serve still running?`, true);
    return;
  }
  describeModel();
  if (!model.can_teach) setTeachStatus(`This model cannot be taught here: ${model.teach_note}.`);
  updateTeachButtons();
  document.getElementById("framing-note").textContent = model.framing === "mnist"
    ? "as MNIST's digits were (20×20 box, centre of mass at the centre)" : "to fill the frame, as its data set's images";
  if (model.preprocess === "deskew") document.getElementById("framing-note").textContent += ", then deskewed";
  const [height, width] = model.image_shape;
  for (const id of ["seen", "evidence", "template"]) {
    document.getElementById(id).width = width;
    document.getElementById(id).height = height;
  }
  const bars = document.getElementById("bars"), choice = document.getElementById("label");
  model.class_names.forEach((name, k) => {
    const bar = document.createElement("li");
    bar.dataset.class = name;
    bar.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    bar.querySelector(".name").textContent = name;
    bar.addEventListener("click", () => { chosenClass = chosenClass === k ? null : k; showEvidence(); });
    bars.append(bar);
    choice.append(new Option(name, String(k)));
  });
  document.body.dataset.ready = "true";
}

start();
