import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CommandError } from "../../src/core/errors.js";
import { hideSecrets, run } from "../../src/tools/exec.js";

const KEY = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";

describe("hideSecrets", () => {
  it("replaces every occurrence", () => {
    expect(hideSecrets(`PrivateKey = ${KEY}\nagain ${KEY}`, [KEY])).toBe("PrivateKey = (hidden)\nagain (hidden)");
  });

  it("ignores empty secrets", () => {
    expect(hideSecrets("text", ["", KEY])).toBe("text");
  });
});

describe("run with secret output", () => {
  let stateDir: string;
  let previous: string | undefined;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "vpnns-exec-"));
    previous = process.env.VPNNS_STATE_DIR;
    process.env.VPNNS_STATE_DIR = stateDir;
  });

  afterAll(async () => {
    if (previous === undefined) delete process.env.VPNNS_STATE_DIR;
    else process.env.VPNNS_STATE_DIR = previous;
    await rm(stateDir, { recursive: true, force: true });
  });

  it("returns stdout and stderr", async () => {
    const result = await run(["sh", "-c", 'printf "out %s" "$0"; printf "err" >&2', KEY], { intent: "print", secretOutput: true });
    expect(result.stdout).toBe(`out ${KEY}`);
    expect(result.stderr).toBe("err");
  });

  it("reads output larger than a pipe buffer", async () => {
    const result = await run(["head", "-c", "300000", "/dev/zero"], { intent: "print zeros", secretOutput: true });
    expect(result.stdout.length).toBe(300000);
  });

  it("hides secrets in a failure", async () => {
    const failing = run(["sh", "-c", 'echo "rejected: $0" >&2; exit 3', KEY], { intent: "fail", secrets: [KEY] });
    await expect(failing).rejects.toThrow(CommandError);
    await expect(failing).rejects.toThrow("failed to fail: 'sh -c 'echo \"rejected: $0\" >&2; exit 3' " + KEY + "' exited with code 3: rejected: (hidden)");
  });

  it("leaves no file behind", async () => {
    await run(["true"], { intent: "do nothing", secretOutput: true });
    expect(await readdir(stateDir)).toEqual([]);
  });
});
