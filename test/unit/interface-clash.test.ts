import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { requireOwnInterface, requireOwnInterfaceForDown } from "../../src/core/interface-clash.js";
import { findInterfaceClash, interfaceName } from "../../src/core/names.js";
import { importProfile } from "../../src/profile/store.js";

const PRIVATE_KEY = "test+private+key00000000000000000000000000A=";
const PEER_KEY = "test+peer+public+key0000000000000000000000A=";
const WG_QUICK = `[Interface]\nPrivateKey = ${PRIVATE_KEY}\nAddress = 192.0.2.2/32\n[Peer]\nPublicKey = ${PEER_KEY}\nAllowedIPs = 0.0.0.0/0\n`;

/** A long name and the short name that shortening maps to the same interface. */
const LONG = "abcdefghijkl";
const SHORT = interfaceName(LONG).slice("vns-".length);

describe("findInterfaceClash", () => {
  it("finds a plain name that equals a shortened one", () => {
    expect(SHORT).toMatch(/^abcdef-[0-9a-f]{4}$/);
    expect(findInterfaceClash(SHORT, ["home", LONG])).toBe(LONG);
    expect(findInterfaceClash(LONG, [SHORT])).toBe(SHORT);
  });

  it("ignores the profile itself", () => {
    expect(findInterfaceClash(LONG, [LONG, "home"])).toBeUndefined();
  });

  it("ignores long names with other hashes", () => {
    expect(findInterfaceClash("mullvad-se-got-001", ["mullvad-se-got-002"])).toBeUndefined();
  });
});

describe("interface clash checks", () => {
  let root: string;

  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), "vpnns-clash-"));
    vi.stubEnv("VPNNS_CONFIG_DIR", join(root, "config"));
    vi.stubEnv("VPNNS_STATE_DIR", join(root, "state"));
  });

  afterEach(() => {
    vi.unstubAllEnvs();
    rmSync(root, { recursive: true, force: true });
  });

  it("import rejects a clashing name", async () => {
    const file = join(root, "work.conf");
    writeFileSync(file, WG_QUICK, { mode: 0o600 });
    await importProfile(file, { name: LONG });
    await expect(importProfile(file, { name: SHORT })).rejects.toThrow(
      `invalid profile name "${SHORT}": its interface name ${interfaceName(LONG)} is also that of profile ${LONG}; choose another with --name`,
    );
  });

  it("use rejects a clash with a profile that is up", async () => {
    mkdirSync(join(root, "state", LONG), { recursive: true });
    await expect(requireOwnInterface(SHORT, [])).rejects.toThrow(`is also that of profile ${LONG}`);
  });

  it("down rejects a clash with a profile that is up", async () => {
    mkdirSync(join(root, "state", LONG), { recursive: true });
    await expect(requireOwnInterfaceForDown(SHORT)).rejects.toThrow(
      `profile ${SHORT} is not up, and its interface name ${interfaceName(SHORT)} belongs to profile ${LONG}, which is up; nothing was removed`,
    );
  });

  it("down accepts a profile without clash", async () => {
    mkdirSync(join(root, "state", "home"), { recursive: true });
    await expect(requireOwnInterfaceForDown(SHORT)).resolves.toBeUndefined();
  });
});
