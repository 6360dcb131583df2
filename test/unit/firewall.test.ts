import { describe, expect, it } from "vitest";
import { renderIptablesRules, renderNftRuleset } from "../../src/resources/firewall.js";

describe("renderNftRuleset", () => {
  it("drops by default in every chain", () => {
    const ruleset = renderNftRuleset({ interfaceName: "vns-home", ipv6: true });
    expect(ruleset.match(/policy drop;/g)).toHaveLength(3);
    expect(ruleset).not.toContain("policy accept");
  });

  it("allows output only on loopback and tunnel", () => {
    const ruleset = renderNftRuleset({ interfaceName: "vns-home", ipv6: true });
    const output = /chain output \{([^}]*)\}/s.exec(ruleset)![1]!;
    expect(output.match(/accept/g)).toHaveLength(2);
    expect(output).toContain('oif "lo" accept');
    expect(output).toContain('oifname "vns-home" accept');
  });

  it("allows only replies in on the tunnel", () => {
    const ruleset = renderNftRuleset({ interfaceName: "vns-home", ipv6: true });
    expect(ruleset).toContain('iifname "vns-home" ct state established,related accept');
  });

  it("drops IPv6 without an IPv6 address", () => {
    const ruleset = renderNftRuleset({ interfaceName: "vns-home", ipv6: false });
    const output = /chain output \{([^}]*)\}/s.exec(ruleset)![1]!;
    expect(output.indexOf("meta nfproto ipv6 drop")).toBeGreaterThan(output.indexOf('oif "lo"'));
    expect(output.indexOf("meta nfproto ipv6 drop")).toBeLessThan(output.indexOf("oifname"));
  });

  it("replaces an existing table atomically", () => {
    const lines = renderNftRuleset({ interfaceName: "vns-home", ipv6: true }).split("\n");
    expect(lines.slice(0, 3)).toEqual(["table inet vpnns", "delete table inet vpnns", "table inet vpnns {"]);
  });

  it("skips the deletion without replace", () => {
    const replacing = renderNftRuleset({ interfaceName: "vns-home", ipv6: true });
    const fresh = renderNftRuleset({ interfaceName: "vns-home", ipv6: true }, { replace: false });
    expect(fresh.split("\n")[0]).toBe("table inet vpnns {");
    expect(fresh).not.toContain("delete table");
    expect(replacing.endsWith(fresh)).toBe(true);
  });
});

describe("renderIptablesRules", () => {
  it("drops by default with tunnel rules", () => {
    const rules = renderIptablesRules({ interfaceName: "vns-home", ipv6: true }, "ipv4");
    expect(rules).toContain(":OUTPUT DROP [0:0]");
    expect(rules).toContain("-A OUTPUT -o vns-home -j ACCEPT");
    expect(rules.trim().endsWith("COMMIT")).toBe(true);
  });

  it("keeps only loopback for IPv6 without address", () => {
    const rules = renderIptablesRules({ interfaceName: "vns-home", ipv6: false }, "ipv6");
    expect(rules).not.toContain("vns-home");
    expect(rules).toContain("-A OUTPUT -o lo -j ACCEPT");
  });
});
