#!/usr/bin/env node
/**
 * Bundles the vpnns command line into the one file dist/cli/main.js, after tsc has built dist/.
 *
 * Node.js 20 resolves, reads and compiles every ES module file on its own, and execa alone is
 * about a hundred of them, so an unbundled `vpnns` spent most of its start loading modules. Node.js
 * parses the whole bundle, but a module that the source loads with import() is still evaluated
 * only when a command imports it. One file was faster than a bundle split into
 * chunks per dynamic import: `vpnns run` needed about 30 of those chunks, and each cost a module
 * load of its own (docs/architecture.md, "Build", has the measurements).
 *
 * main.js sits in dist/cli/ like tsc's output, so the paths that the code builds from
 * import.meta.url, such as "../publish/supervisor.js", name the same files from the bundle.
 *
 * conf stays outside the bundle: only the commands that write profiles or settings load it.
 * Bundled CommonJS packages (commander, and cross-spawn inside execa) call require(), which an
 * ES module does not have, so the bundle starts by making one.
 */
import { build } from "esbuild";
import { readdir, rm } from "node:fs/promises";

const outdir = new URL("../dist/cli/", import.meta.url);

// An earlier build that split the bundle left chunks named NAME-HASH.js beside main.js.
for (const name of await readdir(outdir)) {
  if (/-[A-Z0-9]{8}\.js(\.map)?$/.test(name)) await rm(new URL(name, outdir));
}

await build({
  entryPoints: [new URL("../src/cli/main.ts", import.meta.url).pathname],
  outfile: new URL("main.js", outdir).pathname,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  external: ["conf"],
  sourcemap: true,
  minifyWhitespace: true,
  minifySyntax: true,
  banner: { js: 'import { createRequire as vpnnsCreateRequire } from "node:module"; const require = vpnnsCreateRequire(import.meta.url);' },
  logLevel: "warning",
});
