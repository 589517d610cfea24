// Matrix rain behind the UI. Cheap on purpose: ~15 frames/s, one column of glyphs per 16 px,
// paused while the tab is hidden, and off entirely for prefers-reduced-motion.
(function () {
  "use strict";
  const canvas = document.getElementById("matrix-rain");
  if (!canvas || !canvas.getContext) return;
  const motion = window.matchMedia("(prefers-reduced-motion: reduce)");
  const ctx = canvas.getContext("2d");
  const glyphs = "アイウエオカキクケコサシスセソ0123456789ABCDEF<>/{}[]=+*";
  const cell = 16;
  const frameMs = 66;
  let drops = [];
  let timer = null;

  function resize() {
    canvas.width = window.innerWidth;
    canvas.height = window.innerHeight;
    const columns = Math.ceil(canvas.width / cell);
    drops = Array.from({ length: columns }, () => Math.floor(Math.random() * -50));
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
  }

  function frame() {
    ctx.fillStyle = "rgba(0, 0, 0, 0.08)";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.fillStyle = "#0f3";
    ctx.font = `${cell - 2}px "Source Code Pro", monospace`;
    for (let i = 0; i < drops.length; i++) {
      const y = drops[i] * cell;
      if (y > 0) ctx.fillText(glyphs[(Math.random() * glyphs.length) | 0], i * cell, y);
      drops[i] = y > canvas.height && Math.random() > 0.97 ? 0 : drops[i] + 1;
    }
  }

  function start() {
    if (timer === null && !document.hidden && !motion.matches) timer = window.setInterval(frame, frameMs);
  }
  function stop() {
    if (timer !== null) window.clearInterval(timer);
    timer = null;
  }
  function update() {
    if (document.hidden || motion.matches) stop(); else start();
    canvas.hidden = motion.matches;
  }

  resize();
  window.addEventListener("resize", resize);
  document.addEventListener("visibilitychange", update);
  if (motion.addEventListener) motion.addEventListener("change", update);
  update();
  window.TunerRain = { isRunning: () => timer !== null, stop, start };
})();
