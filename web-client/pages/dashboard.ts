// The live dashboard at `/`: counts, a messages-per-second chart, the
// sessions of the cluster page by page, recent connects and disconnects, and
// a console that drives the server API (`POST /api`).
//
// Which mode the gateway is in is read from the server API itself: the page
// first asks for `stats` without a key. An answer means the API is open, which
// only dev mode allows; then the page also opens its own `/ws` session to show
// the client's state machine and answer `page.info`. A refusal (HTTP 401,
// -32000) means keys are required: the page asks for one in a sign-in form,
// keeps it in a variable of this module only (never in storage, a cookie, the
// URL or the console) and sends it as `Authorization: Bearer <key>`.

import { Client, RpcError, ServerApi, type CallEntry, type PresenceEntry, type Stats } from "switchboard-client";
import { $, apiUrl, clock, el, parseJson, wsUrl } from "./common.js";

const POLL_MS = 1000;
const CHART_POINTS = 120;
/** Sessions per page of the presence table. */
const PAGE_SIZE = 25;

/** The server API's error codes the page explains (see `codes` in the protocol crate). */
const UNAUTHORIZED = -32000;
const FORBIDDEN = -32001;

/** The API client; holds the key, when there is one, and nothing else does. */
let api = new ServerApi(apiUrl());
let pollTimer: ReturnType<typeof setInterval> | undefined;

// --- mode: open (dev) or keys required ---------------------------------------

async function start(): Promise<void> {
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

/** The dashboard's own session, in dev mode only: it shows the client's state machine at work. */
function openSession(): void {
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

function showSignIn(message?: string): void {
  stopPolling();
  $("board").hidden = true;
  $("signed-in").hidden = true;
  $("sign-in").hidden = false;
  const error = $("sign-in-error");
  error.hidden = message === undefined;
  error.textContent = message ?? "";
  $<HTMLInputElement>("sign-in-key").focus();
}

function showBoard(stats: Stats): void {
  $("sign-in").hidden = true;
  $("board").hidden = false;
  showStats(stats, performance.now());
  startPolling();
}

/** Why a key was refused, in words an operator can act on; `undefined` when the error is not a refusal. */
function refusal(error: unknown): string | undefined {
  if (!(error instanceof RpcError)) return undefined;
  const reason = (error.data as { reason?: unknown } | undefined)?.reason;
  if (error.code === UNAUTHORIZED) {
    return `The server refused this key${typeof reason === "string" ? `: ${reason}` : ""}.`;
  }
  if (error.code === FORBIDDEN) {
    return "This key lacks the presence scope the dashboard needs to read stats and presence.";
  }
  return undefined;
}

$<HTMLFormElement>("sign-in-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = $<HTMLInputElement>("sign-in-key");
  const candidate = new ServerApi(apiUrl(), { key: input.value });
  input.value = "";
  const button = $<HTMLFormElement>("sign-in-form").querySelector("button");
  if (button) button.disabled = true;
  candidate
    .call("stats", {})
    .then((stats) => {
      api = candidate;
      resetView();
      $("signed-in").hidden = false;
      showBoard(stats);
    })
    .catch((error: unknown) => showSignIn(refusal(error) ?? `The server API did not answer: ${describe(error)}`))
    .finally(() => {
      if (button) button.disabled = false;
    });
});

$("sign-out").addEventListener("click", () => {
  api = new ServerApi(apiUrl());
  resetView();
  showSignIn();
});

/** Forgets what the last key showed, so nothing of it stays on screen after signing out. */
function resetView(): void {
  rates.length = 0;
  last = undefined;
  seenEvents = "";
  cursors = [undefined];
  pageIndex = 0;
  for (const id of ["node", "stat-sessions", "stat-users", "stat-topics", "stat-nodes", "stat-rate"]) $(id).textContent = "–";
  for (const id of ["node-sessions", "node-users", "node-topics", "presence-count"]) $(id).textContent = "–";
  $("rate-chart").querySelector("polyline")?.setAttribute("points", "");
  $("events").replaceChildren();
  $("console-log").replaceChildren();
  ($("call-results").querySelector("tbody") as HTMLTableSectionElement).replaceChildren();
  showPresence([], undefined);
}

function startPolling(): void {
  stopPolling();
  void poll();
  pollTimer = setInterval(() => void poll(), POLL_MS);
}

function stopPolling(): void {
  if (pollTimer !== undefined) clearInterval(pollTimer);
  pollTimer = undefined;
}

function apiDown(error: unknown): void {
  const status = $("api-status");
  status.hidden = false;
  status.textContent = `The server API (POST /api) did not answer: ${describe(error)}`;
}

// --- stats, sessions, events -------------------------------------------

const rates: number[] = [];
let last: { total: number; at: number } | undefined;
let seenEvents = "";

function showStats(stats: Stats, now: number): void {
  $("node").textContent = stats.node;
  // Totals are the cluster's; the line below the cards is this node's.
  $("stat-sessions").textContent = String(stats.cluster.sessions);
  $("stat-users").textContent = String(stats.cluster.users);
  $("stat-topics").textContent = String(stats.cluster.topics);
  $("stat-nodes").textContent = String(stats.cluster.nodes);
  $("node-sessions").textContent = String(stats.sessions);
  $("node-users").textContent = String(stats.users);
  $("node-topics").textContent = String(stats.topics);
  // The rate is this node's: other nodes' counters only move at their heartbeats.
  const total = stats.messages_in + stats.messages_out;
  if (last !== undefined && now > last.at) {
    const rate = Math.max(0, ((total - last.total) * 1000) / (now - last.at));
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
      ...stats.events
        .slice()
        .reverse()
        .map((e) => {
          const li = el("li");
          li.dataset["kind"] = e.kind;
          li.append(
            el("span", `${clock(e.at_ms)} `, { class: "muted" }),
            el("strong", e.kind === "connect" ? "connect " : "disconnect ", { class: e.kind === "connect" ? "ok" : "error" }),
            el("span", `${e.user} `),
            el("code", e.session),
          );
          return li;
        }),
    );
  }
}

