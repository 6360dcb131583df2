/** vpnnsCommand: how a desktop launcher starts the vpnns it was written by, with real files. */
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { vpnnsCommand } from "../../src/apps/desktop.js";

describe("vpnnsCommand", () => {
  let folder: string;
  let script: string;

  beforeEach(async () => {
    folder = await mkdtemp(join(tmpdir(), "vpnns-command-"));
    script = join(folder, "main.js");
    await writeFile(script, "");
  });

  afterEach(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  it("uses node and the script when the script is not executable", async () => {
    await chmod(script, 0o644);
    expect(vpnnsCommand(script, "")).toEqual([process.execPath, script]);
  });

  it("uses the script alone when it is executable, as after npm link", async () => {
    await chmod(script, 0o755);
    expect(vpnnsCommand(script, "")).toEqual([script]);
  });

  it("uses the vpnns on PATH when it is this script", async () => {
    await chmod(script, 0o755);
    const bin = join(folder, "bin");
    await mkdir(bin);
    await symlink(script, join(bin, "vpnns"));
    expect(vpnnsCommand(script, bin)).toEqual([join(bin, "vpnns")]);
  });

  it("ignores a vpnns on PATH that is another program", async () => {
    await chmod(script, 0o644);
    const bin = join(folder, "bin");
    await mkdir(bin);
    await writeFile(join(bin, "vpnns"), "", { mode: 0o755 });
    expect(vpnnsCommand(script, bin)).toEqual([process.execPath, script]);
  });
});
