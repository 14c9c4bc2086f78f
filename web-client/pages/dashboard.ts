// The live dashboard at `/`: counts, a messages-per-second chart, the
// sessions of this node, recent connects and disconnects, and a console that
// drives the server API. It is itself a client of the gateway.

import { Client, RpcError, ServerApi, type CallEntry, type Stats } from "switchboard-client";
import { $, apiUrl, clock, el, parseJson, wsUrl } from "./common.js";

const POLL_MS = 1000;
const CHART_POINTS = 120;
const KEY_STORAGE = "switchboard.apiKey";

const keyInput = $<HTMLInputElement>("api-key");
keyInput.value = sessionStorage.getItem(KEY_STORAGE) ?? "";
let api = new ServerApi(apiUrl(), { key: keyInput.value });
keyInput.addEventListener("change", () => {
  sessionStorage.setItem(KEY_STORAGE, keyInput.value);
  api = new ServerApi(apiUrl(), { key: keyInput.value });
});

// The dashboard's own session: it shows the client's state machine at work.
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

// --- stats, sessions, events -------------------------------------------

const rates: number[] = [];
let last: { total: number; at: number } | undefined;
let seenEvents = "";

function showStats(stats: Stats, now: number): void {
  $("node").textContent = stats.node;
  $("stat-sessions").textContent = String(stats.sessions);
  $("stat-users").textContent = String(stats.users);
  $("stat-topics").textContent = String(stats.topics);
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

/** Sessions listed in the table (one page of presence). */
const SESSIONS_SHOWN = 200;

async function poll(): Promise<void> {
  try {
    // One page: the first sessions by (user, session), however many are connected.
    const [stats, presence] = await Promise.all([
      api.call("stats", {}),
      api.call("presence", { limit: SESSIONS_SHOWN }),
    ]);
    showStats(stats, performance.now());
    const entries = Array.isArray(presence) ? presence : presence.entries;
    const body = $("sessions-table").querySelector("tbody") as HTMLTableSectionElement;
    body.replaceChildren(
      ...entries.map((p) => {
        const tr = el("tr");
        tr.append(el("td", p.session, { class: "mono" }), el("td", p.user), el("td", p.node, { class: "mono" }));
        return tr;
      }),
    );
    $("api-status").hidden = true;
    document.body.dataset["polled"] = String(Number(document.body.dataset["polled"] ?? "0") + 1);
  } catch (error) {
    const status = $("api-status");
    status.hidden = false;
    status.textContent = `The server API (POST /api) did not answer: ${describe(error)}`;
  }
}

// --- the console -----------------------------------------------------------

function log(text: string, cls = ""): void {
  const list = $("console-log");
  list.prepend(el("li", `${clock(Date.now())} ${text}`, cls ? { class: cls } : {}));
  while (list.children.length > 50) list.lastElementChild?.remove();
}

function describe(error: unknown): string {
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

void poll();
setInterval(() => void poll(), POLL_MS);
