// Shared helpers for every page: API calls, the live run stream, formatting, DOM building.
// Pages read URLs from data-* attributes and json_script blocks; nothing is hard-coded here
// except the API layout documented in the README.
(function () {
  "use strict";
  const body = document.body;
  const apiRoot = body.dataset.apiRoot || "/api/";

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  class ApiError extends Error {
    constructor(status, data) {
      super(ApiError.describe(status, data));
      this.status = status;
      this.data = data;
    }
    static describe(status, data) {
      if (data && typeof data.detail === "string") return data.detail;
      if (status === 0) return "The server could not be reached.";
      return `Request failed (HTTP ${status}).`;
    }
  }

  async function request(method, path, data) {
    const url = path.startsWith("/") ? path : apiRoot + path;
    const headers = { Accept: "application/json" };
    const init = { method, headers, credentials: "same-origin" };
    if (data !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(data);
    }
    if (method !== "GET") headers["X-CSRFToken"] = cookie("csrftoken") || body.dataset.csrfToken || "";
    let response;
    try {
      response = await fetch(url, init);
    } catch (err) {
      throw new ApiError(0, null);
    }
    const text = await response.text();
    let payload = null;
    if (text) {
      try { payload = JSON.parse(text); } catch (err) { payload = { detail: text.slice(0, 200) }; }
    }
    if (!response.ok) throw new ApiError(response.status, payload);
    return payload;
  }

  const api = {
    get: (path) => request("GET", path),
    post: (path, data) => request("POST", path, data),
    del: (path) => request("DELETE", path),
    ApiError,
  };

  // One run's live events: websocket with automatic reconnect, seq-gap resync, and a REST
  // polling fallback while the socket is down. Calls handlers.snapshot(state) with the same
  // shape as the websocket snapshot, and handlers.event(event) for each newer event.
  class RunStream {
    constructor(experimentId, handlers) {
      this.id = experimentId;
      this.handlers = handlers;
      this.seq = 0;
      this.socket = null;
      this.retry = 0;
      this.pollTimer = null;
      this.closed = false;
      this.connect();
    }
    url() {
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      return `${scheme}://${window.location.host}${body.dataset.wsRoot || "/ws/"}experiments/${this.id}/`;
    }
    connect() {
      if (this.closed) return;
      let socket;
      try { socket = new WebSocket(this.url()); } catch (err) { this.fallback(); return; }
      this.socket = socket;
      socket.onopen = () => { this.retry = 0; this.stopPolling(); this.setState("live"); };
      socket.onmessage = (message) => this.receive(JSON.parse(message.data));
      socket.onclose = (event) => {
        this.socket = null;
        if (this.closed) return;
        if (event.code === 4404 || event.code === 4401) { this.setState("refused"); return; }
        this.fallback();
        const delay = Math.min(1000 * 2 ** this.retry, 15000);
        this.retry += 1;
        window.setTimeout(() => this.connect(), delay);
      };
    }
    receive(event) {
      if (event.type === "snapshot") {
        this.seq = event.seq || 0;
        this.handlers.snapshot && this.handlers.snapshot(event);
        return;
      }
      if (event.type === "pong" || event.type === "error") return;
      if (typeof event.seq === "number") {
        if (event.seq <= this.seq) return;           // already in the snapshot
        if (this.seq && event.seq > this.seq + 1) {  // the channel layer dropped something
          this.seq = event.seq;
          this.resync();
        }
        this.seq = Math.max(this.seq, event.seq);
      }
      this.handlers.event && this.handlers.event(event);
    }
    resync() {
      if (this.socket && this.socket.readyState === WebSocket.OPEN) {
        this.socket.send(JSON.stringify({ type: "resync" }));
      } else {
        this.poll();
      }
    }
    async poll() {
      try {
        const run = await api.get(`experiments/${this.id}/`);
        this.handlers.snapshot && this.handlers.snapshot(snapshotFromRest(run));
      } catch (err) { /* keep polling */ }
    }
    fallback() {
      this.setState("polling");
      if (this.pollTimer === null) {
        this.poll();
        this.pollTimer = window.setInterval(() => this.poll(), 2000);
      }
    }
    stopPolling() {
      if (this.pollTimer !== null) window.clearInterval(this.pollTimer);
      this.pollTimer = null;
    }
    setState(state) { this.handlers.connection && this.handlers.connection(state); }
    close() {
      this.closed = true;
      this.stopPolling();
      if (this.socket) this.socket.close();
    }
  }

  function snapshotFromRest(run) {
    const { metrics, recommendations, ...experiment } = run;
    experiment.epochs = run.config ? run.config.epochs : null;
    experiment.error = run.error_message;
    return { type: "snapshot", seq: 0, experiment, metrics: metrics || [], recommendations: recommendations || [] };
  }

  const fmt = {
    pct: (value, digits = 1) => (value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`),
    num: (value, digits = 4) => (value === null || value === undefined || !isFinite(value) ? "–" : Number(value).toPrecision(digits)),
    duration(seconds) {
      if (seconds === null || seconds === undefined) return "–";
      if (seconds < 60) return `${seconds.toFixed(1)} s`;
      const minutes = Math.floor(seconds / 60);
      return minutes < 60 ? `${minutes} min ${Math.round(seconds % 60)} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
    },
    value(value) {
      if (Array.isArray(value)) return `[${value.join(", ")}]`;
      if (value === null || value === undefined) return "–";
      if (typeof value === "number" && !Number.isInteger(value)) return Number(value.toPrecision(4)).toString();
      return String(value);
    },
    time: (iso) => (iso ? new Date(iso).toLocaleString() : "–"),
  };

  // el("div", {class: "x", text: "hi", onclick: fn}, [children])
  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "class") node.className = value;
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function jsonScript(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  window.Tuner = { api, RunStream, snapshotFromRest, fmt, el, jsonScript, cookie };
})();
