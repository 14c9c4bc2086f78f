// Builds the package and the gateway's embedded pages.
//
//   node scripts/build.mjs             both
//   node scripts/build.mjs --lib-only  the npm package only (dist/)
//
// - dist/: the npm package — ESM (index.js), CommonJS (cjs/index.js) and
//   declarations (tsc). Not committed. The repository's licence texts are
//   copied beside package.json for the package (not committed either).
// - ../server/assets/: what the gateway embeds with include_str! — the
//   browser bundle of the client (switchboard-client.js), the dashboard and
//   the demo page. Committed, so `cargo run` alone serves them; a unit test
//   rebuilds them into a temporary folder and fails if a byte differs.

import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
export const ASSETS_DIR = join(root, "..", "server", "assets");

/** The licence texts the npm package carries, from the repository's root. */
const LICENSES = ["LICENSE-MIT", "LICENSE-APACHE"];

/** The pages copied as they are. */
const STATIC = ["dashboard.html", "demo.html", "style.css"];

const BANNER =
  "// Built by web-client/scripts/build.mjs from web-client/. Do not edit: run `npm run build` in web-client/.";

/** Resolves `switchboard-client` to the sibling bundle, so the pages share one copy of the client. */
const sharedClient = {
  name: "shared-client",
  setup(build) {
    build.onResolve({ filter: /^switchboard-client$/ }, () => ({ path: "./switchboard-client.js", external: true }));
  },
};

/** Builds the embedded assets into `outdir` (deterministic: same sources, same bytes). */
export async function buildAssets(outdir) {
  mkdirSync(outdir, { recursive: true });
  const common = {
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    charset: "utf8",
    legalComments: "none",
    banner: { js: BANNER },
    logLevel: "warning",
    // Paths in the bundle's comments are relative to this folder, wherever the build runs from.
    absWorkingDir: root,
    write: true,
  };
  await esbuild.build({
    ...common,
    entryPoints: { "switchboard-client": join(root, "src", "index.ts") },
    outdir,
  });
  await esbuild.build({
    ...common,
    entryPoints: { dashboard: join(root, "pages", "dashboard.ts"), demo: join(root, "pages", "demo.ts") },
    outdir,
    plugins: [sharedClient],
  });
  for (const name of STATIC) copyFileSync(join(root, "pages", name), join(outdir, name));
}

/** The files an asset folder should hold. */
export function assetNames(dir) {
  return readdirSync(dir).sort();
}

async function buildLibrary() {
  const dist = join(root, "dist");
  rmSync(dist, { recursive: true, force: true });
  const common = {
    entryPoints: [join(root, "src", "index.ts")],
    bundle: true,
    platform: "neutral",
    target: "es2022",
    charset: "utf8",
    logLevel: "warning",
    absWorkingDir: root,
  };
  await esbuild.build({ ...common, format: "esm", outfile: join(dist, "index.js") });
  await esbuild.build({ ...common, format: "cjs", outfile: join(dist, "cjs", "index.js") });
  writeFileSync(join(dist, "cjs", "package.json"), '{ "type": "commonjs" }\n');
  const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json")], { stdio: "inherit" });
  // The same declarations serve CommonJS consumers from a folder typed commonjs.
  for (const name of readdirSync(dist)) {
    if (name.endsWith(".d.ts")) {
      writeFileSync(join(dist, "cjs", name), readFileSync(join(dist, name)));
    }
  }
  // The package carries the repository's licence texts (copies, not committed).
  for (const name of LICENSES) copyFileSync(join(root, "..", name), join(root, name));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await buildLibrary();
  if (!process.argv.includes("--lib-only")) {
    rmSync(ASSETS_DIR, { recursive: true, force: true });
    await buildAssets(ASSETS_DIR);
  }
}
