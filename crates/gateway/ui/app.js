// The Chaukas console: plain ES module, no dependencies, embedded in the gateway binary
// (crates/gateway/src/http_ui.rs). It reads the same HTTP API as any client, with the API
// key the user signs in with (kept in sessionStorage, sent as a Bearer token).
import { verifyInclusion } from "/ui/proof.js";

const main = document.getElementById("main");
const store = window.sessionStorage;
const ROW = 24; // px per row of the trace view (virtualised)

// ---- API ----------------------------------------------------------------------------

function credentials() {
  return { key: store.getItem("chaukas.key") || "", tenant: store.getItem("chaukas.tenant") || "" };
}

function withTenant(path) {
  const { tenant } = credentials();
  if (!tenant) return path;
  return path + (path.includes("?") ? "&" : "?") + "tenant=" + encodeURIComponent(tenant);
}

async function api(path, options = {}) {
  const { key } = credentials();
  const headers = Object.assign({}, options.headers || {});
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(withTenant(path), Object.assign({}, options, { headers }));
  const text = await response.text();
  if (!response.ok) {
    let message = text;
    try { message = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    const error = new Error(`${response.status}: ${message}`);
    error.status = response.status;
    throw error;
  }
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? JSON.parse(text) : text;
}

// ---- helpers ------------------------------------------------------------------------

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    // Through the CSSOM: the Content-Security-Policy allows no inline style attributes.
    else if (name === "style") node.style.cssText = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function show(...nodes) {
  main.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
  main.focus({ preventScroll: true });
}

function failure(error) {
  if (error.status === 401) { location.hash = "#/login"; return el("p", {}, "Sign in first."); }
  return el("p", { class: "error", role: "alert" }, String(error.message || error));
}

const fmtTime = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+Z$|Z$/, "") : "");
const fmtMs = (ms) => (ms === undefined || ms === null ? "" : ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`);
const percent = (part, whole) => (whole ? `${((100 * part) / whole).toFixed(1)}%` : "–");
const badge = (outcome) => el("span", { class: `badge ${outcome}` }, outcome.replace("_", " "));
const PREVIEW = 256 * 1024; // characters of one text shown at first: a 5 MB payload stays smooth

/** `text` made into a node by `make`, cut at PREVIEW characters with a button for the rest. */
function clipped(text, make) {
  if (text.length <= PREVIEW) return make(text);
  const node = make(text.slice(0, PREVIEW));
  const note = el("p", { class: "muted" }, `Showing the first ${PREVIEW / 1024} KB of ${(text.length / 1048576).toFixed(1)} MB. `,
    el("button", { type: "button", onclick: () => { node.replaceWith(make(text)); note.remove(); } }, "Show all"));
  return el("div", { class: "clipped" }, node, note);
}

const json = (value) => clipped(JSON.stringify(value, null, 2), (text) => el("pre", { class: "json" }, text));

/** A <details> whose body is made only when first opened (a large raw event costs nothing until then). */
function lazyDetails(summary, make) {
  const details = el("details", {}, el("summary", {}, summary));
  details.addEventListener("toggle", () => {
    if (details.open && details.childElementCount === 1) details.append(make());
  });
  return details;
}

// ---- sign in ------------------------------------------------------------------------

function loginPage() {
  const { key, tenant } = credentials();
  const message = el("p", { class: "error", role: "alert" });
  const form = el("form", { class: "filters", "aria-label": "Sign in" },
    el("label", {}, "API key", el("input", { name: "key", type: "password", value: key, size: 40, autocomplete: "off" })),
    el("label", {}, "Tenant (dev mode, without keys)", el("input", { name: "tenant", value: tenant })),
    el("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    store.setItem("chaukas.key", form.key.value.trim());
    store.setItem("chaukas.tenant", form.tenant.value.trim());
    try {
      await api("/v1/sessions?page_size=1");
      location.hash = "#/sessions";
    } catch (error) {
      message.textContent = String(error.message);
    }
  });
  show(el("h1", {}, "Sign in"), el("p", { class: "muted" },
    "An API key with the query scope. Without API keys (dev mode), give the tenant instead."), form, message);
  form.key.focus();
}

// ---- sessions list ------------------------------------------------------------------

const FILTERS = ["outcome", "has_errors", "agent", "text", "from", "to", "project"];

async function sessionsPage(params) {
  const form = el("form", { class: "filters", "aria-label": "Filters" },
    el("label", {}, "Outcome", el("select", { name: "outcome" },
      ["", "complete", "partial", "failed", "in_progress", "abandoned"].map((o) =>
        el("option", { value: o, selected: params.get("outcome") === o }, o || "any")))),
    el("label", {}, "Errors", el("select", { name: "has_errors" },
      [["", "any"], ["true", "with errors"], ["false", "without"]].map(([v, t]) =>
        el("option", { value: v, selected: params.get("has_errors") === v }, t)))),
    el("label", {}, "Agent", el("input", { name: "agent", value: params.get("agent") || "" })),
    el("label", {}, "Text", el("input", { name: "text", value: params.get("text") || "" })),
    el("label", {}, "From", el("input", { name: "from", placeholder: "2025-01-31T00:00:00Z", value: params.get("from") || "" })),
    el("label", {}, "To", el("input", { name: "to", value: params.get("to") || "" })),
    el("button", { type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of FILTERS) if (form[name] && form[name].value) next.set(name, form[name].value);
    location.hash = "#/sessions?" + next;
  });
  const query = new URLSearchParams();
  for (const name of [...FILTERS, "page_token"]) if (params.get(name)) query.set(name, params.get(name));
  query.set("page_size", "50");
  show(el("h1", {}, "Sessions"), form, el("p", { class: "muted" }, "Loading…"));
  let page;
  try { page = await api("/v1/sessions?" + query); } catch (error) { show(el("h1", {}, "Sessions"), form, failure(error)); return; }
  const rows = page.sessions.map((s) => {
    const row = el("tr", { tabindex: "0", "data-session": s.session_id },
      el("td", {}, el("a", { href: `#/session/${encodeURIComponent(s.session_id)}` }, s.session_id)),
      el("td", {}, s.project_id), el("td", {}, fmtTime(s.start)), el("td", { class: "num" }, fmtMs(s.duration_ms)),
      el("td", { class: "num" }, s.event_count), el("td", {}, s.agents.join(", ")),
      el("td", { class: "num" }, `${s.model_calls} / ${s.tool_calls} / ${s.mcp_calls}`),
      el("td", { class: "num" }, s.errors), el("td", { class: "num" }, `${s.input_tokens} / ${s.output_tokens}`),
      el("td", { class: "num" }, s.cost ? s.cost.toFixed(4) : ""),
      el("td", { title: s.reasons.join("\n") }, badge(s.outcome)));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") location.hash = `#/session/${encodeURIComponent(s.session_id)}`;
      if (event.key === "ArrowDown" || event.key === "j") { event.preventDefault(); row.nextElementSibling?.focus(); }
      if (event.key === "ArrowUp" || event.key === "k") { event.preventDefault(); row.previousElementSibling?.focus(); }
    });
    return row;
  });
  const table = el("table", { "aria-label": "Sessions" },
    el("thead", {}, el("tr", {}, ["Session", "Project", "Start", "Duration", "Events", "Agents",
      "Model / tool / MCP calls", "Errors", "Tokens in / out", "Cost", "Outcome"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows));
  const more = page.next_page_token
    ? el("a", { href: "#/sessions?" + new URLSearchParams([...params.entries()].filter(([k]) => k !== "page_token").concat([["page_token", page.next_page_token]])) }, "Next page →")
    : el("span", { class: "muted" }, rows.length ? "Last page" : "No sessions match.");
  show(el("h1", {}, "Sessions"), form, table, el("p", {}, more));
}

// ---- one session --------------------------------------------------------------------

/// Spans in tree order (children after their parent, by first time), with their depth.
function treeOrder(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const children = new Map();
  const first = (s) => s.start || s.end || "";
  for (const span of spans) {
    const parent = byId.has(span.parent_span_id) && span.parent_span_id !== span.span_id ? span.parent_span_id : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(span);
  }
  for (const list of children.values()) list.sort((a, b) => first(a).localeCompare(first(b)));
  const ordered = [];
  const seen = new Set();
  const walk = (id, depth) => {
    for (const span of children.get(id) || []) {
      if (seen.has(span.span_id)) continue;
      seen.add(span.span_id);
      ordered.push({ span, depth });
      walk(span.span_id, depth + 1);
    }
  };
  walk("", 0);
  return ordered;
}

async function sessionPage(id) {
  show(el("p", { class: "muted" }, "Loading…"));
  let detail;
  try { detail = await api(`/v1/sessions/${encodeURIComponent(id)}`); } catch (error) { show(failure(error)); return; }
  const rows = treeOrder(detail.spans);
  const times = detail.spans.flatMap((s) => [s.start, s.end]).filter(Boolean).map((t) => Date.parse(t));
  const t0 = Math.min(...times, Date.parse(detail.start));
  const t1 = Math.max(...times, t0 + 1);
  const panel = el("section", { class: "panel", "aria-label": "Event", id: "event-panel" },
    el("p", { class: "muted" }, "Select a span (click, or arrow keys and Enter)."));
  const trace = el("div", { class: "trace", tabindex: "0", role: "listbox", "aria-label": "Spans" });
  const inner = el("div", { style: `height:${rows.length * ROW}px;position:relative` });
  trace.append(inner);
  let selected = -1;
  const render = () => {
    const top = Math.max(0, Math.floor(trace.scrollTop / ROW) - 20);
    const bottom = Math.min(rows.length, Math.ceil((trace.scrollTop + trace.clientHeight) / ROW) + 20);
    const nodes = [];
    for (let i = top; i < bottom; i++) {
      const { span, depth } = rows[i];
      const start = Date.parse(span.start || span.end || detail.start);
      const end = Date.parse(span.end || span.start || detail.start);
      const left = ((start - t0) / (t1 - t0)) * 100;
      const width = Math.max(((end - start) / (t1 - t0)) * 100, 0.2);
      nodes.push(el("div", { class: `row${i === selected ? " selected" : ""}`, role: "option",
          "aria-selected": i === selected ? "true" : "false", style: `top:${i * ROW}px`, "data-index": i,
          onclick: () => select(i) },
        el("span", { class: "name", style: `padding-left:${depth * 14 + 4}px`, title: span.failure || "" },
          `${span.kind} · ${span.name || span.span_id}`, span.failure ? " ✗" : ""),
        el("span", { class: "lane" }, el("span", { class: `bar${span.failure ? " failed" : ""}`,
          style: `left:${left}%;width:${width}%`, title: fmtMs(span.duration_ms) }))));
    }
    inner.replaceChildren(...nodes);
  };
  const select = (i) => {
    selected = i;
    render();
    openSpan(detail, rows[i].span, panel);
  };
  trace.addEventListener("scroll", () => requestAnimationFrame(render));
  trace.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      selected = Math.max(0, Math.min(rows.length - 1, selected + (event.key === "ArrowDown" ? 1 : -1)));
      const y = selected * ROW;
      if (y < trace.scrollTop || y > trace.scrollTop + trace.clientHeight - ROW) trace.scrollTop = y - trace.clientHeight / 2;
      render();
    }
    if (event.key === "Enter" && selected >= 0) select(selected);
  });
  const summary = el("div", { class: "cards" },
    [["Outcome", badge(detail.outcome)], ["Duration", fmtMs(detail.duration_ms)], ["Events", detail.event_count],
      ["Actions failed", `${detail.failed_actions} of ${detail.actions}`], ["Tokens in / out", `${detail.input_tokens} / ${detail.output_tokens}`],
      ["Cost", detail.cost.toFixed(4)]].map(([label, value]) => el("div", { class: "card" }, el("div", { class: "muted" }, label), el("div", { class: "value" }, value))));
  show(el("h1", {}, "Session ", detail.session_id), el("p", { class: "muted" }, detail.reasons.join(" · ")),
    summary, detail.truncated ? el("p", { class: "error" }, "This session has more events than one page shows.") : null,
    el("div", { class: "session" }, trace, panel),
    el("p", {}, el("button", { type: "button", onclick: () => downloadProv(detail.session_id) }, "Download PROV-O (JSON-LD)")));
  render();
}

