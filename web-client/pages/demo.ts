// The chat demo: a room (a topic), direct messages (a push to every session
// of a user), and the server calling the browser (`ui.confirm`, `page.info`).
// Typed by the demo application's contract (contract.ts, `npm run gen`).

import { Client, RpcError, type Publication } from "switchboard-client";
import { $, clock, el, wsUrl } from "./common.js";
import type { Contract } from "./contract.js";

const query = new URLSearchParams(location.search);
const user = query.get("user") || `guest-${Math.floor(Math.random() * 9000 + 1000)}`;
const room = query.get("room") || "lobby";
$("me").textContent = user;
$("room-name").textContent = room;

const client = new Client<Contract>(wsUrl(user));
// Exposed for tests and for poking at from the console.
(window as unknown as { client: Client<Contract> }).client = client;

const badge = $("conn-state");
client.events.on("state", ({ state }) => {
  badge.textContent = state;
  badge.dataset["state"] = state;
});
client.events.on("connected", (w) => system(`connected as ${w.user} (session ${w.session})`));
client.events.on("disconnected", (d) =>
  system(`disconnected (${d.code}${d.reason ? " " + d.reason : ""})${d.reconnect ? ", reconnecting…" : ""}`),
);

function add(kind: "room" | "dm" | "push" | "system", from: string, text: string): void {
  const box = $("messages");
  const div = el("div", undefined, { class: `msg ${kind}` });
  div.dataset["kind"] = kind;
  div.append(el("span", `${clock(Date.now())} `, { class: "muted" }));
  if (from) div.append(el("b", from));
  div.append(el("span", text));
  box.append(div);
  box.scrollTop = box.scrollHeight;
}

function system(text: string): void {
  add("system", "", text);
}

function show(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "text" in value) return String((value as { text: unknown }).text);
  return JSON.stringify(value);
}

// The room: a topic subscription, resumed after reconnects.
const roomSub = client.subscribe(`chat:${room}`);
roomSub.on("message", (p: Publication) => {
  const d = (p.data ?? {}) as { from?: unknown; text?: unknown };
  add("room", String(d.from ?? "?"), String(d.text ?? JSON.stringify(p.data)));
});
roomSub.on("subscribed", (s) => {
  if (s.resumed && !s.recovered) system(`some room messages were missed (${s.gap ?? "gap"})`);
});

// Pushes to this user: chat.message (direct messages from other users),
// anything the dashboard sends with "Notify a user", and publications on
// the personal topic.
client.on("chat.message", ({ from, text }) => add("dm", `${from} → you`, text));
client.events.on("notification", ({ method, params }) => {
  if (method !== "chat.message") add("push", method, show(params));
});
client.events.on("publication", (p) => {
  if (p.topic.startsWith("user:")) add("push", p.topic, show(p.data));
});

// The server calls the browser.
const dialog = $<HTMLDialogElement>("confirm");
client.handle("ui.confirm", ([question], { signal }) => {
  $("confirm-text").textContent = question;
  dialog.showModal();
  return new Promise<boolean>((resolve) => {
    const done = (answer: boolean): void => {
      $("confirm-yes").removeEventListener("click", yes);
      $("confirm-no").removeEventListener("click", no);
      dialog.close();
      add("system", "", `you answered ${answer ? "yes" : "no"} to “${question}”`);
      resolve(answer);
    };
    const yes = (): void => done(true);
    const no = (): void => done(false);
    $("confirm-yes").addEventListener("click", yes);
    $("confirm-no").addEventListener("click", no);
    signal.addEventListener("abort", () => {
      dialog.close();
      system(`the server gave up on “${question}”`);
    });
  });
});
client.handle("page.info", () => ({ page: "demo", user, room, url: location.href, at: Date.now() }));

function form(id: string, run: (data: FormData, f: HTMLFormElement) => Promise<void>): void {
  const f = $<HTMLFormElement>(id);
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    run(new FormData(f), f).catch((error: unknown) =>
      system(`error: ${error instanceof RpcError ? `${error.message} (${error.code})` : String(error)}`),
    );
  });
}

const text = (data: FormData, name: string): string => String(data.get(name) ?? "").trim();

form("send-form", async (data, f) => {
  await client.call("chat.send", { room, text: text(data, "text") });
  f.reset();
});

form("dm-form", async (data) => {
  await client.call("chat.dm", { user: text(data, "user"), text: text(data, "text") });
  system(`sent to every tab of ${text(data, "user")}`);
});

form("ask-form", async (data) => {
  const answer = await client.call("chat.ask", {
    user: text(data, "user"),
    method: "ui.confirm",
    params: [text(data, "question")],
    timeout_ms: 15000,
  });
  // Without a policy the gateway answers the outcomes as a list.
  const entries = Array.isArray(answer) ? answer : answer.outcomes;
  const body = $("ask-results").querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren(
    ...entries.map((e) => {
      const tr = el("tr");
      const answer = e.error ? `error ${e.error.code}: ${e.error.message}` : JSON.stringify(e.result);
      tr.append(el("td", e.session ?? "", { class: "mono" }), el("td", answer));
      return tr;
    }),
  );
});

form("callback-form", async () => {
  const result = await client.call("demo.callback", { method: "ui.confirm", params: ["Did the server reach you?"] });
  $("callback-result").textContent = `the server got: ${JSON.stringify(result)}`;
});