function drawChart(): void {
  const max = Math.max(1, ...rates);
  const step = 120 / (CHART_POINTS - 1);
  const offset = CHART_POINTS - rates.length;
  const points = rates.map((r, i) => `${((offset + i) * step).toFixed(1)},${(38 - (r / max) * 36).toFixed(1)}`);
  $("rate-chart").querySelector("polyline")?.setAttribute("points", points.join(" "));
}

const plural = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;

// --- presence, one page at a time ---------------------------------------------

/** The `after` cursor of each page visited so far; the first page has none. */
let cursors: (string | undefined)[] = [undefined];
let pageIndex = 0;

function showPresence(entries: PresenceEntry[], next: string | null | undefined): void {
  const body = $("sessions-table").querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren(
    ...entries.map((p) => {
      const tr = el("tr");
      tr.append(el("td", p.session, { class: "mono" }), el("td", p.user), el("td", p.node, { class: "mono" }));
      return tr;
    }),
  );
  cursors.length = pageIndex + 1;
  if (next != null) cursors.push(next);
  $<HTMLButtonElement>("presence-prev").disabled = pageIndex === 0;
  $<HTMLButtonElement>("presence-next").disabled = next == null;
  const first = pageIndex * PAGE_SIZE;
  $("presence-page").textContent =
    entries.length === 0 ? `page ${pageIndex + 1}` : `page ${pageIndex + 1}: ${first + 1}–${first + entries.length}`;
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

let polling = false;

async function poll(): Promise<void> {
  // A slow answer must not pile requests up behind it.
  if (polling) return;
  polling = true;
  const client = api;
  const index = pageIndex;
  try {
    const after = cursors[index];
    const [stats, counts, presence] = await Promise.all([
      client.call("stats", {}),
      client.call("presence_stats", {}),
      client.call("presence", { limit: PAGE_SIZE, ...(after === undefined ? {} : { after }) }),
    ]);
    // Signed out (or in with another key) while this was under way.
    if (client !== api || pollTimer === undefined) return;
    showStats(stats, performance.now());
    $("presence-count").textContent = `${plural(counts.sessions, "session")} of ${plural(counts.users, "user")}`;
    const page = Array.isArray(presence) ? { entries: presence, next: null } : presence;
    // If the operator paged while this was under way, the next poll fetches that page.
    if (index === pageIndex) {
      if (page.entries.length === 0 && pageIndex > 0) {
        // The sessions of this page have gone: step back.
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
    if (refused !== undefined && $("board").hidden === false && !$("signed-in").hidden) {
      // The key stopped working (a configuration reload, say): forget it.
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

// --- the console -----------------------------------------------------------

function log(text: string, cls = ""): void {
  const list = $("console-log");
  list.prepend(el("li", `${clock(Date.now())} ${text}`, cls ? { class: cls } : {}));
  while (list.children.length > 50) list.lastElementChild?.remove();
}

function describe(error: unknown): string {
  if (error instanceof RpcError && error.code === FORBIDDEN) {
    const scope = (error.data as { scope?: unknown } | undefined)?.scope;
    return `this key lacks the ${typeof scope === "string" ? `${scope} ` : ""}scope (${error.code})`;
  }
  if (error instanceof RpcError) return `${error.message} (${error.code})${error.data ? " " + JSON.stringify(error.data) : ""}`;
  return error instanceof Error ? error.message : String(error);
}

function form(id: string, run: (data: FormData) => Promise<void>): void {
  const f = $<HTMLFormElement>(id);
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    const button = f.querySelector("button");
    if (button) button.disabled = true;
    run(new FormData(f))
      .catch((error: unknown) => log(`${id.replace("-form", "")}: ${describe(error)}`, "error"))
      .finally(() => {
        if (button) button.disabled = false;
      });
  });
}

const text = (data: FormData, name: string): string => String(data.get(name) ?? "").trim();

form("notify-form", async (data) => {
  const user = text(data, "user");
  const method = text(data, "method");
  const params = parseJson(text(data, "params"));
  await api.call("notify", { target: { user }, method, ...(params === undefined ? {} : { params }) });
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
  const timeout = Number(text(data, "timeout")) || 5000;
  const answer = await api.call("call", {
    target: { user },
    method,
    timeout_ms: timeout,
    ...(params === undefined ? {} : { params }),
  });
  // Without a policy the answer is the array of outcomes.
  const entries = Array.isArray(answer) ? answer : answer.outcomes;
  showAnswers(entries);
  log(`called ${method} on ${user}: ${entries.length} session(s) answered`, "ok");
});

function showAnswers(entries: CallEntry[]): void {
  const body = $("call-results").querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren(
    ...entries.map((e) => {
      const tr = el("tr");
      tr.dataset["session"] = e.session ?? "";
      const answer =
        e.error != null
          ? el("pre", `error ${e.error.code}: ${e.error.message}`, { class: "error" })
          : el("pre", JSON.stringify(e.result));
      const td = el("td");
      td.append(answer);
      tr.append(el("td", e.session ?? `node ${e.node ?? "unknown"}`, { class: "mono" }), el("td", e.user ?? ""), td);
      return tr;
    }),
  );
  if (entries.length === 0) {
    const tr = el("tr");
    tr.append(el("td", "no session answered (is the user connected?)", { colspan: "3", class: "muted" }));
    body.append(tr);
  }
}

void start();
