/** Parsers of `vpnns check`: nft chains, nsswitch hosts lines, probe URLs and addresses in bodies. */
import { describe, expect, it } from "vitest";
import { addressInBody, expandIpv6, hostsLine, parseNftChains, parseProbeUrl } from "../../src/core/check.js";
import { renderNftRuleset } from "../../src/resources/firewall.js";
import { UsageError } from "../../src/core/errors.js";

/** `nft list table inet vpnns` output of a profile with IPv6, as nft 1.0.6 prints it. */
const LISTING = `table inet vpnns {
	chain input {
		type filter hook input priority filter; policy drop;
		iif "lo" accept
		iifname "vns-work" ct state established,related accept
	}

	chain forward {
		type filter hook forward priority filter; policy drop;
	}

	chain output {
		type filter hook output priority filter; policy drop;
		oif "lo" accept
		oifname "vns-work" accept
	}
}
`;

describe("parseNftChains", () => {
  it("reads policies and rules", () => {
    const chains = parseNftChains(LISTING);
    expect([...chains.keys()]).toEqual(["input", "forward", "output"]);
    expect(chains.get("output")).toEqual({ policy: "drop", rules: ['oif "lo" accept', 'oifname "vns-work" accept'] });
    expect(chains.get("forward")).toEqual({ policy: "drop", rules: [] });
  });

  it("matches the rendered ruleset", () => {
    const rendered = parseNftChains(renderNftRuleset({ interfaceName: "vns-work", ipv6: true }));
    expect(rendered).toEqual(parseNftChains(LISTING));
  });

  it("reads an accept policy", () => {
    expect(parseNftChains(LISTING.replace("hook forward priority filter; policy drop;", "hook forward priority filter; policy accept;")).get("forward")?.policy).toBe("accept");
  });
});

describe("hostsLine", () => {
  it("returns the sources", () => {
    expect(hostsLine("passwd: files\nhosts:   files  dns\n")).toBe("files dns");
  });

  it("returns undefined without a hosts line", () => {
    expect(hostsLine("passwd: files\n")).toBeUndefined();
  });

  it("returns undefined for two hosts lines", () => {
    expect(hostsLine("hosts: files dns\nhosts: files resolve\n")).toBeUndefined();
  });
});

describe("parseProbeUrl", () => {
  it("accepts http and https", () => {
    expect(parseProbeUrl("http://192.0.2.1")).toBe("http://192.0.2.1/");
    expect(parseProbeUrl("https://example.org/ip")).toBe("https://example.org/ip");
  });

  for (const text of ["ftp://192.0.2.1/", "file:///etc/passwd", "192.0.2.1", "", "http//x"]) {
    it(`rejects ${JSON.stringify(text)}`, () => {
      expect(() => parseProbeUrl(text)).toThrow(UsageError);
    });
  }
});

describe("addressInBody", () => {
  it("reads remoteAddress from JSON", () => {
    expect(addressInBody('{"service":"lab","remoteAddress":"192.0.2.10"}', "application/json")).toBe("192.0.2.10");
  });

  it("reads ip from JSON", () => {
    expect(addressInBody('{"ip":"203.0.113.7"}', "application/json")).toBe("203.0.113.7");
  });

  it("returns null for JSON without an address", () => {
    expect(addressInBody('{"status":"ok"}', "application/json")).toBeNull();
  });

  it("reads a plain-text address", () => {
    expect(addressInBody("203.0.113.7\n", "text/plain; charset=utf-8")).toBe("203.0.113.7");
  });

  it("ignores HTML", () => {
    expect(addressInBody("<html>203.0.113.7</html>", "text/html")).toBeNull();
  });

  it("ignores long text", () => {
    expect(addressInBody("line one\nline two", "text/plain")).toBeNull();
  });
});

describe("expandIpv6", () => {
  it("expands a short address", () => {
    expect(expandIpv6("2001:db8:2::a")).toBe("2001:0db8:0002:0000:0000:0000:0000:000a");
  });

  it("treats spellings alike", () => {
    expect(expandIpv6("2001:DB8:2:0::A")).toBe(expandIpv6("2001:db8:2::a"));
  });
});
