// The page's script: bundled by esbuild from the installed package, as an
// application would bundle it. It reports through `window.packagingResult`.
import { Client } from "switchboard-client";

// The gateway's address comes in the query string: the page is served from elsewhere.
const gateway = new URL(new URLSearchParams(location.search).get("gateway"));
const client = new Client(`ws://${gateway.host}/ws?user=packaging-browser`);
client
  .call("whoami")
  .then(
    (me) => ({ ok: true, value: me }),
    (error) => ({ ok: false, value: String(error) }),
  )
  .then((result) => {
    client.close();
    document.getElementById("result").textContent = JSON.stringify(result);
    window.packagingResult = result;
  });
