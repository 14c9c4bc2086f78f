// The installed package through its ESM entry point, in Node with `ws`.
import { Client } from "switchboard-client";
import WebSocket from "ws";

const [base] = process.argv.slice(2);
const client = new Client(`${base.replace(/^http/, "ws")}/ws?user=packaging-esm`, { WebSocket });
try {
  const me = await client.call("whoami");
  if (me?.user !== "packaging-esm") throw new Error(`whoami answered ${JSON.stringify(me)}`);
  console.log(`ESM import: whoami answered ${JSON.stringify(me)}`);
} finally {
  client.close();
}
