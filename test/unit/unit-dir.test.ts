import { afterEach, describe, expect, it, vi } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { unitDir } from "../../src/systemd/units.js";

describe("unitDir", () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it("rejects an empty --unit-dir", () => {
    vi.stubEnv("VPNNS_SYSTEMD_DIR", "/run/vpnns-units");
    expect(() => unitDir("")).toThrow(UsageError);
    expect(() => unitDir(" ")).toThrow("invalid --unit-dir: the path is empty; give a folder, such as /etc/systemd/system");
  });

  it("takes the override, then the variable", () => {
    vi.stubEnv("VPNNS_SYSTEMD_DIR", "/run/vpnns-units");
    expect(unitDir("/tmp/units")).toBe("/tmp/units");
    expect(unitDir()).toBe("/run/vpnns-units");
  });
});
