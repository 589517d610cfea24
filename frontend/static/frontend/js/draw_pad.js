// A 28×28 drawing pad on a larger square canvas (mouse, touch, pen and keyboard), and painting a
// 28×28 grey image onto a canvas. Used by the run page's "Try the model".
// Needs common.js (window.Tuner).
//
// API (window.TunerDrawPad):
//   const pad = TunerDrawPad.create(canvas, options)
//     canvas: a square <canvas> (e.g. 280×280: ten canvas pixels per image pixel), focusable.
//     options.brushRadius() -> the brush radius in image pixels (default 2.4)
//     options.onDraw()       something was painted (called often while drawing)
//     options.onStrokeEnd()  a stroke ended (pointer up, Space released, Enter)
//     options.onClearKey()   Delete / Backspace pressed on the pad
//   pad.clear(), pad.pixels() -> 784 values 0..255 (the mean of each block), pad.show(pixels),
//   pad.refreshCursor() (after the brush size changed).
//   Keyboard: arrows move a brush cursor (Shift: 3 pixels), Space held or Enter paints.
//   TunerDrawPad.paintImage(canvas, pixels, tint?) draws 784 grey values on a 28×28 canvas
//     (tint "green" for weight images).
(function () {
  "use strict";
  const { el } = window.Tuner;
  const SIDE = 28;

  function paintImage(canvas, pixels, tint) {
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(SIDE, SIDE);
    for (let p = 0; p < SIDE * SIDE; p++) {
      const v = pixels[p] || 0;
      let r = v, g = v, b = v;
      if (tint === "green") { r = Math.max(0, v * 2 - 255) * 0.8; b = Math.max(0, v * 2 - 255) * 0.85; }
      image.data.set([r, g, b, 255], p * 4);
    }
    ctx.putImageData(image, 0, 0);
  }

  function create(canvas, options) {
    const opts = options || {};
    const call = (name) => { if (opts[name]) opts[name](); };
    const SIZE = canvas.width;
    const SCALE = SIZE / SIDE;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    const cursor = { x: 14, y: 14, down: false, visible: false };
    let drawing = false;
    let last = null;
    const cursorBox = el("div", { class: "predict-cursor", "aria-hidden": "true", hidden: true });
    canvas.parentElement.append(cursorBox);

    const radius = () => (Number(opts.brushRadius && opts.brushRadius()) || 2.4) * SCALE;

    function clear() {
      ctx.fillStyle = "#000";
      ctx.fillRect(0, 0, SIZE, SIZE);
      last = null;
    }

    function dab(x, y) {
      const r = radius();
      const gradient = ctx.createRadialGradient(x, y, 0, x, y, r);
      gradient.addColorStop(0, "rgba(255, 255, 255, 0.95)");
      gradient.addColorStop(0.45, "rgba(255, 255, 255, 0.7)");
      gradient.addColorStop(1, "rgba(255, 255, 255, 0)");
      ctx.fillStyle = gradient;
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.fill();
    }

    // Dabs along the segment from the previous point: no gaps in a fast stroke.
    function strokeTo(x, y) {
      if (!last) { dab(x, y); last = { x, y }; return; }
      const dx = x - last.x, dy = y - last.y;
      const n = Math.max(1, Math.ceil(Math.hypot(dx, dy) / Math.max(1, radius() * 0.3)));
      for (let i = 1; i <= n; i++) dab(last.x + (dx * i) / n, last.y + (dy * i) / n);
      last = { x, y };
    }

    function pointFromEvent(event) {
      const rect = canvas.getBoundingClientRect();
      return { x: ((event.clientX - rect.left) / rect.width) * SIZE, y: ((event.clientY - rect.top) / rect.height) * SIZE };
    }

    // ---------------------------------------------------------------- pointer
    canvas.addEventListener("pointerdown", (event) => {
      if (event.button !== undefined && event.button > 0) return;
      event.preventDefault();
      drawing = true;
      last = null;
      hideCursor();
      try { canvas.setPointerCapture(event.pointerId); } catch (err) { /* synthetic events */ }
      const p = pointFromEvent(event);
      strokeTo(p.x, p.y);
      call("onDraw");
    });
    canvas.addEventListener("pointermove", (event) => {
      if (!drawing) return;
      event.preventDefault();
      const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
      for (const e of events.length ? events : [event]) {
        const p = pointFromEvent(e);
        strokeTo(p.x, p.y);
      }
      call("onDraw");
    });
    const endStroke = () => {
      if (!drawing) return;
      drawing = false;
      last = null;
      call("onStrokeEnd");
    };
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) canvas.addEventListener(type, endStroke);

    // ---------------------------------------------------------------- keyboard
    function showCursor() {
      cursor.visible = true;
      cursorBox.hidden = false;
      const size = `${((radius() * 2) / SIZE) * 100}%`;
      Object.assign(cursorBox.style, {
        width: size, height: size,
        left: `${((cursor.x + 0.5) / SIDE) * 100}%`, top: `${((cursor.y + 0.5) / SIDE) * 100}%`,
      });
      cursorBox.classList.toggle("down", cursor.down);
    }
    function hideCursor() {
      cursor.visible = false;
      cursorBox.hidden = true;
    }
    function paintAtCursor() {
      strokeTo((cursor.x + 0.5) * SCALE, (cursor.y + 0.5) * SCALE);
      call("onDraw");
    }
    const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    canvas.addEventListener("keydown", (event) => {
      if (MOVES[event.key]) {
        event.preventDefault();
        const step = event.shiftKey ? 3 : 1;
        cursor.x = Math.max(0, Math.min(SIDE - 1, cursor.x + MOVES[event.key][0] * step));
        cursor.y = Math.max(0, Math.min(SIDE - 1, cursor.y + MOVES[event.key][1] * step));
        if (cursor.down) paintAtCursor();
        else last = null;
        showCursor();
      } else if (event.key === " " || event.key === "Spacebar") {
        event.preventDefault();
        if (!cursor.down) { cursor.down = true; last = null; paintAtCursor(); }
        showCursor();
      } else if (event.key === "Enter") {
        event.preventDefault();
        last = null;
        paintAtCursor();
        last = null;
        showCursor();
        call("onStrokeEnd");
      } else if (event.key === "Delete" || event.key === "Backspace") {
        event.preventDefault();
        call("onClearKey");
      }
    });
    canvas.addEventListener("keyup", (event) => {
      if (event.key !== " " && event.key !== "Spacebar") return;
      cursor.down = false;
      last = null;
      showCursor();
      call("onStrokeEnd");
    });
    canvas.addEventListener("focus", () => { if (!drawing) showCursor(); });
    canvas.addEventListener("blur", () => { cursor.down = false; hideCursor(); });
    canvas.addEventListener("pointerenter", hideCursor);

    // ---------------------------------------------------------------- image in / out
    function pixels() {
      const data = ctx.getImageData(0, 0, SIZE, SIZE).data;
      const out = new Array(SIDE * SIDE).fill(0);
      for (let y = 0; y < SIZE; y++) {
        const row = Math.floor(y / SCALE) * SIDE;
        for (let x = 0; x < SIZE; x++) out[row + Math.floor(x / SCALE)] += data[(y * SIZE + x) * 4];
      }
      const area = SCALE * SCALE;
      return out.map((sum) => Math.max(0, Math.min(255, Math.round(sum / area))));
    }

    function show(values) {
      const small = el("canvas", { width: SIDE, height: SIDE });
      paintImage(small, values);
      ctx.imageSmoothingEnabled = false;
      clear();
      ctx.drawImage(small, 0, 0, SIZE, SIZE);
    }

    clear();
    return { clear, pixels, show, refreshCursor: () => { if (cursor.visible) showCursor(); } };
  }

  window.TunerDrawPad = { create, paintImage };
})();
