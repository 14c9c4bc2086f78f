// Built by web-client/scripts/build.mjs from web-client/. Do not edit: run `npm run build` in web-client/.

// pages/demo.ts
import { Client, RpcError } from "./switchboard-client.js";

// pages/common.ts
function wsUrl(user2) {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (user2) url.searchParams.set("user", user2);
  return url.toString();
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
function clock(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}

// pages/demo.ts
var query = new URLSearchParams(location.search);
var user = query.get("user") || `guest-${Math.floor(Math.random() * 9e3 + 1e3)}`;
var room = query.get("room") || "lobby";
$("me").textContent = user;
$("room-name").textContent = room;
var client = new Client(wsUrl(user));
window.client = client;
var badge = $("conn-state");
client.events.on("state", ({ state }) => {
  badge.textContent = state;
  badge.dataset["state"] = state;
});
client.events.on("connected", (w) => system(`connected as ${w.user} (session ${w.session})`));
client.events.on(
  "disconnected",
  (d) => system(`disconnected (${d.code}${d.reason ? " " + d.reason : ""})${d.reconnect ? ", reconnecting…" : ""}`)
);
function add(kind, from, text2) {
  const box = $("messages");
  const div = el("div", void 0, { class: `msg ${kind}` });
  div.dataset["kind"] = kind;
  div.append(el("span", `${clock(Date.now())} `, { class: "muted" }));
  if (from) div.append(el("b", from));
  div.append(el("span", text2));
  box.append(div);
  box.scrollTop = box.scrollHeight;
}
function system(text2) {
  add("system", "", text2);
}
function show(value) {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && "text" in value) return String(value.text);
  return JSON.stringify(value);
}
var roomSub = client.subscribe(`chat:${room}`);
roomSub.on("message", (p) => {
  const d = p.data ?? {};
  add("room", String(d.from ?? "?"), String(d.text ?? JSON.stringify(p.data)));
});
roomSub.on("subscribed", (s) => {
  if (s.resumed && !s.recovered) system(`some room messages were missed (${s.gap ?? "gap"})`);
});
client.on("chat.message", ({ from, text: text2 }) => add("dm", `${from} → you`, text2));
client.events.on("notification", ({ method, params }) => {
  if (method !== "chat.message") add("push", method, show(params));
});
client.events.on("publication", (p) => {
  if (p.topic.startsWith("user:")) add("push", p.topic, show(p.data));
});
var dialog = $("confirm");
client.handle("ui.confirm", ([question], { signal }) => {
  $("confirm-text").textContent = question;
  dialog.showModal();
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-yes").removeEventListener("click", yes);
      $("confirm-no").removeEventListener("click", no);
      dialog.close();
      add("system", "", `you answered ${answer ? "yes" : "no"} to “${question}”`);
      resolve(answer);
    };
    const yes = () => done(true);
    const no = () => done(false);
    $("confirm-yes").addEventListener("click", yes);
    $("confirm-no").addEventListener("click", no);
    signal.addEventListener("abort", () => {
      dialog.close();
      system(`the server gave up on “${question}”`);
    });
  });
});
client.handle("page.info", () => ({ page: "demo", user, room, url: location.href, at: Date.now() }));
function form(id, run) {
  const f = $(id);
  f.addEventListener("submit", (event) => {
    event.preventDefault();
    run(new FormData(f), f).catch(
      (error) => system(`error: ${error instanceof RpcError ? `${error.message} (${error.code})` : String(error)}`)
    );
  });
}
var text = (data, name) => String(data.get(name) ?? "").trim();
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
    timeout_ms: 15e3
  });
  const entries = Array.isArray(answer) ? answer : answer.outcomes;
  const body = $("ask-results").querySelector("tbody");
  body.replaceChildren(
    ...entries.map((e) => {
      const tr = el("tr");
      const answer2 = e.error ? `error ${e.error.code}: ${e.error.message}` : JSON.stringify(e.result);
      tr.append(el("td", e.session ?? "", { class: "mono" }), el("td", answer2));
      return tr;
    })
  );
});
form("callback-form", async () => {
  const result = await client.call("demo.callback", { method: "ui.confirm", params: ["Did the server reach you?"] });
  $("callback-result").textContent = `the server got: ${JSON.stringify(result)}`;
});
