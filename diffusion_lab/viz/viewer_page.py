"""The HTML/CSS/JS of ``viewer.html`` (kept apart from the Python that fills it in).

Kept as a Python string rather than a .html file so it ships with the package without package-data
configuration. Placeholders: ``__TITLE__`` (HTML-escaped title) and ``__DATA__`` (the trajectory
JSON with ``<``, ``>`` and ``&`` already written as ``\\u003c`` ... so no text can close the script).

Model text only ever reaches the page through ``textContent``: the script never uses innerHTML.
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<link rel="icon" href="data:,">
<title>__TITLE__</title>
<style>
  :root { --ink: #212529; --muted: #6c757d; --prompt: #dbeafe; --prompt-ink: #17408c;
          --new: #fdd864; --mask: #ced0d4; --bar: #40966e; --panel: #f6f7f9; }
  * { box-sizing: border-box; }
  body { margin: 0; padding: 24px; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif;
         color: var(--ink); background: #fff; }
  h1 { font-size: 1.35rem; margin: 0 0 4px; }
  .sub { color: var(--muted); margin: 0 0 16px; }
  .controls { display: flex; flex-wrap: wrap; gap: 10px; align-items: center; margin-bottom: 12px; }
  button { font: inherit; padding: 4px 12px; border: 1px solid #c3c7cd; border-radius: 6px;
           background: #fff; cursor: pointer; }
  button:hover { background: var(--panel); }
  #slider { flex: 1 1 240px; }
  #step-label { font-variant-numeric: tabular-nums; min-width: 9em; }
  .bar { height: 8px; border-radius: 4px; background: #e2e4e8; overflow: hidden; }
  #progress-fill { height: 100%; width: 0; background: var(--bar); transition: width .15s; }
  #stats { color: var(--muted); font-size: .9rem; margin: 4px 0 12px; }
  .tokens { white-space: pre-wrap; word-wrap: break-word; font-size: 1.1rem; line-height: 2; }
  #canvas { padding: 16px; background: var(--panel); border-radius: 8px; min-height: 4em; }
  .tok { border-radius: 4px; padding: 1px 0; }
  .tok.prompt { background: var(--prompt); color: var(--prompt-ink); }
  .tok.new { background: var(--new); }
  .tok.mask { display: inline-block; width: 2.2em; height: 1.1em; vertical-align: middle;
              background: var(--mask); }
  .legend { display: flex; flex-wrap: wrap; gap: 16px; padding: 0; margin: 12px 0; list-style: none;
            color: var(--muted); font-size: .9rem; }
  .legend .tok { padding: 1px 6px; }
  .legend .tok.mask { width: 1.6em; padding: 0; }
  #frames { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 12px; }
  #frames[hidden], #single[hidden] { display: none; }
  .cell { margin: 0; padding: 8px; border: 1px solid #e2e4e8; border-radius: 8px; cursor: pointer; }
  .cell.current { border-color: var(--bar); box-shadow: 0 0 0 2px var(--bar); }
  .cell figcaption { color: var(--muted); font-size: .8rem; margin-bottom: 4px; }
  .cell img { width: 100%; display: block; }
  .cell .tokens { font-size: .75rem; line-height: 1.7; }
  .keys { color: var(--muted); font-size: .85rem; }
  kbd { border: 1px solid #c3c7cd; border-bottom-width: 2px; border-radius: 4px; padding: 0 4px;
        font: .8rem ui-monospace, monospace; }
</style>
</head>
<body>
<h1 id="title"></h1>
<p class="sub" id="subtitle"></p>
<div class="controls">
  <button id="play" type="button" data-playing="false">Play</button>
  <button id="replay" type="button">Replay</button>
  <input id="slider" type="range" min="0" max="0" value="0" step="1" aria-label="step">
  <span id="step-label"></span>
  <button id="toggle-frames" type="button" aria-pressed="false">All frames</button>
</div>
<div class="bar"><div id="progress-fill"></div></div>
<div id="stats"></div>
<section id="single"><div id="canvas" class="tokens" aria-live="polite"></div></section>
<section id="frames" hidden></section>
<ul class="legend">
  <li><span class="tok prompt">prompt</span></li>
  <li><span class="tok new">revealed this step</span></li>
  <li><span class="tok old">revealed earlier</span></li>
  <li><span class="tok mask"></span> still masked</li>
</ul>
<p class="keys"><kbd>Space</kbd> play/pause &middot; <kbd>R</kbd> replay &middot; <kbd>F</kbd> all frames
  &middot; <kbd>&larr;</kbd> <kbd>&rarr;</kbd> step</p>
<script type="application/json" id="trajectory-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trajectory-data").textContent);
  var frames = data.frames, last = frames.length - 1, current = 0, timer = null;
  function el(id) { return document.getElementById(id); }
  var slider = el("slider"), play = el("play"), grid = el("frames"), single = el("single");

  // One token: leading spaces as plain text (so highlights cover the word), the word in a span.
  function appendToken(parent, piece, status) {
    var span = document.createElement("span");
    span.className = "tok " + status;
    if (status === "mask") {
      parent.appendChild(document.createTextNode(" "));
      parent.appendChild(span);
      return;
    }
    var lead = piece.match(/^[ \\t]*/)[0], rest = piece.slice(lead.length).replace(/\\r/g, "");
    if (lead) parent.appendChild(document.createTextNode(lead));
    span.textContent = rest.replace(/\\n/g, "\\u21b5");
    parent.appendChild(span);
    if (rest.indexOf("\\n") >= 0) parent.appendChild(document.createTextNode("\\n"));
  }
  function fillTokens(parent, frame) {
    parent.textContent = "";
    frame.tokens.forEach(function (t) { appendToken(parent, t[0], t[1]); });
  }

  function show(step) {
    current = Math.max(0, Math.min(last, step));
    var frame = frames[current];
    slider.value = String(current);
    el("step-label").textContent = "step " + frame.step + " / " + frame.total_steps;
    el("stats").textContent = frame.caption;
    el("progress-fill").style.width = (100 * frame.revealed).toFixed(1) + "%";
    var canvas = el("canvas");
    fillTokens(canvas, frame);
    canvas.setAttribute("data-step", String(current));
    Array.prototype.forEach.call(grid.children, function (cell, i) {
      cell.classList.toggle("current", i === current);
    });
  }
  function setPlaying(on) {
    if (timer !== null) { clearInterval(timer); timer = null; }
    if (on) {
      if (current >= last) show(0);
      timer = setInterval(function () {
        if (current >= last) { setPlaying(false); return; }
        show(current + 1);
      }, data.frame_ms);
    }
    play.textContent = on ? "Pause" : "Play";
    play.setAttribute("data-playing", on ? "true" : "false");
  }
  function replay() { setPlaying(false); show(0); setPlaying(true); }
  function toggleFrames() {
    var showGrid = grid.hidden;
    grid.hidden = !showGrid;
    single.hidden = showGrid;
    var button = el("toggle-frames");
    button.setAttribute("aria-pressed", showGrid ? "true" : "false");
    button.textContent = showGrid ? "Single frame" : "All frames";
  }
  function buildGrid() {
    frames.forEach(function (frame, i) {
      var cell = document.createElement("figure"), cap = document.createElement("figcaption");
      cell.className = "cell";
      cell.setAttribute("data-step", String(i));
      cap.textContent = "step " + frame.step + " / " + frame.total_steps;
      cell.appendChild(cap);
      var png = data.images && data.images[i];
      if (png && png.indexOf("data:image/png;base64,") === 0) {
        var img = document.createElement("img");
        img.alt = frame.caption;
        img.src = png;
        cell.appendChild(img);
      } else {
        var box = document.createElement("div");
        box.className = "tokens";
        fillTokens(box, frame);
        cell.appendChild(box);
      }
      cell.addEventListener("click", function () { setPlaying(false); show(i); toggleFrames(); });
      grid.appendChild(cell);
    });
  }

  el("title").textContent = data.title;
  document.title = data.title;
  el("subtitle").textContent = frames.length + " frames \\u00b7 " + data.frame_ms + " ms per frame";
  slider.max = String(last);
  slider.addEventListener("input", function () { setPlaying(false); show(Number(slider.value)); });
  play.addEventListener("click", function () { setPlaying(timer === null); });
  el("replay").addEventListener("click", replay);
  el("toggle-frames").addEventListener("click", toggleFrames);
  document.addEventListener("keydown", function (e) {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    var key = e.key.toLowerCase();
    if (key === "r") replay();
    else if (key === "f") toggleFrames();
    else if (key === "arrowleft" || key === "arrowright") {
      setPlaying(false);
      show(current + (key === "arrowright" ? 1 : -1));
    } else if (key === " ") setPlaying(timer === null);
    else return;
    e.preventDefault();  // the focused slider or button would act on the key a second time
  });
  buildGrid();
  show(0);
  if (data.autoplay) setPlaying(true);
})();
</script>
</body>
</html>
"""
