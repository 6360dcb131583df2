import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  appOfCommand,
  appsOfProfile,
  assignmentsFile,
  chooseProfile,
  readAssignments,
  setAppProfile,
  setDefaultProfile,
  unsetAppProfile,
  validateAppName,
} from "../../src/apps/assignments.js";
import { UsageError } from "../../src/core/errors.js";

const root = mkdtempSync(join(tmpdir(), "vpnns-assignments-"));
const savedConfigDir = process.env.VPNNS_CONFIG_DIR;
let configDir: string;
let counter = 0;

/** Store an empty file for each profile name; the assignments only check that the file exists. */
function storeProfiles(...names: string[]): void {
  mkdirSync(join(configDir, "profiles"), { recursive: true, mode: 0o700 });
  for (const name of names) writeFileSync(join(configDir, "profiles", `${name}.json`), "{}", { mode: 0o600 });
}

beforeEach(() => {
  configDir = join(root, `config-${counter++}`);
  process.env.VPNNS_CONFIG_DIR = configDir;
});

afterEach(() => {
  if (savedConfigDir === undefined) delete process.env.VPNNS_CONFIG_DIR;
  else process.env.VPNNS_CONFIG_DIR = savedConfigDir;
});

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
});

describe("validateAppName", () => {
  it.each(["firefox", "google-chrome-stable", "code.desktop", "qBittorrent", "app_1", ".hidden", "100%", "é"])("accepts %j", (name) => {
    expect(() => validateAppName(name)).not.toThrow();
  });

  it.each([
    ["", /empty/],
    ["/usr/bin/firefox", /base name without its folder, such as "firefox"/],
    ["-rf", /not starting with '-'/],
    [".", /not "." or ".."/],
    ["..", /not "." or ".."/],
    ["two words", /whitespace/],
    ["tab\tname", /whitespace/],
    ["bell\u0007", /control characters/],
    ["x".repeat(129), /129 bytes, at most 128/],
  ])("rejects %j", (name, message) => {
    expect(() => validateAppName(name)).toThrow(UsageError);
    expect(() => validateAppName(name)).toThrow(message);
  });
});

describe("appOfCommand", () => {
  it("takes the program's base name", () => {
    expect(appOfCommand(["/usr/bin/firefox", "--new-window"])).toBe("firefox");
    expect(appOfCommand(["qbittorrent"])).toBe("qbittorrent");
    expect(appOfCommand([])).toBe("");
  });
});

describe("assignments store", () => {
  it("reads none without creating anything", async () => {
    expect(await readAssignments()).toEqual({ apps: {} });
    expect(existsSync(configDir)).toBe(false);
  });

  it("stores with modes 0600 and 0700", async () => {
    storeProfiles("work");
    await setAppProfile("firefox", "work");
    expect(await readAssignments()).toEqual({ apps: { firefox: "work" } });
    expect(statSync(assignmentsFile()).mode & 0o777).toBe(0o600);
    expect(statSync(configDir).mode & 0o777).toBe(0o700);
  });

  it("rejects a missing profile", async () => {
    storeProfiles("work", "home");
    await expect(setAppProfile("firefox", "sweden")).rejects.toThrow("profile sweden not found; known profiles: home, work");
    expect(existsSync(assignmentsFile())).toBe(false);
  });

  it("rejects an invalid app name", async () => {
    storeProfiles("work");
    await expect(setAppProfile("/usr/bin/firefox", "work")).rejects.toThrow(UsageError);
  });

  it("unsets and reports the old profile", async () => {
    storeProfiles("work");
    await setAppProfile("firefox", "work");
    await setAppProfile("qbittorrent", "work");
    expect(await unsetAppProfile("firefox")).toBe("work");
    expect(await unsetAppProfile("firefox")).toBeUndefined();
    expect((await readAssignments()).apps).toEqual({ qbittorrent: "work" });
  });

  it("sets and clears the default", async () => {
    storeProfiles("work");
    await setDefaultProfile("work");
    expect((await readAssignments()).defaultProfile).toBe("work");
    await setDefaultProfile(undefined);
    expect(await readAssignments()).toEqual({ apps: {} });
  });

  it("clearing no default writes nothing", async () => {
    await setDefaultProfile(undefined);
    expect(existsSync(configDir)).toBe(false);
  });

  it("rejects invalid JSON naming the file", async () => {
    mkdirSync(configDir, { recursive: true });
    writeFileSync(assignmentsFile(), "{ not json", { mode: 0o600 });
    await expect(readAssignments()).rejects.toThrow(UsageError);
    await expect(readAssignments()).rejects.toThrow(`invalid app assignments file ${assignmentsFile()}`);
  });

  it.each([
    ['{"apps": {"fire fox": "work"}}'],
    ['{"apps": {"firefox": "Not A Profile"}}'],
    ['{"apps": {"firefox": 3}}'],
    ['{"apps": {}, "default": "work"}'],
    ['{"defaultProfile": ""}'],
  ])("rejects schema violation %s", async (text) => {
    mkdirSync(configDir, { recursive: true });
    writeFileSync(assignmentsFile(), text, { mode: 0o600 });
    await expect(readAssignments()).rejects.toThrow(/invalid app assignments file .*fix or delete the file/);
  });

  it("lists apps of a profile", () => {
    expect(appsOfProfile({ apps: { b: "work", a: "work", c: "home" } }, "work")).toEqual(["a", "b"]);
  });
});

describe("chooseProfile", () => {
  it("prefers --profile", async () => {
    expect(await chooseProfile("given", "firefox")).toEqual({ profile: "given", reason: "--profile" });
  });

  it("uses the app's profile before the default", async () => {
    storeProfiles("work", "home");
    await setAppProfile("firefox", "work");
    await setDefaultProfile("home");
    expect(await chooseProfile(undefined, "firefox")).toEqual({ profile: "work", reason: "app firefox" });
    expect(await chooseProfile(undefined, "curl")).toEqual({ profile: "home", reason: "default profile" });
  });

  it("does not use a single stored profile", async () => {
    storeProfiles("only");
    await expect(chooseProfile(undefined, "curl")).rejects.toThrow(UsageError);
    await expect(chooseProfile(undefined, "curl")).rejects.toThrow(
      "no profile given for curl; stored profiles: only. Choose one with --profile NAME, " +
        "assign one to the app with 'vpnns app set curl NAME', or set a default with 'vpnns profile default NAME'",
    );
  });

  it("says how to import without profiles", async () => {
    await expect(chooseProfile(undefined, "curl")).rejects.toThrow("no profile given and no profiles are stored; import one with: vpnns profile import FILE");
  });

  it("reports an assigned profile that was removed", async () => {
    storeProfiles("work", "home");
    await setAppProfile("firefox", "work");
    rmSync(join(configDir, "profiles", "work.json"));
    await expect(chooseProfile(undefined, "firefox")).rejects.toThrow(/profile work, assigned to app firefox in .*apps\.json, not found; stored profiles: home/);
  });

  it("ignores inherited object keys", async () => {
    storeProfiles("home");
    await setDefaultProfile("home");
    expect(await chooseProfile(undefined, "constructor")).toEqual({ profile: "home", reason: "default profile" });
  });
});