/// Fetched with the API key (a plain link would not send it), then saved from a blob.
async function downloadProv(sessionId) {
  const graph = await api(`/v1/sessions/${encodeURIComponent(sessionId)}/prov`);
  const url = URL.createObjectURL(new Blob([JSON.stringify(graph, null, 2)], { type: "application/ld+json" }));
  const link = el("a", { href: url, download: `${sessionId}.prov.jsonld` });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function openSpan(detail, span, panel) {
  panel.replaceChildren(el("div", {}, el("h2", {}, `${span.kind} · ${span.name || span.span_id}`),
    el("p", {}, `${fmtTime(span.start)} → ${fmtTime(span.end)}  ${fmtMs(span.duration_ms)}  ${span.status || ""}`),
    span.failure ? el("p", { class: "error" }, span.failure) : null));
  for (const eventId of [span.start_event_id, span.end_event_id].filter(Boolean)) {
    try {
      const event = await api(`/v1/sessions/${encodeURIComponent(detail.session_id)}/events/${encodeURIComponent(eventId)}`);
      panel.append(renderEvent(event, detail));
    } catch (error) {
      panel.append(failure(error));
    }
  }
}

/// One event: a chat transcript for model calls, readable JSON for tools and state, and its
/// place in the audit log with an inclusion check against the signed checkpoint.
function renderEvent(event, detail) {
  const content = event.content || {};
  const parts = [el("h3", {}, `${event.type} · ${event.event_id}`)];
  if (content.kind === "llm_invocation") {
    const messages = (content.request && content.request.messages) || [];
    const reply = content.response && (content.response.content || (content.response.choices || [])[0]?.message?.content);
    parts.push(el("div", { class: "chat" },
      messages.map((m) => message(m.role || "user", typeof m.content === "string" ? m.content : JSON.stringify(m.content))),
      reply ? message("assistant", String(reply)) : null));
    parts.push(el("p", { class: "muted" }, `${content.provider || ""} ${content.model || ""} · tokens ${content.prompt_tokens || 0} / ${content.completion_tokens || 0}`));
  } else if (content.kind === "tool_call") {
    parts.push(el("p", {}, `Tool ${content.name || ""}`), json(content.arguments || {}));
  } else if (content.kind === "tool_response") {
    parts.push(json(content.output || {}));
  } else if (content.kind === "state_update") {
    const change = detail.state_updates.find((s) => s.event_id === event.event_id);
    parts.push(json(change ? { before: change.before, after: change.after, diff: change.diff } : content));
  } else if (content.kind) {
    parts.push(json(content));
  }
  const leaf = event.worm_proof_id;
  if (leaf !== undefined && leaf !== "") {
    const result = el("span", { class: "muted" });
    parts.push(el("p", {}, `Audit log: leaf ${leaf}, content hash ${String(event.content_hash).slice(0, 16)}… `,
      el("button", { type: "button", onclick: async () => {
        result.textContent = "checking…";
        try {
          const tenant = event.tenant_id;
          const [key, proof] = await Promise.all([api("/v1/log/key"), api(`/v1/log/${encodeURIComponent(tenant)}/proof/${leaf}`)]);
          const size = await verifyInclusion(proof, event.content_hash, Number(leaf), key);
          result.textContent = `✓ included in the signed checkpoint of size ${size}`;
          result.className = "ok";
        } catch (error) {
          result.textContent = `✗ ${error.message}`;
          result.className = "bad";
        }
      } }, "Verify inclusion"), " ", result));
  }
  parts.push(lazyDetails("Raw event", () => json(event)));
  return el("article", {}, parts);
}

const message = (role, text) => el("div", { class: `msg ${role}` }, el("div", { class: "role" }, role),
  clipped(text, (shown) => el("span", {}, shown)));

// ---- stats --------------------------------------------------------------------------

const TYPE_COLOURS = 8; // the chart stacks the 7 most frequent types, the rest as "other"

async function statsPage() {
  show(el("h1", {}, "Stats"), el("p", { class: "muted" }, "Loading…"));
  const { tenant } = credentials();
  const hours = 24;
  const now = Date.now();
  const windows = Array.from({ length: hours }, (_, i) => [now - (hours - i) * 3600e3, now - (hours - i - 1) * 3600e3]);
  const stat = (range) => api("/v1/stats", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ tenant_id: tenant || undefined, time_range: range && { start: new Date(range[0]).toISOString(), end: new Date(range[1]).toISOString() } }) });
  try {
    // One request at a time: a tenant's reads share a few slots on the query service.
    const total = await stat(null);
    const perHour = [];
    for (const window of windows) perHour.push(await stat(window));
    const models = await api(`/v1/stats/models?from=${new Date(windows[0][0]).toISOString()}&to=${new Date(now).toISOString()}`);
    const sessions = await api("/v1/sessions?page_size=500");
    const rows = sessions.sessions;
    const failed = rows.filter((s) => s.outcome === "failed" || s.outcome === "partial").length;
    const durations = rows.map((s) => s.duration_ms).sort((a, b) => a - b);
    const q = (p) => durations.length ? durations[Math.min(durations.length - 1, Math.floor(p * durations.length))] : 0;
    const byType = Object.entries(total.events_by_type || {}).sort((a, b) => b[1] - a[1]);
    const dayEvents = perHour.reduce((sum, h) => sum + Number(h.total_events || 0), 0);
    const dayErrors = perHour.reduce((sum, h) => sum + Number((h.events_by_type || {}).EVENT_TYPE_ERROR || 0), 0);
    show(el("h1", {}, "Stats"),
      el("div", { class: "cards" }, [["Events", total.total_events], ["Sessions", total.total_sessions],
        ["Error events, last 24 h", `${dayErrors} of ${dayEvents} (${percent(dayErrors, dayEvents)})`],
        ["Sessions failed or partial (latest 500)", `${failed} of ${rows.length}`],
        ["Session duration p50 / p95 (latest 500)", `${fmtMs(q(0.5))} / ${fmtMs(q(0.95))}`]].map(([label, value]) =>
        el("div", { class: "card" }, el("div", { class: "muted" }, label), el("div", { class: "value" }, value)))),
      el("h2", {}, `Events by type per hour, last ${hours} h`),
      typeChart(perHour, windows, byType.map(([type]) => type)),
      el("h2", {}, `Tokens and cost by model, last ${hours} h`),
      modelTable(models),
      el("h2", {}, "Events by type, all time"),
      el("table", {}, el("tbody", {}, byType.map(([type, count]) => el("tr", {}, el("td", {}, shortType(type)), el("td", { class: "num" }, count))))));
  } catch (error) {
    show(el("h1", {}, "Stats"), failure(error));
  }
}

