#!/usr/bin/env node
/**
 * Bundles the vpnns command line into dist/cli/main.js, after tsc has built dist/.
 *
 * Node.js 20 resolves, reads and compiles every ES module file on its own, and execa alone is
 * about a hundred of them, so an unbundled `vpnns` spent most of its start loading modules. The
 * bundle keeps the command modules lazy: each dynamic import() becomes a chunk of its own, loaded
 * only by the command that needs it. The chunks sit next to main.js in dist/cli/, one folder below
 * dist/ like every tsc output, so the paths that the code builds from import.meta.url, such as
 * "../publish/supervisor.js", point at the same files from a chunk as from tsc's output.
 *
 * conf stays outside the bundle: only the commands that write profiles or settings load it.
 * Bundled CommonJS packages (commander, and cross-spawn inside execa) call require(), which an
 * ES module does not have, so every chunk starts by making one.
 */
import { build } from "esbuild";
import { readdir, rm } from "node:fs/promises";

const outdir = new URL("../dist/cli/", import.meta.url);

// Chunks of an earlier build carry other hashes; remove them so that dist/cli/ holds one build.
for (const name of await readdir(outdir)) {
  if (/-[A-Z0-9]{8}\.js(\.map)?$/.test(name)) await rm(new URL(name, outdir));
}

await build({
  entryPoints: [new URL("../src/cli/main.ts", import.meta.url).pathname],
  outdir: outdir.pathname,
  entryNames: "[name]",
  chunkNames: "[name]-[hash]",
  bundle: true,
  splitting: true,
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
