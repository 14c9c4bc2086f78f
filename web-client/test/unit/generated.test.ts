// The committed generated files must be what the generators produce now:
// the TypeScript types from schemas/*.json, and the gateway's embedded pages
// in server/assets/ from web-client/. When one of these fails, run
// `npm run gen` or `npm run build` in web-client/ and commit the result.

import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ASSETS_DIR, assetNames, buildAssets } from "../../scripts/build.mjs";
import { TARGETS, generate } from "../../scripts/gen-types.mjs";

describe("generated types", () => {
  for (const target of TARGETS) {
    it(`${target.output.split("/").pop()} is up to date with ${target.input.split("/").pop()}`, () => {
      const fresh = generate(JSON.parse(readFileSync(target.input, "utf8")), target);
      const committed = readFileSync(target.output, "utf8");
      expect(committed === fresh, "stale: run `npm run gen` in web-client/").toBe(true);
    });
  }
});

describe("embedded assets", () => {
  const out = mkdtempSync(join(tmpdir(), "switchboard-assets-"));
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("server/assets/ is exactly what `npm run build` produces", async () => {
    await buildAssets(out);
    expect(assetNames(ASSETS_DIR)).toEqual(assetNames(out));
    for (const name of assetNames(out)) {
      const same = readFileSync(join(out, name)).equals(readFileSync(join(ASSETS_DIR, name)));
      expect(same, `server/assets/${name} is stale: run \`npm run build\` in web-client/`).toBe(true);
    }
  });
});