const shortType = (type) => type.replace("EVENT_TYPE_", "");

/** Stacked columns, one per hour: the most frequent types in their colour, the rest as "other". */
function typeChart(perHour, windows, typesByFrequency) {
  const shown = typesByFrequency.slice(0, TYPE_COLOURS - 1);
  const max = Math.max(1, ...perHour.map((h) => Number(h.total_events || 0)));
  const columns = perHour.map((hour, i) => {
    const counts = Object.entries(hour.events_by_type || {});
    const segment = (label, count, colour) => (count > 0
      ? el("div", { class: `seg t${colour}`, style: `height:${(count / max) * 100}%`, title: `${label}: ${count}` })
      : null);
    const other = counts.filter(([type]) => !shown.includes(type)).reduce((sum, [, n]) => sum + Number(n), 0);
    return el("div", { class: "col", title: `${new Date(windows[i][0]).toISOString()}: ${hour.total_events || 0}` },
      segment("other", other, TYPE_COLOURS - 1),
      shown.slice().reverse().map((type) => segment(shortType(type), Number((hour.events_by_type || {})[type] || 0), shown.indexOf(type))));
  });
  const legend = el("ul", { class: "legend" }, [...shown.map(shortType), "other"].map((label, i) =>
    el("li", {}, el("span", { class: `swatch t${i === shown.length ? TYPE_COLOURS - 1 : i}` }), label)));
  return el("div", {}, el("div", { class: "chart stacked", role: "img", "aria-label": "Events by type per hour" }, columns), legend);
}

