// Built by web-client/scripts/build.mjs from web-client/. Do not edit: run `npm run build` in web-client/.

// pages/dashboard.ts
import { Client, RpcError, ServerApi } from "./switchboard-client.js";

// pages/common.ts
function wsUrl(user) {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (user) url.searchParams.set("user", user);
  return url.toString();
}
function apiUrl() {
  return new URL("api", location.href).toString();
}
function $(id) {
  const el2 = document.getElementById(id);
  if (el2 === null) throw new Error(`#${id} is missing`);
  return el2;
}
function el(tag, text2, attrs = {}) {
  const e = document.createElement(tag);
  if (text2 !== void 0) e.textContent = text2;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}
function parseJson(text2) {
  const t = text2.trim();
  return t === "" ? void 0 : JSON.parse(t);
}
function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

// pages/dashboard.ts
var POLL_MS = 1e3;
var CHART_POINTS = 120;
var PAGE_SIZE = 25;
var UNAUTHORIZED = -32e3;
var FORBIDDEN = -32001;
var api = new ServerApi(apiUrl());
var pollTimer;
async function start() {
  try {
    const stats = await api.call("stats", {});
    $("mode").textContent = "Dev mode: the server API answers without a key.";
    $("mode").hidden = false;
    openSession();
    showBoard(stats);
  } catch (error) {
    if (error instanceof RpcError && error.code === UNAUTHORIZED) {
      showSignIn();
      return;
    }
    apiDown(error);
    setTimeout(() => void start(), POLL_MS);
  }
}
function openSession() {
  const client = new Client(wsUrl("dashboard"));
  const badge = $("conn-state");
  client.events.on("state", ({ state }) => {
    badge.textContent = state;
    badge.dataset["state"] = state;
  });
  client.events.on("connected", (w) => {
    badge.title = `session ${w.session} as ${w.user}`;
  });
  client.handle("page.info", () => ({ page: "dashboard", url: location.href, userAgent: navigator.userAgent }));
  $("session-info").hidden = false;
}
function showSignIn(message) {
  stopPolling();
  $("board").hidden = true;
  $("signed-in").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.hidden = message === void 0;
  error.textContent = message ?? "";
  $("sign-in-key").focus();
}
function showBoard(stats) {
  $("sign-in").hidden = true;
  $("board").hidden = false;
  showStats(stats, performance.now());
  startPolling();
}
function refusal(error) {
  if (!(error instanceof RpcError)) return void 0;
  const reason = error.data?.reason;
  if (error.code === UNAUTHORIZED) {
    return `The server refused this key${typeof reason === "string" ? `: ${reason}` : ""}.`;
  }
  if (error.code === FORBIDDEN) {
    return "This key lacks the presence scope the dashboard needs to read stats and presence.";
  }
  return void 0;
}
$("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $("sign-in-key");
  const candidate = new ServerApi(apiUrl(), { key: input.value });
  input.value = "";
  const button = $("sign-in-form").querySelector("button");
  if (button) button.disabled = true;
  candidate.call("stats", {}).then((stats) => {
    api = candidate;
    resetView();
    $("signed-in").hidden = false;
    showBoard(stats);
  }).catch((error) => showSignIn(refusal(error) ?? `The server API did not answer: ${describe(error)}`)).finally(() => {
    if (button) button.disabled = false;
  });
});
$("sign-out").addEventListener("click", () => {
  api = new ServerApi(apiUrl());
  resetView();
  showSignIn();
});
function resetView() {
  rates.length = 0;
  last = void 0;
  seenEvents = "";
  cursors = [void 0];
  pageIndex = 0;
  for (const id of ["node", "stat-sessions", "stat-users", "stat-topics", "stat-nodes", "stat-rate"]) $(id).textContent = "–";
  for (const id of ["node-sessions", "node-users", "node-topics", "presence-count"]) $(id).textContent = "–";
  $("rate-chart").querySelector("polyline")?.setAttribute("points", "");
  $("events").replaceChildren();
  $("console-log").replaceChildren();
  $("call-results").querySelector("tbody").replaceChildren();
  showPresence([], void 0);
}
function startPolling() {
  stopPolling();
  void poll();
  pollTimer = setInterval(() => void poll(), POLL_MS);
}
function stopPolling() {
  if (pollTimer !== void 0) clearInterval(pollTimer);
  pollTimer = void 0;
}
function apiDown(error) {
  const status = $("api-status");
  status.hidden = false;
  status.textContent = `The server API (POST /api) did not answer: ${describe(error)}`;
}
var rates = [];
var last;
var seenEvents = "";
function showStats(stats, now) {
  $("node").textContent = stats.node;
  $("stat-sessions").textContent = String(stats.cluster.sessions);
  $("stat-users").textContent = String(stats.cluster.users);
  $("stat-topics").textContent = String(stats.cluster.topics);
  $("stat-nodes").textContent = String(stats.cluster.nodes);
  $("node-sessions").textContent = String(stats.sessions);
  $("node-users").textContent = String(stats.users);
  $("node-topics").textContent = String(stats.topics);
  const total = stats.messages_in + stats.messages_out;
  if (last !== void 0 && now > last.at) {
    const rate = Math.max(0, (total - last.total) * 1e3 / (now - last.at));
    rates.push(rate);
    if (rates.length > CHART_POINTS) rates.shift();
    $("stat-rate").textContent = rate < 10 ? rate.toFixed(1) : String(Math.round(rate));
    drawChart();
  }
  last = { total, at: now };
  const key = JSON.stringify(stats.events.at(-1) ?? null) + stats.events.length;
  if (key !== seenEvents) {
    seenEvents = key;
    const list = $("events");
    list.replaceChildren(
      ...stats.events.slice().reverse().map((e) => {
        const li = el("li");
        li.dataset["kind"] = e.kind;
        li.append(
          el("span", `${clock(e.at_ms)} `, { class: "muted" }),
          el("strong", e.kind === "connect" ? "connect " : "disconnect ", { class: e.kind === "connect" ? "ok" : "error" }),
          el("span", `${e.user} `),
          el("code", e.session)
        );
        return li;
      })
    );
  }
}
function drawChart() {
  const max = Math.max(1, ...rates);
  const step = 120 / (CHART_POINTS - 1);
  const offset = CHART_POINTS - rates.length;
  const points = rates.map((r, i) => `${((offset + i) * step).toFixed(1)},${(38 - r / max * 36).toFixed(1)}`);
  $("rate-chart").querySelector("polyline")?.setAttribute("points", points.join(" "));
}
var plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
var cursors = [void 0];
var pageIndex = 0;
function showPresence(entries, next) {
  const body = $("sessions-table").querySelector("tbody");
  body.replaceChildren(
    ...entries.map((p) => {
      const tr = el("tr");
      tr.append(el("td", p.session, { class: "mono" }), el("td", p.user), el("td", p.node, { class: "mono" }));
      return tr;
    })
  );
  cursors.length = pageIndex + 1;
  if (next != null) cursors.push(next);
  $("presence-prev").disabled = pageIndex === 0;
  $("presence-next").disabled = next == null;
  const first = pageIndex * PAGE_SIZE;
  $("presence-page").textContent = entries.length === 0 ? `page ${pageIndex + 1}` : `page ${pageIndex + 1}: ${first + 1}–${first + entries.length}`;
}
$("presence-next").addEventListener("click", () => {
  if (pageIndex + 1 >= cursors.length) return;
  pageIndex += 1;
  void poll();
});
$("presence-prev").addEventListener("click", () => {
  if (pageIndex === 0) return;
  pageIndex -= 1;
  void poll();
});
var polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  const client = api;
  const index = pageIndex;
  try {
    const after = cursors[index];
    const [stats, counts, presence] = await Promise.all([
      client.call("stats", {}),
      client.call("presence_stats", {}),
      client.call("presence", { limit: PAGE_SIZE, ...after === void 0 ? {} : { after } })
    ]);
    if (client !== api || pollTimer === void 0) return;
    showStats(stats, performance.now());
    $("presence-count").textContent = `${plural(counts.sessions, "session")} of ${plural(counts.users, "user")}`;
    const page = Array.isArray(presence) ? { entries: presence, next: null } : presence;
    if (index === pageIndex) {
      if (page.entries.length === 0 && pageIndex > 0) {
        pageIndex -= 1;
      } else {
        showPresence(page.entries, page.next);
      }
    }
    $("api-status").hidden = true;
    document.body.dataset["polled"] = String(Number(document.body.dataset["polled"] ?? "0") + 1);
  } catch (error) {
    if (client !== api) return;
    const refused = refusal(error);
    if (refused !== void 0 && $("board").hidden === false && !$("signed-in").hidden) {
      api = new ServerApi(apiUrl());
      resetView();
      showSignIn(refused);
    } else {
      apiDown(error);
    }
  } finally {
    polling = false;
  }
}
function log(text2, cls = "") {
  const list = $("console-log");
  list.prepend(el("li", `${clock(Date.now())} ${text2}`, cls ? { class: cls } : {}));
  while (list.children.length > 50) list.lastElementChild?.remove();
}
function describe(error) {
  if (error instanceof RpcError && error.code === FORBIDDEN) {
    const scope = error.data?.scope;
    return `this key lacks the ${typeof scope === "string" ? `${scope} ` : ""}scope (${error.code})`;
  }
  if (error instanceof RpcError) return `${error.message} (${error.code})${error.data ? " " + JSON.stringify(error.data) : ""}`;
  return error instanceof Error ? error.message : String(error);
}
function form(id, run) {
  const f = $(id);
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = f.querySelector("button");
    if (button) button.disabled = true;
    run(new FormData(f)).catch((error) => log(`${id.replace("-form", "")}: ${describe(error)}`, "error")).finally(() => {
      if (button) button.disabled = false;
    });
  });
}
var text = (data, name) => String(data.get(name) ?? "").trim();
form("notify-form", async (data) => {
  const user = text(data, "user");
  const method = text(data, "method");
  const params = parseJson(text(data, "params"));
  await api.call("notify", { target: { user }, method, ...params === void 0 ? {} : { params } });
  log(`notified ${user}: ${method}`, "ok");
});
form("publish-form", async (data) => {
  const topic = text(data, "topic");
  const result = await api.call("publish", { topic, data: parseJson(text(data, "data")) ?? null });
  log(`published on ${topic}${result.offset != null ? ` at offset ${result.offset}` : ""}`, "ok");
});
form("call-form", async (data) => {
  const user = text(data, "user");
  const method = text(data, "method");
  const params = parseJson(text(data, "params"));
  const timeout = Number(text(data, "timeout")) || 5e3;
  const answer = await api.call("call", {
    target: { user },
    method,
    timeout_ms: timeout,
    ...params === void 0 ? {} : { params }
  });
  const entries = Array.isArray(answer) ? answer : answer.outcomes;
  showAnswers(entries);
  log(`called ${method} on ${user}: ${entries.length} session(s) answered`, "ok");
});
function showAnswers(entries) {
  const body = $("call-results").querySelector("tbody");
  body.replaceChildren(
    ...entries.map((e) => {
      const tr = el("tr");
      tr.dataset["session"] = e.session ?? "";
      const answer = e.error != null ? el("pre", `error ${e.error.code}: ${e.error.message}`, { class: "error" }) : el("pre", JSON.stringify(e.result));
      const td = el("td");
      td.append(answer);
      tr.append(el("td", e.session ?? `node ${e.node ?? "unknown"}`, { class: "mono" }), el("td", e.user ?? ""), td);
      return tr;
    })
  );
  if (entries.length === 0) {
    const tr = el("tr");
    tr.append(el("td", "no session answered (is the user connected?)", { colspan: "3", class: "muted" }));
    body.append(tr);
  }
}
void start();
