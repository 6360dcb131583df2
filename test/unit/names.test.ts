import { describe, expect, it } from "vitest";
import { interfaceName, namespaceName, validateProfileName, MAX_INTERFACE_NAME } from "../../src/core/names.js";

describe("profile names", () => {
  it.each(["home", "se-got-1", "a", "x_y", "0abc"])("accepts %s", (name) => {
    expect(() => validateProfileName(name)).not.toThrow();
  });

  const rule = "use lowercase letters, digits, '-' and '_', starting with a letter or digit";
  const listHint = "list the stored profiles with: vpnns profile list";

  it.each([
    ["", `invalid profile name: the name is empty; ${listHint}`],
    ["../etc", `invalid profile name "../etc": ${rule}; ${listHint}`],
    ["-rf", `invalid profile name "-rf": ${rule}; ${listHint}`],
    ["has space", `invalid profile name "has space": ${rule}; ${listHint}`],
    ["a".repeat(33), `invalid profile name "${"a".repeat(33)}": 33 characters, at most 32 are allowed; ${listHint}`],
  ])("rejects %j", (name, message) => {
    expect(() => validateProfileName(name)).toThrow(message);
  });

  it("ends with the given hint", () => {
    expect(() => validateProfileName("Work", "choose another with --name")).toThrow(
      `invalid profile name "Work": ${rule}; choose another with --name`,
    );
  });

  it("derives namespace names", () => {
    expect(namespaceName("home")).toBe("vpnns-home");
  });

  it("keeps short interface names plain", () => {
    expect(interfaceName("abcdefghijk")).toBe("vns-abcdefghijk");
  });

  it("shortens long interface names distinctly", () => {
    const first = interfaceName("mullvad-se-got-001");
    const second = interfaceName("mullvad-se-got-002");
    expect(first).toMatch(/^vns-mullva-[0-9a-f]{4}$/);
    expect(first.length).toBeLessThanOrEqual(MAX_INTERFACE_NAME);
    expect(second).not.toBe(first);
  });
});
