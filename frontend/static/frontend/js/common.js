// Shared helpers for every page: API calls, live websocket streams, DOM building, and the pure
// helpers of format.js / run_state.js under one name. URLs come from <body data-urls> (a JSON table
// by Django URL name, frontend/views.py SCRIPT_URLS): nothing is hard-coded here.
// Needs format.js and run_state.js (loaded before it by base.html).
//
// window.Tuner:
//   api.get/post/del(url[, data]) -> parsed JSON; throws api.ApiError {status, data, message}
//   errorText(err), fmt (format.js); runState (run_state.js)
//   urls.to(name, id?): the URL named `name` ("api:experiment-detail"), with `id` for its 0;
//   urls.runPage(id), urls.sweepPage(id), urls.tuner(config?) (the tuner loading `config`)
//   LiveSocket, RunStream (below); el(tag, attrs, children); jsonScript(id); cookie(name)
(function () {
  "use strict";
  const { fmt, errorText, apiErrorText } = window.TunerFormat;
  const runState = window.TunerRunState;
  const body = document.body;

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  const urlTable = JSON.parse(body.dataset.urls || "{}");
  function to(name, id) {
    const template = urlTable[name];
    if (template === undefined) throw new Error(`No URL named ${name} in <body data-urls>.`);
    return id === undefined ? template : template.replace("/0/", `/${encodeURIComponent(id)}/`);
  }
  const urls = {
    to,
    runPage: (id) => to("frontend:run-detail", id),
    sweepPage: (id) => to("frontend:sweep-detail", id),
    tuner: (config) => `${to("frontend:tuner")}${config ? `?config=${encodeURIComponent(JSON.stringify(config))}` : ""}`,
  };

  class ApiError extends Error {
    constructor(status, data) {
      super(apiErrorText(status, data));
      this.status = status;
      this.data = data;
    }
  }

  async function request(method, url, data) {
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

  // A websocket under the page's ws root that reconnects with backoff (1 s, 2 s ... 15 s).
  // handlers: open(), message(parsed JSON), down() when it closed and will retry,
  // refused(code) when the server closed it with 4401/4404 (no retry).
  class LiveSocket {
    constructor(path, handlers) {
      this.path = path;
      this.handlers = handlers;
      this.socket = null;
      this.retry = 0;
      this.closed = false;
      this.connect();
    }
    connect() {
      if (this.closed) return;
      const scheme = window.location.protocol === "https:" ? "wss" : "ws";
      const url = `${scheme}://${window.location.host}${body.dataset.wsRoot || "/ws/"}${this.path}`;
      let socket;
      try { socket = new WebSocket(url); } catch (err) { this.handlers.down(); return; }
      this.socket = socket;
      socket.onopen = () => { this.retry = 0; this.handlers.open(); };
      socket.onmessage = (message) => {
        let event;
        try { event = JSON.parse(message.data); } catch (err) { return; }
        if (event && typeof event === "object") this.handlers.message(event);
      };
      socket.onclose = (event) => {
        this.socket = null;
        if (this.closed) return;
        if (event.code === 4404 || event.code === 4401) { this.handlers.refused(event.code); return; }
        this.handlers.down();
        const delay = Math.min(1000 * 2 ** this.retry, 15000);
        this.retry += 1;
        window.setTimeout(() => this.connect(), delay);
      };
    }
    get open() { return Boolean(this.socket && this.socket.readyState === WebSocket.OPEN); }
    send(message) { if (this.open) this.socket.send(JSON.stringify(message)); }
    close() {
      this.closed = true;
      if (this.socket) this.socket.close();
    }
  }

  // One run followed live: its state (run_state.js) kept current from ws/experiments/<id>/, with
  // a resync when seqs skip and REST polling every 2 s while the socket is down.
  //   new RunStream(id, {initial?: REST detail, change(run, prev, event), connection(state)})
  //   stream.run: the state; stream.apply(event): apply a local event (e.g. a REST answer as
  //   {type: "status", ...run}); connection states: live | polling | refused.
  class RunStream {
    constructor(experimentId, handlers) {
      this.id = experimentId;
      this.handlers = handlers;
      this.run = runState.emptyRun(experimentId);
      this.pollTimer = null;
      if (handlers.initial) this.apply({ type: "snapshot", experiment: handlers.initial });
      this.socket = new LiveSocket(`experiments/${experimentId}/`, {
        open: () => { this.stopPolling(); this.setState("live"); },
        message: (event) => this.receive(event),
        down: () => this.fallback(),
        refused: () => { this.stopPolling(); this.setState("refused"); },
      });
    }
    receive(event) {
      if (runState.resyncRefused(event)) { this.poll(); return; }  // one REST read instead
      if (runState.seqGap(this.run, event)) this.resync();  // the channel layer dropped something
      this.apply(event);
    }
    apply(event) {
      const prev = this.run;
      const next = runState.applyRunEvent(prev, event);
      if (next === prev) return;
      this.run = next;
      if (this.handlers.change) this.handlers.change(next, prev, event);
    }
    resync() {
      if (this.socket.open) this.socket.send({ type: "resync" });
      else this.poll();
    }
    async poll() {
      try {
        const detail = await api.get(urls.to("api:experiment-detail", this.id));
        if (!this.socket.closed) this.apply({ type: "snapshot", experiment: detail });
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
    setState(state) { if (this.handlers.connection) this.handlers.connection(state); }
    close() {
      this.stopPolling();
      this.socket.close();
    }
  }

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

  window.Tuner = { api, urls, LiveSocket, RunStream, runState, fmt, errorText, el, jsonScript, cookie };
})();
