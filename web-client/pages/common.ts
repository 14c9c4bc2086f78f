// Helpers shared by the dashboard and the demo page.

/** The gateway's WebSocket endpoint, next to the page: `/ws` for a page at `/` or `/demo`. */
export function wsUrl(user?: string): string {
  const url = new URL("ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (user) url.searchParams.set("user", user);
  return url.toString();
}

/** The server API endpoint, next to the page. */
export function apiUrl(): string {
  return new URL("api", location.href).toString();
}

/** The element with this id; throws when the page lacks it. */
export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (el === null) throw new Error(`#${id} is missing`);
  return el as T;
}

/** A new element with text and attributes. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  text?: string,
  attrs: Record<string, string> = {},
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** Parses a JSON text field; empty means `undefined`. */
export function parseJson(text: string): unknown {
  const t = text.trim();
  return t === "" ? undefined : (JSON.parse(t) as unknown);
}

/** `HH:MM:SS` of a time in milliseconds. */
export function clock(ms: number): string {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}
