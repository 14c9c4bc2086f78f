// The installed package through its CommonJS entry point, in Node with `ws`.
const { Client } = require("switchboard-client");
const WebSocket = require("ws");

async function main() {
  const [base] = process.argv.slice(2);
  const client = new Client(`${base.replace(/^http/, "ws")}/ws?user=packaging-cjs`, { WebSocket });
  try {
    const me = await client.call("whoami");
    if (me?.user !== "packaging-cjs") throw new Error(`whoami answered ${JSON.stringify(me)}`);
    console.log(`CJS require: whoami answered ${JSON.stringify(me)}`);
  } finally {
    client.close();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
