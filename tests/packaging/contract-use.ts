// Type-checks the generated contract against the installed package's
// declarations: a method it names is accepted, a misspelt one is not.
import { Client } from "switchboard-client";
import type { Contract } from "./contract.js";

export async function use(client: Client<Contract>): Promise<void> {
  await client.call("whoami");
  // @ts-expect-error: not a method of the contract
  await client.call("no.such.method");
}