function modelTable(stats) {
  const rows = stats.others ? [...stats.models, Object.assign({}, stats.others, { provider: "", model: "(other models)" })] : stats.models;
  if (!rows.length) return el("p", { class: "muted" }, "No model calls in this range.");
  const header = ["Provider", "Model", "Calls", "Failed", "Failure rate", "Input tokens", "Output tokens", "Cost"];
  return el("table", { class: "models" }, el("thead", {}, el("tr", {}, header.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.map((m) => el("tr", {}, el("td", {}, m.provider), el("td", {}, m.model),
      [m.calls, m.failed_calls, percent(m.failed_calls, m.calls),
        m.input_tokens, m.output_tokens, m.cost.toFixed(4)].map((v) => el("td", { class: "num" }, v))))));
}

// ---- live tail ----------------------------------------------------------------------

let tailAbort = null;

async function tailPage() {
  const log = el("div", { class: "tail", role: "log", "aria-live": "polite", "aria-label": "Live events" });
  const status = el("p", { class: "muted" }, "Connecting…");
  show(el("h1", {}, "Live tail"), status, log);
  const controller = new AbortController();
  tailAbort = controller;
  let lastId = null;
  const { key } = credentials();
  while (!controller.signal.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (key) headers.Authorization = "Bearer " + key;
      if (lastId) headers["Last-Event-ID"] = lastId;
      const response = await fetch(withTenant("/v1/tail"), { headers, signal: controller.signal });
      if (!response.ok) { status.textContent = `${response.status}: ${await response.text()}`; status.className = "error"; return; }
      status.textContent = "Connected: new events appear below as they are stored.";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = { id: null, event: "message", data: "" };
          for (const line of block.split("\n")) {
            if (line.startsWith("id:")) message.id = line.slice(3).trim();
            else if (line.startsWith("event:")) message.event = line.slice(6).trim();
            else if (line.startsWith("data:")) message.data += line.slice(5).trim();
          }
          if (message.event === "error") { status.textContent = message.data; continue; }
          if (!message.data) continue;
          if (message.id) lastId = message.id;
          log.append(tailLine(JSON.parse(message.data)));
          if (log.childElementCount > 2000) log.firstElementChild.remove();
          log.scrollTop = log.scrollHeight;
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      status.textContent = `Reconnecting: ${error.message}`;
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

function tailLine(event) {
  const status = event.status || "";
  const failed = (event.type || "").endsWith("ERROR") || status === "FAILED" || status === "CANCELLED";
  const mark = failed ? "✗" : status === "COMPLETED" ? "✓" : "~";
  const content = event.content || {};
  const detail = content.name || content.model || content.error_message || content.method || `session ${event.session_id || ""}`;
  const time = (event.timestamp || "").slice(11, 23);
  return el("div", { class: "line", "data-event": event.event_id },
    `${time.padEnd(12)}  ${(event.agent_name || "").padEnd(16)}  ${(event.type || "").padEnd(24)}  `,
    el("span", { class: failed ? "bad" : "ok" }, mark), `  ${detail}`);
}

// ---- routing ------------------------------------------------------------------------

function route() {
  if (tailAbort) { tailAbort.abort(); tailAbort = null; }
  const [path, query] = location.hash.slice(1).split("?");
  const params = new URLSearchParams(query || "");
  const page = path.split("/")[1] || "sessions";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.page === page);
  const { key, tenant } = credentials();
  document.getElementById("who").textContent = key ? "signed in with a key" : tenant ? `dev mode · ${tenant}` : "";
  if (page === "login" || (!key && !tenant)) return loginPage();
  if (page === "session") return sessionPage(decodeURIComponent(path.split("/").slice(2).join("/")));
  if (page === "stats") return statsPage();
  if (page === "tail") return tailPage();
  return sessionsPage(params);
}

document.getElementById("sign-out").addEventListener("click", () => {
  store.removeItem("chaukas.key");
  store.removeItem("chaukas.tenant");
  location.hash = "#/login";
});
window.addEventListener("hashchange", route);
route();
