// API tokens page (/tokens/): the user's tokens (GET /api/auth/tokens/) with a Revoke button each
// (DELETE /api/auth/tokens/<id>/), and "Create token" (POST /api/auth/tokens/, the session's CSRF
// token) showing the new secret once. Rows and texts come from token_list.js (pure).
// Needs common.js (window.Tuner) and token_list.js (window.TunerTokenList).
(function () {
  "use strict";
  const { api, urls, el, fmt, errorText } = window.Tuner;
  const { tokenRows, withToken, countText } = window.TunerTokenList;

  const tbody = document.getElementById("tokens-body");
  const message = document.getElementById("tokens-message");
  const count = document.getElementById("tokens-count");
  const createButton = document.getElementById("token-create");
  const secretBox = document.getElementById("token-secret-box");
  const secretText = document.getElementById("token-secret");
  const copyButton = document.getElementById("token-copy");
  const error = document.getElementById("token-error");

  let tokens = [];

  function render() {
    const rows = tokenRows(tokens, Date.now());
    tbody.replaceChildren(...rows.map((row) => el("tr", { dataset: { tokenId: row.id } }, [
      el("td", { dataset: { label: "Token" } }, [el("code", { text: row.label, title: row.id })]),
      el("td", { dataset: { label: "Created" } }, [el("time", { datetime: row.created, text: fmt.shortTime(row.created) })]),
      el("td", { dataset: { label: "Expires" } }, [el("time", { datetime: row.expiry || "", title: fmt.time(row.expiry), text: row.expires })]),
      el("td", {}, [el("button", { type: "button", class: "danger-button token-revoke", text: "Revoke",
                                    "aria-label": `Revoke token ${row.label}`, onclick: () => revoke(row.id) })]),
    ])));
    count.textContent = countText(rows);
    message.hidden = rows.length > 0;
    message.textContent = rows.length ? "" : "No tokens yet. Create one above.";
  }

  async function load() {
    try {
      tokens = await api.get(urls.to("api:token-list"));
      render();
    } catch (err) {
      message.hidden = false;
      message.textContent = `Could not load your tokens: ${errorText(err)}`;
    }
  }

  async function revoke(id) {
    error.textContent = "";
    try {
      await api.del(urls.to("api:token-detail", id));
    } catch (err) {
      if (err.status !== 404) { error.textContent = errorText(err); return; }  // 404: already gone
    }
    tokens = tokens.filter((t) => t.id !== id);
    render();
  }

  async function create() {
    error.textContent = "";
    createButton.disabled = true;
    try {
      const token = await api.post(urls.to("api:token-list"));
      tokens = withToken(tokens, token);
      secretText.textContent = token.token;
      secretBox.hidden = false;
      copyButton.textContent = "Copy";
      render();
    } catch (err) {
      error.textContent = errorText(err);
    } finally {
      createButton.disabled = false;
    }
  }

  async function copy() {
    try {
      await navigator.clipboard.writeText(secretText.textContent);
      copyButton.textContent = "Copied";
    } catch (err) {
      window.getSelection().selectAllChildren(secretText);  // no clipboard access: select it instead
    }
  }

  createButton.addEventListener("click", create);
  copyButton.addEventListener("click", copy);
  load();
})();
