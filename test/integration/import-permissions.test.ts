/** `profile import` under sudo reads the file with the caller's permissions, not root's. */
import { copyFile, chmod, mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { SKIP_REASON, makeDirs, sandboxed, vpnns, type TestDirs } from "./helpers.js";

const NOBODY = { SUDO_UID: "65534", SUDO_GID: "65534", SUDO_USER: "nobody" };

describe.skipIf(!sandboxed)(`import permissions (${sandboxed ? "sandboxed" : SKIP_REASON})`, () => {
  let dirs: TestDirs;
  let folder: string;

  beforeAll(async () => {
    dirs = await makeDirs("import-permissions");
    folder = await mkdtemp("/run/vpnns/import-");
    await chmod(folder, 0o755);
  });

  it("rejects a file the caller cannot read", async () => {
    const file = join(folder, "root-only.conf");
    await copyFile("profiles/example.conf", file);
    await chmod(file, 0o600);
    const result = await vpnns(dirs, ["profile", "import", file, "--name", "rootonly"], { env: NOBODY });
    expect(result.stderr).toBe(`vpnns: cannot read ${file} as user nobody: cat: ${file}: Permission denied`);
    expect(result.exitCode).toBe(2);
  });

  it("quotes no line of a root-only file", async () => {
    const result = await vpnns(dirs, ["profile", "import", "/etc/shadow", "--name", "shadow"], { env: NOBODY });
    expect(result.stderr).not.toContain("root:");
    expect(result.exitCode).toBe(2);
  });

  it("imports a file the caller can read", async () => {
    const file = join(folder, "readable.conf");
    await copyFile("profiles/example.conf", file);
    await chmod(file, 0o644);
    const result = await vpnns(dirs, ["profile", "import", file, "--name", "readable"], { env: NOBODY });
    expect(result.stderr).toContain("imported profile readable");
    expect(result.exitCode).toBe(0);
  });
});
