import { describe, it, expect } from "vitest";
import {
  checkMtuForIpv6,
  isHostName,
  isWireGuardKey,
  normalizeEndpoint,
  normalizeInterfaceAddress,
  normalizeIpAddress,
  normalizeNetwork,
  parseCidr,
  parseDnsEntry,
  parseEndpoint,
  parseIpAddress,
  parseListenPort,
  parseMtu,
  parsePersistentKeepalive,
} from "../../src/profile/wgquick.js";

/** Returns the value of a successful validation, or fails the test with the reason. */
function valueOf<T>(result: { ok: true; value: T } | { ok: false; reason: string }): T {
  if (!result.ok) throw new Error(`expected a valid value, got: ${result.reason}`);
  return result.value;
}

function reasonOf(result: { ok: true; value: unknown } | { ok: false; reason: string }): string {
  if (result.ok) throw new Error(`expected an invalid value, got: ${JSON.stringify(result.value)}`);
  return result.reason;
}

describe("isWireGuardKey", () => {
  it("accepts 32-byte base64 keys", () => {
    expect(isWireGuardKey("A".repeat(43) + "=")).toBe(true);
    expect(isWireGuardKey(Buffer.alloc(32, 0xff).toString("base64"))).toBe(true);
    expect(isWireGuardKey("test+private+key00000000000000000000000000A=")).toBe(true);
  });

  it("rejects other lengths and alphabets", () => {
    const keys = [
      "",
      "A".repeat(42) + "=",
      "A".repeat(44) + "=",
      "A".repeat(44),
      "A".repeat(42) + "==",
      "A".repeat(42) + "-=",
      "A".repeat(42) + "_A=",
      " " + "A".repeat(43) + "=",
      Buffer.alloc(33).toString("base64"),
    ];
    for (const key of keys) expect(isWireGuardKey(key), key).toBe(false);
  });

  it("rejects nonzero padding bits", () => {
    // "B" sets one of the two unused low bits of the last character.
    expect(isWireGuardKey("A".repeat(42) + "B=")).toBe(false);
    expect(isWireGuardKey("A".repeat(42) + "E=")).toBe(true);
  });
});

