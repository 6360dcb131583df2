import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { describeJsonError, importProfile, loadProfile, MAX_PROFILE_FILE_BYTES } from "../../src/profile/store.js";

const PRIVATE_KEY = "test+private+key00000000000000000000000000A=";
const PEER_KEY = "test+peer+public+key0000000000000000000000A=";

const VALID_PROFILE = {
  name: "work",
  interface: { privateKey: PRIVATE_KEY, addresses: ["192.0.2.2/32"], dns: [], dnsSearch: [] },
  peers: [{ publicKey: PEER_KEY, allowedIPs: ["0.0.0.0/0"] }],
};

const WG_QUICK = `[Interface]\nPrivateKey = ${PRIVATE_KEY}\nAddress = 192.0.2.2/32\n[Peer]\nPublicKey = ${PEER_KEY}\nAllowedIPs = 0.0.0.0/0\n`;

let root: string;
let profiles: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "vpnns-store-"));
  profiles = join(root, "profiles");
  mkdirSync(profiles, { recursive: true, mode: 0o700 });
  vi.stubEnv("VPNNS_CONFIG_DIR", root);
});

afterEach(() => {
  vi.unstubAllEnvs();
  rmSync(root, { recursive: true, force: true });
});

/** Runs `load`, expects a UsageError and returns its message. */
async function usageError(load: () => Promise<unknown>): Promise<string> {
  const error = await load().then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(UsageError);
  return (error as UsageError).message;
}

describe("loadProfile file checks", () => {
  it("loads a valid profile", async () => {
    writeFileSync(join(profiles, "work.json"), JSON.stringify(VALID_PROFILE), { mode: 0o600 });
    expect((await loadProfile("work")).name).toBe("work");
  });

  it("rejects a FIFO without blocking", async () => {
    const file = join(profiles, "work.json");
    execFileSync("mkfifo", ["-m", "600", file]);
    expect(await usageError(() => loadProfile("work"))).toBe(
      `invalid profile file ${file}: not a regular file; remove it and import the profile again with: vpnns profile import FILE --name work`,
    );
  });

  it("rejects a folder", async () => {
    const file = join(profiles, "work.json");
    mkdirSync(file, { mode: 0o700 });
    expect(await usageError(() => loadProfile("work"))).toContain(`invalid profile file ${file}: not a regular file;`);
  });

  it("rejects a symbolic link", async () => {
    const target = join(root, "elsewhere.json");
    writeFileSync(target, JSON.stringify(VALID_PROFILE), { mode: 0o600 });
    symlinkSync(target, join(profiles, "work.json"));
    expect(await usageError(() => loadProfile("work"))).toContain("it is a symbolic link, and vpnns reads only regular files there");
  });

  it("rejects a file above the size limit", async () => {
    const file = join(profiles, "work.json");
    writeFileSync(file, " ".repeat(MAX_PROFILE_FILE_BYTES + 1), { mode: 0o600 });
    expect(await usageError(() => loadProfile("work"))).toContain(`${MAX_PROFILE_FILE_BYTES + 1} bytes, at most ${MAX_PROFILE_FILE_BYTES} are allowed`);
  });

  it("rejects invalid UTF-8", async () => {
    const file = join(profiles, "work.json");
    writeFileSync(file, Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { mode: 0o600 });
    expect(await usageError(() => loadProfile("work"))).toContain(`invalid profile file ${file}: not valid UTF-8 text;`);
  });

  it("quotes no secret from invalid JSON", async () => {
    const file = join(profiles, "work.json");
    // A key without quotes makes V8 quote the text around it in its message.
    writeFileSync(file, `{"interface": {"privateKey": ${PRIVATE_KEY}}}`, { mode: 0o600 });
    const message = await usageError(() => loadProfile("work"));
    expect(message).not.toContain("private+key");
    expect(message).toBe(
      `invalid profile file ${file}: unexpected character "e", the file is not valid JSON; fix it or import the profile again with --force`,
    );
  });
});

describe("describeJsonError", () => {
  it("turns a position into line and column", () => {
    const text = '{\n  "a": 1,\n}';
    expect(describeJsonError("Expected double-quoted property name in JSON at position 12", text)).toBe(
      "Expected double-quoted property name at line 3, column 1",
    );
  });

  it("keeps messages without a quote", () => {
    expect(describeJsonError("Unexpected end of JSON input", "")).toBe("Unexpected end of JSON input");
  });
});

describe("importProfile replacing", () => {
  it("rejects replacing a folder", async () => {
    const source = join(root, "work.conf");
    writeFileSync(source, WG_QUICK, { mode: 0o600 });
    const target = join(profiles, "work.json");
    mkdirSync(target);
    expect(await usageError(() => importProfile(source, { force: true }))).toBe(
      `cannot replace ${target}: it is not a regular file; move it away, then import again`,
    );
  });
});

describe("importProfile file checks", () => {
  it("rejects a folder as the file", async () => {
    expect(await usageError(() => importProfile(root, { name: "work" }))).toBe(
      `invalid file ${root}: not a regular file; give the path of a wg-quick .conf file`,
    );
  });

  it("names a missing file", async () => {
    const file = join(root, "missing.conf");
    expect(await usageError(() => importProfile(file, { name: "work" }))).toBe(`file ${file} not found; check the path of the wg-quick file`);
  });

  it("explains a symbolic link loop", async () => {
    const file = join(root, "loop.conf");
    symlinkSync(file, file);
    expect(await usageError(() => importProfile(file, { name: "work" }))).toBe(
      `failed to read ${file}: too many levels of symbolic links (ELOOP); check the path of the wg-quick file`,
    );
  });
});
