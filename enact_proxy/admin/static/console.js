// The Enact console. Everything it shows comes from /api/ with the token typed in; every value is
// written into the page with textContent (never innerHTML): payloads, branch names, actions and
// reasons are written by agents and must render as text.
"use strict";

(function () {
  const TOKEN_KEY = "enact.admin.token";
  const POLL_MS = 2000;
  const body = document.body;
  const $ = (id) => document.getElementById(id);

  // -- small DOM helpers ---------------------------------------------------------------------
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function json(value) {
    return JSON.stringify(value === undefined ? null : value, null, 2);
  }

  function shortTime(iso) {
    if (typeof iso !== "string") return "";
    return iso.replace("T", " ").replace(/\.\d+/, "").replace(/(Z|\+00:00)$/, "");
  }

  function badge(decision) {
    // The class comes from a fixed set, never from the data itself.
    const known = { PASS: "pass", BLOCK: "block" };
    return el("span", "badge " + (known[decision] || "other"), decision || "?");
  }

  function target(payload) {
    if (!payload || typeof payload !== "object") return "";
    for (const key of ["branch", "head", "email", "table", "tag", "contact_id", "deal_id", "approval_id"]) {
      if (typeof payload[key] === "string" && payload[key]) return payload[key];
    }
    if (payload.number !== undefined && payload.number !== null) return "#" + String(payload.number);
    if (payload.owner && payload.repo) return String(payload.owner) + "/" + String(payload.repo);
    return "";
  }

  // -- the token and the API -----------------------------------------------------------------
  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  class Refused extends Error {}

  async function api(path, options) {
    const current = token();
    if (!current) throw new Refused("not signed in");
    const init = Object.assign({ cache: "no-store", credentials: "omit" }, options || {});
    init.headers = Object.assign({ Authorization: "Bearer " + current }, init.headers || {});
    const answer = await fetch(path, init);
    if (answer.status === 401) {
      signOut("The token was refused. Sign in with a valid admin token.");
      throw new Refused("token refused");
    }
    let data = null;
    try {
      data = await answer.json();
    } catch (e) {
      data = null;
    }
    if (!answer.ok) {
      const why = data && typeof data.error === "string" ? data.error : "HTTP " + answer.status;
      throw new Error(why);
    }
    return data;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text || "";
    box.hidden = !text;
  }

  function clearData() {
    for (const id of ["approvals", "receipts", "verification", "summary", "policies"]) {
      const node = $(id);
      if (node) node.replaceChildren();
    }
    for (const id of ["payload", "actions-taken", "record", "run-id", "decision"]) {
      const node = $(id);
      if (node) node.textContent = "";
    }
    approvalRows.clear();
  }

  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    stopPolling();
    clearData();
    $("content").hidden = true;
    $("signin-panel").hidden = false;
    $("signout").hidden = true;
    $("whoami").hidden = true;
    showError(message || "");
  }

  async function signIn(candidate) {
    sessionStorage.setItem(TOKEN_KEY, candidate);
    let who = null;
    try {
      who = await api("/api/whoami");
    } catch (e) {
      if (!(e instanceof Refused)) {
        signOut("Could not reach the admin API: " + e.message);
      }
      return;
    }
    showError("");
    $("signin-panel").hidden = true;
    $("content").hidden = false;
    $("signout").hidden = false;
    $("whoami").textContent = "signed in as " + String((who && who.name) || "?");
    $("whoami").hidden = false;
    start();
  }

  // -- polling -------------------------------------------------------------------------------
  let timer = null;
  let generation = 0; // bumped by every start and stop: a refresh of an older session schedules nothing

  function stopPolling() {
    generation += 1;
    if (timer !== null) clearTimeout(timer);
    timer = null;
  }

  function schedule(refresh, mine) {
    // One request at a time (the next starts 2 s after the last answered), paused while the tab
    // is hidden: an idle console costs the sidecar nothing.
    if (mine !== generation) return;
    timer = setTimeout(async () => {
      timer = null;
      if (!document.hidden && liveEnabled()) {
        try {
          await refresh();
        } catch (e) {
          if (!(e instanceof Refused)) showError("Update failed: " + e.message);
        }
      }
      schedule(refresh, mine);
    }, POLL_MS);
  }

  function liveEnabled() {
    const form = $("filters");
    return !form || form.elements.live.checked;
  }

  // -- the console page: approvals and receipts ---------------------------------------------
  const approvalRows = new Map(); // id -> <li>, so a reason being typed survives a refresh

  function approvalRow(approval) {
    const item = el("li", "approval");
    item.dataset.id = String(approval.id);
    const head = el("div", "approval-head");
    head.append(el("strong", "action", approval.action), el("span", "actor", "by " + approval.actor));
    head.append(el("span", "when", "asked " + shortTime(approval.created_at) + " · expires " + shortTime(approval.expires_at)));
    item.append(head);
    item.append(el("div", "approval-id", "approval " + approval.id));
    item.append(el("pre", "json", json(approval.payload)));
    item.append(el("div", "digest", "digest " + approval.digest));

    const form = el("form", "decide");
    const reason = el("input", "reason");
    reason.name = "reason";
    reason.placeholder = "reason (recorded; shown to the agent on deny)";
    reason.maxLength = 2000;
    const approve = el("button", "approve", "Approve");
    approve.type = "button";
    const deny = el("button", "deny", "Deny");
    deny.type = "button";
    const note = el("span", "note");
    form.append(reason, approve, deny, note);
    form.addEventListener("submit", (event) => event.preventDefault());
    approve.addEventListener("click", () => decide(approval.id, "approve", reason.value, note, form));
    deny.addEventListener("click", () => decide(approval.id, "deny", reason.value, note, form));
    item.append(form);
    return item;
  }

  async function decide(id, verb, reason, note, form) {
    for (const button of form.querySelectorAll("button")) button.disabled = true;
    note.textContent = verb === "approve" ? "approving…" : "denying…";
    try {
      const answer = await api("/api/approvals/" + encodeURIComponent(id) + "/" + verb, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason: reason }),
      });
      const approval = answer.approval || {};
      note.textContent = String(approval.status || verb) + " by " + String(approval.decided_by || "you");
      await refreshAll();
    } catch (e) {
      if (e instanceof Refused) return;
      note.textContent = "failed: " + e.message;
      for (const button of form.querySelectorAll("button")) button.disabled = false;
    }
  }

  async function refreshApprovals() {
    const data = await api("/api/approvals?status=pending");
    const list = $("approvals");
    const seen = new Set();
    for (const approval of data.approvals || []) {
      const id = String(approval.id);
      seen.add(id);
      if (!approvalRows.has(id)) {
        const row = approvalRow(approval);
        approvalRows.set(id, row);
        list.append(row);
      }
    }
    for (const [id, row] of approvalRows) {
      if (!seen.has(id)) {
        row.remove();
        approvalRows.delete(id);
      }
    }
    $("approvals-count").textContent = seen.size ? "(" + seen.size + ")" : "";
    document.title = (seen.size ? "(" + seen.size + ") " : "") + "Enact console";
    $("approvals-empty").hidden = seen.size > 0;
  }

  function filterQuery() {
    const form = $("filters");
    const params = new URLSearchParams();
    for (const name of ["decision", "action", "actor", "since"]) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function receiptRow(receipt) {
    const row = el("tr", "receipt");
    row.dataset.runId = String(receipt.run_id);
    const time = el("td", "time");
    const link = el("a", null, shortTime(receipt.timestamp));
    link.href = "/receipts/" + encodeURIComponent(String(receipt.run_id));
    time.append(link);
    const decision = el("td");
    decision.append(badge(receipt.decision));
    if (receipt.mode === "shadow") decision.append(el("span", "mode", " shadow"));
    if (receipt.approval && typeof receipt.approval === "object") {
      decision.append(el("span", "approved", " approved by " + receipt.approval.approved_by));
    }
    row.append(time, decision, el("td", "action", receipt.action), el("td", "target", target(receipt.payload)),
      el("td", "actor", receipt.actor_email), el("td", "reason", receipt.reason));
    return row;
  }

  async function refreshReceipts() {
    const params = filterQuery();
    params.set("limit", "200");
    const data = await api("/api/receipts?" + params.toString());
    const rows = (data.receipts || []).map(receiptRow);
    $("receipts").replaceChildren(...rows);
    $("receipts-empty").hidden = rows.length > 0;
    const partial = data.complete === false ? " · searched only the newest records: narrow the time or filters" : "";
    $("updated").textContent = "updated " + new Date().toLocaleTimeString() + partial;
  }

  async function refreshAll() {
    await Promise.all([refreshApprovals(), refreshReceipts()]);
  }

  function setupFilters() {
    const form = $("filters");
    const params = new URLSearchParams(location.search);
    for (const name of ["decision", "action", "actor", "since"]) {
      if (params.has(name)) form.elements[name].value = params.get(name);
    }
    const apply = (event) => {
      if (event) event.preventDefault();
      const query = filterQuery().toString();
      history.replaceState(null, "", query ? "?" + query : location.pathname);
      refreshReceipts().catch((e) => {
        if (!(e instanceof Refused)) showError("Update failed: " + e.message);
      });
    };
    form.addEventListener("submit", apply);
    form.addEventListener("change", apply);
  }

  // -- one receipt ---------------------------------------------------------------------------
  function verificationItem(name, value) {
    const item = el("li");
    let state = "info";
    let text = value;
    if (value === true) {
      state = "ok";
      text = "holds";
    } else if (value === false) {
      state = "bad";
      text = "FAILS";
    } else if (value === null || value === undefined) {
      state = "info";
      text = "not checked";
    } else if (typeof value === "object") {
      text = json(value);
    }
    item.className = "check " + state;
    item.append(el("span", "name", name.replace(/_/g, " ")), el("span", "value", text));
    return item;
  }

  function summaryPair(list, name, value) {
    if (value === undefined || value === null || value === "") return;
    list.append(el("dt", null, name), el("dd", null, typeof value === "object" ? json(value) : value));
  }

  async function showReceipt() {
    const runId = body.dataset.runId || "";
    const data = await api("/api/receipts/" + encodeURIComponent(runId));
    const receipt = data.receipt || {};
    $("run-id").textContent = String(receipt.run_id || runId);
    const decision = badge(receipt.decision);
    decision.id = "decision";
    $("decision").replaceWith(decision);
    const checks = $("verification");
    checks.replaceChildren(...Object.entries(data.verification || {}).map(([k, v]) => verificationItem(k, v)));
    const summary = $("summary");
    summary.replaceChildren();
    summaryPair(summary, "time", receipt.timestamp);
    summaryPair(summary, "action", receipt.action);
    summaryPair(summary, "system", receipt.system);
    summaryPair(summary, "actor", receipt.actor_email);
    summaryPair(summary, "workflow", receipt.workflow);
    summaryPair(summary, "mode", receipt.mode);
    summaryPair(summary, "reason", receipt.reason);
    if (receipt.approval && typeof receipt.approval === "object") {
      summaryPair(summary, "approval", String(receipt.approval.id) + " approved by " + String(receipt.approval.approved_by));
    }
    if (receipt.request && typeof receipt.request === "object") {
      summaryPair(summary, "request", [receipt.request.method, receipt.request.host, receipt.request.path]
        .filter((part) => part !== undefined && part !== null).join(" "));
    }
    summaryPair(summary, "config", receipt.config_sha256);
    summaryPair(summary, "seq", receipt.seq);
    const policies = (receipt.policy_results || []).map((result) => {
      const row = el("tr", result.passed ? "passed" : "failed");
      row.append(el("td", null, result.policy), el("td", null, result.passed ? "passed" : "failed"),
        el("td", null, result.reason));
      return row;
    });
    $("policies").replaceChildren(...policies);
    $("payload").textContent = json(receipt.payload);
    $("actions-taken").textContent = json(receipt.actions_taken);
    $("record").textContent = json(receipt);
  }

  // -- start ---------------------------------------------------------------------------------
  function start() {
    stopPolling();
    const mine = generation;
    const page = body.dataset.page;
    const refresh = page === "receipt" ? showReceipt : refreshAll;
    refresh().catch((e) => {
      if (!(e instanceof Refused)) showError("Could not load: " + e.message);
    });
    if (page === "console") schedule(refresh, mine);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin").addEventListener("submit", (event) => {
      event.preventDefault();
      const field = $("token");
      const candidate = field.value.trim();
      field.value = "";
      if (candidate) signIn(candidate);
    });
    $("signout").addEventListener("click", () => signOut(""));
    if (body.dataset.page === "console") setupFilters();
    if (token()) {
      signIn(token());
    } else {
      $("signin-panel").hidden = false;
    }
  });
})();