describe("parseIpAddress", () => {
  it("canonicalizes IPv6 text", () => {
    const cases: [string, string][] = [
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["1:0:0:2:0:0:0:3", "1:0:0:2::3"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["0:0:0:0:0:0:0:0", "::"],
      ["::", "::"],
      ["::1", "::1"],
      ["1::", "1::"],
      ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"],
      ["FE80::ABCD", "fe80::abcd"],
      ["::ffff:c000:0201", "::ffff:192.0.2.1"],
      ["::FFFF:192.0.2.1", "::ffff:192.0.2.1"],
      ["::192.0.2.1", "::c000:201"],
      ["64:ff9b::192.0.2.1", "64:ff9b::c000:201"],
      ["1:2:3:4:5:6:192.0.2.1", "1:2:3:4:5:6:c000:201"],
    ];
    for (const [written, canonical] of cases) expect(valueOf(parseIpAddress(written)).text, written).toBe(canonical);
  });

  it("matches the URL serializer", () => {
    // WHATWG URL serializes IPv6 hosts with the same compression rules, except for IPv4-mapped ones.
    let seed = 12345;
    const next = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed;
    };
    for (let round = 0; round < 2000; round++) {
      const groups = Array.from({ length: 8 }, () => (next() % 3 === 0 ? (next() % 0x10000).toString(16) : "0"));
      const text = groups.join(":");
      if (text.startsWith("0:0:0:0:0:ffff:")) continue;
      const expected = new URL(`http://[${text}]/`).hostname.slice(1, -1);
      expect(valueOf(parseIpAddress(text)).text, text).toBe(expected);
    }
  });

  it("returns family and integer value", () => {
    expect(parseIpAddress("192.0.2.1")).toEqual({ ok: true, value: { family: 4, text: "192.0.2.1", value: 0xc0000201n } });
    expect(parseIpAddress("::1")).toEqual({ ok: true, value: { family: 6, text: "::1", value: 1n } });
    expect(valueOf(parseIpAddress("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).value).toBe(2n ** 128n - 1n);
  });

  it("rejects malformed addresses", () => {
    expect(reasonOf(parseIpAddress(""))).toBe("not an IPv4 or IPv6 address");
    expect(reasonOf(parseIpAddress("1.2.3.4.5"))).toBe("not an IPv4 address: expected four numbers separated by dots");
    expect(reasonOf(parseIpAddress("1..2.3"))).toBe("not an IPv4 address: expected four numbers separated by dots");
    expect(reasonOf(parseIpAddress("1:2:3:4:5:6:7:192.0.2.1"))).toBe("9 groups, more than the 8 of an IPv6 address");
    expect(reasonOf(parseIpAddress("192.0.2.1::"))).toBe('invalid IPv6 group "192.0.2.1": expected 1 to 4 hex digits');
    expect(reasonOf(parseIpAddress("12345::"))).toBe('invalid IPv6 group "12345": expected 1 to 4 hex digits');
    expect(reasonOf(parseIpAddress("1:2:3:4:5:6:7:"))).toBe("empty group between single colons in an IPv6 address");
    expect(reasonOf(parseIpAddress("fe80::1%"))).toBe('IPv6 zone id "%" is not supported');
  });
});

describe("parseCidr and masking", () => {
  it("adds full-length prefixes", () => {
    expect(valueOf(normalizeInterfaceAddress("192.0.2.1"))).toBe("192.0.2.1/32");
    expect(valueOf(normalizeInterfaceAddress("2001:db8::1"))).toBe("2001:db8::1/128");
    expect(valueOf(parseCidr("192.0.2.1/024")).prefix).toBe(24);
  });

  it("clears host bits of networks", () => {
    const cases: [string, string][] = [
      ["10.0.0.5/24", "10.0.0.0/24"],
      ["192.0.2.255/31", "192.0.2.254/31"],
      ["192.0.2.255/32", "192.0.2.255/32"],
      ["198.51.100.7/0", "0.0.0.0/0"],
      ["2001:db8::1/0", "::/0"],
      ["2001:db8:abcd:1234::1/36", "2001:db8:a000::/36"],
      ["2001:db8::ffff/127", "2001:db8::fffe/127"],
      ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/65", "ffff:ffff:ffff:ffff:8000::/65"],
      ["::ffff:192.0.2.77/120", "::ffff:192.0.2.0/120"],
    ];
    for (const [written, network] of cases) expect(valueOf(normalizeNetwork(written)), written).toBe(network);
  });

  it("keeps host bits of addresses", () => {
    expect(valueOf(normalizeInterfaceAddress("10.0.0.5/24"))).toBe("10.0.0.5/24");
    expect(valueOf(normalizeInterfaceAddress("2001:DB8::5/64"))).toBe("2001:db8::5/64");
  });

  it("rejects bad prefixes", () => {
    expect(reasonOf(parseCidr("192.0.2.0/33"))).toBe("prefix length must be 0 to 32 for IPv4");
    expect(reasonOf(parseCidr("2001:db8::/129"))).toBe("prefix length must be 0 to 128 for IPv6");
    expect(reasonOf(parseCidr("192.0.2.0/24/8"))).toBe("prefix length must be a whole number from 0 to 32 for IPv4");
    expect(reasonOf(parseCidr("192.0.2.0/-1"))).toBe("prefix length must be a whole number from 0 to 32 for IPv4");
  });
});

describe("isHostName", () => {
  it("accepts RFC 1123 names", () => {
    const names = ["example.net", "a", "vpn-1.example.net.", "1.example.net", "x".repeat(63) + ".net", "xn--bcher-kva.example"];
    for (const name of names) expect(isHostName(name), name).toBe(true);
  });

  it("rejects malformed names", () => {
    const longName = Array.from({ length: 4 }, () => "x".repeat(63)).join(".");
    const names = ["", ".", "a..b", "-vpn.example.net", "vpn-.example.net", "vpn_1.example.net", "x".repeat(64) + ".net", longName, "192.0.2.300", "bücher.example"];
    for (const name of names) expect(isHostName(name), name).toBe(false);
  });
});

describe("parseEndpoint", () => {
  it("returns host, type and port", () => {
    expect(valueOf(parseEndpoint("203.0.113.1:51820"))).toEqual({ host: "203.0.113.1", hostType: "ipv4", port: 51820 });
    expect(valueOf(parseEndpoint("[2001:DB8::1]:1"))).toEqual({ host: "2001:db8::1", hostType: "ipv6", port: 1 });
    expect(valueOf(parseEndpoint("vpn.example.net:65535"))).toEqual({ host: "vpn.example.net", hostType: "name", port: 65535 });
  });

  it("formats IPv6 endpoints with brackets", () => {
    expect(valueOf(normalizeEndpoint("[2001:db8:0:0::1]:51820"))).toBe("[2001:db8::1]:51820");
    expect(valueOf(normalizeEndpoint("[::ffff:192.0.2.1]:51820"))).toBe("[::ffff:192.0.2.1]:51820");
  });

  it("rejects port out of range", () => {
    expect(reasonOf(parseEndpoint("vpn.example.net:65536"))).toBe("port must be 1 to 65535");
    expect(reasonOf(parseEndpoint("vpn.example.net:0"))).toBe("port must be 1 to 65535");
    expect(reasonOf(parseEndpoint("vpn.example.net:+1"))).toBe("port must be a number from 1 to 65535");
  });
});

describe("parseDnsEntry", () => {
  it("classifies addresses and domains", () => {
    expect(valueOf(parseDnsEntry("192.0.2.53"))).toEqual({ kind: "nameserver", address: "192.0.2.53" });
    expect(valueOf(parseDnsEntry("2001:DB8::53"))).toEqual({ kind: "nameserver", address: "2001:db8::53" });
    expect(valueOf(parseDnsEntry("corp.example.net"))).toEqual({ kind: "search", domain: "corp.example.net" });
  });

  it("rejects entries of neither kind", () => {
    expect(reasonOf(parseDnsEntry("192.0.2"))).toBe("not an IPv4 address: expected four numbers separated by dots");
    expect(reasonOf(parseDnsEntry("fe80::53%eth0"))).toBe('IPv6 zone id "%eth0" is not supported');
    expect(reasonOf(parseDnsEntry("~."))).toBe("not an IP address or a domain name");
  });
});

describe("number validators", () => {
  it("checks MTU bounds", () => {
    expect(valueOf(parseMtu("1420"))).toBe(1420);
    expect(reasonOf(parseMtu("1e3"))).toBe("MTU must be a whole number from 576 to 65535");
    expect(reasonOf(parseMtu("100000000000000000000"))).toBe("MTU must be 576 to 65535");
  });

  it("checks MTU against IPv6", () => {
    expect(checkMtuForIpv6(1279, ["192.0.2.2/32"])).toBeUndefined();
    expect(checkMtuForIpv6(1280, ["2001:db8::2/128"])).toBeUndefined();
    expect(checkMtuForIpv6(1279, ["192.0.2.2/32", "2001:db8::2/128"])).toBe(
      "MTU must be at least 1280 because the profile has the IPv6 address 2001:db8::2/128",
    );
  });

  it("reads listen ports", () => {
    expect(valueOf(parseListenPort("0"))).toBeUndefined();
    expect(valueOf(parseListenPort("51820"))).toBe(51820);
    expect(reasonOf(parseListenPort("65536"))).toBe("port must be 0 to 65535");
  });

  it("reads keepalive intervals", () => {
    expect(valueOf(parsePersistentKeepalive("Off"))).toBeUndefined();
    expect(valueOf(parsePersistentKeepalive("0"))).toBeUndefined();
    expect(valueOf(parsePersistentKeepalive("1"))).toBe(1);
    expect(reasonOf(parsePersistentKeepalive("-1"))).toBe(
      'PersistentKeepalive must be "off" or a number of seconds from 0 to 65535',
    );
  });

  it("normalizes name server addresses", () => {
    expect(valueOf(normalizeIpAddress("2001:db8:0::53"))).toBe("2001:db8::53");
    expect(reasonOf(normalizeIpAddress("192.0.2.1/32"))).toBe("not an IPv4 or IPv6 address");
  });
});
