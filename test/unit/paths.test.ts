import { describe, expect, it } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { checkFolderVariables } from "../../src/core/paths.js";

describe("checkFolderVariables", () => {
  it("accepts absolute and unset folders", () => {
    expect(() => checkFolderVariables({ VPNNS_CONFIG_DIR: "/etc/vpnns" })).not.toThrow();
    expect(() => checkFolderVariables({})).not.toThrow();
    expect(() => checkFolderVariables({ VPNNS_STATE_DIR: "" })).not.toThrow();
  });

  it("rejects a relative config folder", () => {
    expect(() => checkFolderVariables({ VPNNS_CONFIG_DIR: "config" })).toThrow(UsageError);
    expect(() => checkFolderVariables({ VPNNS_CONFIG_DIR: "config" })).toThrow(
      'invalid VPNNS_CONFIG_DIR "config": give an absolute path, such as /etc/vpnns or /run/vpnns, or unset it',
    );
  });

  it("rejects a relative state folder", () => {
    expect(() => checkFolderVariables({ VPNNS_STATE_DIR: "./state" })).toThrow('invalid VPNNS_STATE_DIR "./state"');
  });
});
