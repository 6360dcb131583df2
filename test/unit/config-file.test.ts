import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { checkConfigJsonFile, MAX_CONFIG_JSON_BYTES } from "../../src/core/config-file.js";
import { readSettings } from "../../src/core/settings.js";
import { readAssignments } from "../../src/apps/assignments.js";

let root: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "vpnns-config-file-"));
  vi.stubEnv("VPNNS_CONFIG_DIR", root);
});

afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(root, { recursive: true, force: true });
});

describe("checkConfigJsonFile", () => {
  it("returns false for a missing file", () => {
    expect(checkConfigJsonFile(join(root, "settings.json"), "settings file")).toBe(false);
  });

  it("returns true for a small file", () => {
    writeFileSync(join(root, "settings.json"), "{}");
    expect(checkConfigJsonFile(join(root, "settings.json"), "settings file")).toBe(true);
  });

  it("rejects a symbolic link", () => {
    const file = join(root, "settings.json");
    symlinkSync("/dev/null", file);
    expect(() => checkConfigJsonFile(file, "settings file")).toThrow(`invalid settings file ${file}: a symbolic link;`);
  });

  it("rejects a file above the limit", () => {
    const file = join(root, "apps.json");
    writeFileSync(file, " ".repeat(MAX_CONFIG_JSON_BYTES + 1));
    expect(() => checkConfigJsonFile(file, "app assignments file")).toThrow(`${MAX_CONFIG_JSON_BYTES + 1} bytes, at most`);
  });
});

describe("config files as FIFOs", () => {
  it("settings read rejects a FIFO", () => {
    const file = join(root, "settings.json");
    execFileSync("mkfifo", [file]);
    expect(() => readSettings()).toThrow(
      `invalid settings file ${file}: not a regular file; replace it with a regular JSON file or delete it`,
    );
  });

  it("assignments read rejects a FIFO", async () => {
    const file = join(root, "apps.json");
    execFileSync("mkfifo", [file]);
    await expect(readAssignments()).rejects.toThrow(`invalid app assignments file ${file}: not a regular file;`);
  });

  it("assignments read rejects a folder", async () => {
    mkdirSync(join(root, "apps.json"));
    await expect(readAssignments()).rejects.toThrow("not a regular file");
  });
});
