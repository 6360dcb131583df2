import { readFileSync } from "node:fs";
import { describe, it, expect } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { MAX_CONFIG_BYTES, MAX_LINE_LENGTH, MAX_PEERS, parseWgQuick } from "../../src/profile/wgquick.js";

const PRIVATE_KEY = "test+private+key00000000000000000000000000A=";
const PEER_KEY = "test+peer+public+key0000000000000000000000A=";
const SECOND_PEER_KEY = "test+second+peer+public+key000000000000000A=";
const PRESHARED_KEY = "test+preshared+key000000000000000000000000A=";

const FIXTURES = new URL("../fixtures/wgquick/", import.meta.url);

function readFixture(name: string): string {
  return readFileSync(new URL(name, FIXTURES), "utf8");
}

function lines(...content: string[]): string {
  return `${content.join("\n")}\n`;
}

/** Builds a valid file with extra lines at the end of [Interface] (from line 4) and of [Peer]. */
function minimalFile(interfaceLines: string[] = [], peerLines: string[] = []): string {
  return lines(
    "[Interface]",
    `PrivateKey = ${PRIVATE_KEY}`,
    "Address = 192.0.2.2/32",
    ...interfaceLines,
    "[Peer]",
    `PublicKey = ${PEER_KEY}`,
    "AllowedIPs = 0.0.0.0/0",
    ...peerLines,
  );
}

function parse(text: string) {
  return parseWgQuick(text, "wg0.conf");
}

/** Parses `text`, expects a UsageError and returns its message. */
function parseError(text: string): string {
  try {
    parse(text);
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).message;
  }
  throw new Error("expected parseWgQuick to throw a UsageError");
}

/** Returns a distinct valid key for peer number `index`. */
function peerKey(index: number): string {
  const bytes = Buffer.alloc(32);
  bytes.writeUInt32BE(index + 1);
  return bytes.toString("base64");
}

describe("parseWgQuick accepted files", () => {
  it("parses a minimal file", () => {
    const result = parse(minimalFile());
    expect(result.config).toEqual({
      interface: { privateKey: PRIVATE_KEY, addresses: ["192.0.2.2/32"], dns: [], dnsSearch: [] },
      peers: [{ publicKey: PEER_KEY, allowedIPs: ["0.0.0.0/0"] }],
    });
    expect(result.warnings).toEqual([]);
  });

  it("parses a Mullvad-style file", () => {
    const result = parseWgQuick(readFixture("mullvad.conf"), "mullvad.conf");
    expect(result.config).toEqual({
      interface: {
        privateKey: "fixture+mullvad+private+key000000000000000A=",
        addresses: ["198.51.100.34/32", "2001:db8:bb01::3:c22/128"],
        dns: ["198.51.100.1"],
        dnsSearch: [],
      },
      peers: [
        {
          publicKey: "fixture+mullvad+peer+public+key00000000000A=",
          allowedIPs: ["0.0.0.0/0", "::/0"],
          endpoint: "203.0.113.17:51820",
        },
      ],
    });
    expect(result.warnings).toEqual([]);
  });

  it("parses a Proton-style file with comments", () => {
    const result = parseWgQuick(readFixture("proton.conf"), "proton.conf");
    expect(result.config).toEqual({
      interface: {
        privateKey: "fixture+proton+private+key0000000000000000A=",
        addresses: ["192.0.2.2/32"],
        dns: ["192.0.2.1"],
        dnsSearch: [],
      },
      peers: [
        {
          publicKey: "fixture+proton+peer+public+key000000000000A=",
          allowedIPs: ["0.0.0.0/0"],
          endpoint: "203.0.113.44:51820",
        },
      ],
    });
    expect(result.warnings).toEqual([]);
  });

  it("parses CRLF lines with a BOM", () => {
    const raw = readFileSync(new URL("crlf-bom.conf", FIXTURES));
    // Guards the fixture itself: a checkout that converts line endings would make this test pointless.
    expect([...raw.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(raw.toString("utf8")).toContain("\r\n");

    const result = parseWgQuick(raw.toString("utf8"), "crlf-bom.conf");
    expect(result.config).toEqual({
      interface: {
        privateKey: "fixture+crlf+private+key000000000000000000A=",
        addresses: ["192.0.2.66/32"],
        dns: ["192.0.2.1"],
        dnsSearch: [],
      },
      peers: [
        {
          publicKey: "fixture+crlf+peer+public+key00000000000000A=",
          allowedIPs: ["0.0.0.0/0"],
          endpoint: "vpn.example.net:51820",
        },
      ],
    });
  });

  it("parses a file with several peers", () => {
    const result = parseWgQuick(readFixture("multi-peer.conf"), "multi-peer.conf");
    expect(result.config).toEqual({
      interface: {
        privateKey: "fixture+multi+private+key00000000000000000A=",
        addresses: ["198.51.100.7/24", "2001:db8:10::7/64"],
        dns: ["198.51.100.53", "2001:db8:10::53"],
        dnsSearch: ["corp.example.net", "lab.example.net"],
        mtu: 1420,
        listenPort: 51820,
      },
      peers: [
        {
          publicKey: "fixture+multi+peer+one+public+key000000000A=",
          presharedKey: "fixture+multi+preshared+key000000000000000A=",
          allowedIPs: ["198.51.100.0/24", "2001:db8:10::/48", "0.0.0.0/0"],
          endpoint: "vpn.example.net:51820",
          persistentKeepalive: 25,
        },
        {
          publicKey: "fixture+multi+peer+two+public+key000000000A=",
          allowedIPs: ["203.0.113.0/24"],
          endpoint: "[2001:db8::1]:51821",
        },
        {
          publicKey: "fixture+multi+peer+three+public+key0000000A=",
          allowedIPs: ["192.0.2.128/25"],
          endpoint: "192.0.2.200:4500",
        },
      ],
    });
    expect(result.warnings).toEqual([]);
  });

  it("warns about host-only keys and hooks", () => {
    const result = parseWgQuick(readFixture("hooks.conf"), "hooks.conf");
    expect(result.warnings).toEqual([
      "hooks.conf:5: ignored Table: it only applies to wg-quick on the host",
      "hooks.conf:6: ignored FwMark: it only applies to wg-quick on the host",
      "hooks.conf:7: ignored SaveConfig: it only applies to wg-quick on the host",
      "hooks.conf:8: PreUp command will not be run: vpnns never runs commands from a profile file, because they would run as root",
      "hooks.conf:9: PostUp command will not be run: vpnns never runs commands from a profile file, because they would run as root",
      "hooks.conf:10: PreDown command will not be run: vpnns never runs commands from a profile file, because they would run as root",
      "hooks.conf:11: PostDown command will not be run: vpnns never runs commands from a profile file, because they would run as root",
    ]);
    expect(result.config.interface.addresses).toEqual(["192.0.2.10/32"]);
    expect(result.config.peers).toHaveLength(1);
  });

  it("parses the example profile", () => {
    const text = readFileSync(new URL("../../profiles/example.conf", import.meta.url), "utf8");
    const result = parseWgQuick(text, "example.conf");
    expect(result.warnings).toEqual([]);
    expect(result.config.interface.addresses).toEqual(["192.0.2.2/32", "2001:db8:a::2/128"]);
    expect(result.config.interface.dns).toEqual(["192.0.2.1", "2001:db8:a::1"]);
    expect(result.config.peers).toEqual([
      {
        publicKey: "EXAMPLE+PEER+PUBLIC+KEY+from+your+providerA=",
        allowedIPs: ["0.0.0.0/0", "::/0"],
        endpoint: "vpn.example.net:51820",
        persistentKeepalive: 25,
      },
    ]);
  });
});

describe("parseWgQuick syntax", () => {
  it("ignores comments and blank lines", () => {
    const text = lines(
      "# leading comment",
      "",
      "[Interface] # the only interface",
      `PrivateKey = ${PRIVATE_KEY} # secret`,
      "Address = 192.0.2.2/32 # home",
      "   ",
      "[Peer]#server",
      `PublicKey = ${PEER_KEY}`,
      "AllowedIPs = 0.0.0.0/0#everything",
    );
    const { config } = parse(text);
    expect(config.interface.privateKey).toBe(PRIVATE_KEY);
    expect(config.interface.addresses).toEqual(["192.0.2.2/32"]);
    expect(config.peers[0].allowedIPs).toEqual(["0.0.0.0/0"]);
  });

  it("accepts any letter case", () => {
    const text = lines(
      "[interface]",
      `privatekey = ${PRIVATE_KEY}`,
      "ADDRESS = 192.0.2.2/32",
      "[pEEr]",
      `publickey = ${PEER_KEY}`,
      "allowedips = 0.0.0.0/0",
      "persistentKEEPALIVE = 10",
    );
    const { config } = parse(text);
    expect(config.interface.addresses).toEqual(["192.0.2.2/32"]);
    expect(config.peers[0].persistentKeepalive).toBe(10);
  });

  it("accepts missing and extra spaces", () => {
    const text = lines(
      "  [ Interface ]  ",
      `PrivateKey=${PRIVATE_KEY}`,
      "\tAddress\t=\t192.0.2.2/32\t",
      "[Peer]",
      `PublicKey   =   ${PEER_KEY}   `,
      "AllowedIPs=0.0.0.0/0",
    );
    const { config } = parse(text);
    expect(config.interface.privateKey).toBe(PRIVATE_KEY);
    expect(config.interface.addresses).toEqual(["192.0.2.2/32"]);
    expect(config.peers[0].publicKey).toBe(PEER_KEY);
  });

  it("accepts a file without final newline", () => {
    const text = minimalFile().trimEnd();
    expect(parse(text).config.peers[0].allowedIPs).toEqual(["0.0.0.0/0"]);
  });

  it("accepts a file of maximum size", () => {
    const base = minimalFile();
    const comment = `# ${"x".repeat(1000)}\n`;
    let text = base;
    while (text.length + comment.length <= MAX_CONFIG_BYTES) text += comment;
    text += "#".repeat(MAX_CONFIG_BYTES - text.length);
    expect(Buffer.byteLength(text)).toBe(MAX_CONFIG_BYTES);
    expect(parse(text).config.peers).toHaveLength(1);
  });

  it("accepts a line of maximum length", () => {
    const text = minimalFile([`# ${"x".repeat(MAX_LINE_LENGTH - 2)}`]);
    expect(parse(text).config.peers).toHaveLength(1);
  });

  it("accepts the maximum number of peers", () => {
    const peers = Array.from({ length: MAX_PEERS }, (_, index) =>
      lines("[Peer]", `PublicKey = ${peerKey(index)}`, `AllowedIPs = 10.${index >> 8}.${index & 255}.0/24`),
    );
    const text = lines("[Interface]", `PrivateKey = ${PRIVATE_KEY}`, "Address = 192.0.2.2/32") + peers.join("");
    expect(parse(text).config.peers).toHaveLength(MAX_PEERS);
  });
});

describe("parseWgQuick interface values", () => {
  it("gives addresses without prefix /32 or /128", () => {
    const { config } = parse(minimalFile(["Address = 192.0.2.3, 2001:db8::3"]));
    expect(config.interface.addresses).toEqual(["192.0.2.2/32", "192.0.2.3/32", "2001:db8::3/128"]);
  });

  it("splits Address lists like wg-quick", () => {
    const { config } = parse(
      minimalFile(["Address = 192.0.2.3/32,192.0.2.4/32", "Address = 192.0.2.5/32 , 192.0.2.6/32,", "Address = 192.0.2.7/32 192.0.2.8/32"]),
    );
    expect(config.interface.addresses).toEqual([
      "192.0.2.2/32",
      "192.0.2.3/32",
      "192.0.2.4/32",
      "192.0.2.5/32",
      "192.0.2.6/32",
      "192.0.2.7/32",
      "192.0.2.8/32",
    ]);
  });

  it("keeps host bits of addresses", () => {
    const { config } = parse(minimalFile(["Address = 198.51.100.9/24"]));
    expect(config.interface.addresses).toEqual(["192.0.2.2/32", "198.51.100.9/24"]);
  });

  it("normalizes IPv6 addresses", () => {
    const { config } = parse(minimalFile(["Address = 2001:DB8:0:0:0:0:0:2/64, ::ffff:192.0.2.9/128"]));
    expect(config.interface.addresses).toEqual(["192.0.2.2/32", "2001:db8::2/64", "::ffff:192.0.2.9/128"]);
  });

  it("drops duplicate addresses", () => {
    const { config } = parse(minimalFile(["Address = 192.0.2.2", "Address = 2001:db8::2/128, 2001:DB8::0002/128"]));
    expect(config.interface.addresses).toEqual(["192.0.2.2/32", "2001:db8::2/128"]);
  });

  it("sorts DNS into servers and domains", () => {
    const { config } = parse(minimalFile(["DNS = 192.0.2.53, 2001:DB8::53,example.net", "DNS = corp.example.net 198.51.100.53"]));
    expect(config.interface.dns).toEqual(["192.0.2.53", "2001:db8::53", "198.51.100.53"]);
    expect(config.interface.dnsSearch).toEqual(["example.net", "corp.example.net"]);
  });

  it("accepts MTU bounds", () => {
    expect(parse(minimalFile(["MTU = 576"])).config.interface.mtu).toBe(576);
    expect(parse(minimalFile(["MTU = 65535"])).config.interface.mtu).toBe(65535);
    expect(parse(minimalFile(["Address = 2001:db8::2/128", "MTU = 1280"])).config.interface.mtu).toBe(1280);
  });

  it("accepts ListenPort bounds", () => {
    expect(parse(minimalFile(["ListenPort = 1"])).config.interface.listenPort).toBe(1);
    expect(parse(minimalFile(["ListenPort = 65535"])).config.interface.listenPort).toBe(65535);
  });

  it("treats ListenPort 0 as absent", () => {
    const { config } = parse(minimalFile(["ListenPort = 0"]));
    expect(config.interface).not.toHaveProperty("listenPort");
  });
});

describe("parseWgQuick peer values", () => {
  it("masks host bits of AllowedIPs", () => {
    const result = parse(minimalFile([], ["AllowedIPs = 10.0.0.5/24, 2001:db8:abcd:1234::1/36"]));
    expect(result.config.peers[0].allowedIPs).toEqual(["0.0.0.0/0", "10.0.0.0/24", "2001:db8:a000::/36"]);
    expect(result.warnings).toEqual([
      'wg0.conf:7: AllowedIPs entry "10.0.0.5/24" has host bits set; using 10.0.0.0/24',
      'wg0.conf:7: AllowedIPs entry "2001:db8:abcd:1234::1/36" has host bits set; using 2001:db8:a000::/36',
    ]);
  });

  it("accumulates AllowedIPs lines", () => {
    const { config } = parse(minimalFile([], ["AllowedIPs = ::/0,192.0.2.0/24", "AllowedIPs = 198.51.100.1, 0.0.0.0/0"]));
    expect(config.peers[0].allowedIPs).toEqual(["0.0.0.0/0", "::/0", "192.0.2.0/24", "198.51.100.1/32"]);
  });

  it("normalizes endpoints", () => {
    const endpoints: [string, string][] = [
      ["203.0.113.1:51820", "203.0.113.1:51820"],
      ["[2001:DB8::0001]:51820", "[2001:db8::1]:51820"],
      ["vpn.example.net:1", "vpn.example.net:1"],
      ["VPN-1.Example.NET.:065535", "VPN-1.Example.NET.:65535"],
    ];
    for (const [written, stored] of endpoints) {
      const { config } = parse(minimalFile([], [`Endpoint = ${written}`]));
      expect(config.peers[0].endpoint).toBe(stored);
    }
  });

  it("reads PersistentKeepalive values", () => {
    expect(parse(minimalFile([], ["PersistentKeepalive = 25"])).config.peers[0].persistentKeepalive).toBe(25);
    expect(parse(minimalFile([], ["PersistentKeepalive = 65535"])).config.peers[0].persistentKeepalive).toBe(65535);
    for (const off of ["0", "off", "OFF"]) {
      const { config } = parse(minimalFile([], [`PersistentKeepalive = ${off}`]));
      expect(config.peers[0]).not.toHaveProperty("persistentKeepalive");
    }
  });

  it("reads PresharedKey", () => {
    const { config } = parse(minimalFile([], [`PresharedKey = ${PRESHARED_KEY}`]));
    expect(config.peers[0].presharedKey).toBe(PRESHARED_KEY);
  });
});

describe("parseWgQuick structure errors", () => {
  it("rejects unknown keys", () => {
    expect(parseError(minimalFile(["Foo = 1"]))).toBe(
      'wg0.conf:4: unknown key "Foo" in [Interface]; expected one of PrivateKey, Address, DNS, MTU, ListenPort',
    );
    expect(parseError(minimalFile([], ["Keepalive = 25"]))).toBe(
      'wg0.conf:7: unknown key "Keepalive" in [Peer]; expected one of PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive',
    );
  });

  it("rejects unknown key before sections", () => {
    expect(parseError(lines("Name = home", "[Interface]"))).toBe('wg0.conf:1: unknown key "Name" outside any section');
  });

  it("rejects known key before sections", () => {
    expect(parseError(lines(`PrivateKey = ${PRIVATE_KEY}`, "[Interface]"))).toBe(
      "wg0.conf:1: PrivateKey is outside any section; put it under [Interface]",
    );
  });

  it("rejects keys in wrong section", () => {
    expect(parseError(minimalFile([`PublicKey = ${PEER_KEY}`]))).toBe(
      "wg0.conf:4: PublicKey belongs in [Peer], not in [Interface]",
    );
    expect(parseError(minimalFile([], ["DNS = 192.0.2.1"]))).toBe("wg0.conf:7: DNS belongs in [Interface], not in [Peer]");
    expect(parseError(minimalFile([], ["PostUp = true"]))).toBe("wg0.conf:7: PostUp belongs in [Interface], not in [Peer]");
  });

  it("rejects unknown sections", () => {
    expect(parseError(lines("[Peers]"))).toBe('wg0.conf:1: unknown section "[Peers]"; expected [Interface] or [Peer]');
  });

  it("rejects malformed section headers", () => {
    expect(parseError(lines("[Interface"))).toBe(
      'wg0.conf:1: invalid section header "[Interface": expected [Interface] or [Peer]',
    );
    expect(parseError(lines("[Interface] extra"))).toBe(
      'wg0.conf:1: invalid section header "[Interface] extra": expected [Interface] or [Peer]',
    );
  });

  it("rejects lines without equals sign", () => {
    expect(parseError(minimalFile(["Address 192.0.2.3/32"]))).toBe(
      'wg0.conf:4: invalid line "Address 192.0.2.3/32": expected "Key = Value" or "[Section]"',
    );
  });

  it("hides lines that may hold keys", () => {
    expect(parseError(lines("[Interface]", `PrivateKey ${PRIVATE_KEY}`))).toBe(
      'wg0.conf:2: invalid line (line hidden because it may contain a secret, 55 characters): the key before "=" contains a space',
    );
    expect(parseError(lines("[Interface]", `PrivateKey: ${PRIVATE_KEY.slice(0, 20)}`))).toBe(
      'wg0.conf:2: invalid line (line hidden because it may contain a secret, 32 characters): expected "Key = Value" or "[Section]"',
    );
    expect(parseError(lines("[Interface]", PRIVATE_KEY.slice(0, 43)))).toBe(
      'wg0.conf:2: invalid line (line hidden because it may contain a secret, 43 characters): expected "Key = Value" or "[Section]"',
    );
    expect(parseError(lines(`[PrivateKey = ${PRIVATE_KEY}]`))).toBe(
      "wg0.conf:1: unknown section (section hidden because it may contain a secret, 59 characters); expected [Interface] or [Peer]",
    );
    expect(parseError(lines("[Interface]", `${PRIVATE_KEY.slice(0, 43)} = x`))).toBe(
      'wg0.conf:2: unknown key (key hidden because it may contain a secret, 43 characters) in [Interface]; expected one of PrivateKey, Address, DNS, MTU, ListenPort',
    );
  });

  it("rejects keys containing spaces", () => {
    expect(parseError(minimalFile(["Allowed IPs = 192.0.2.0/24"]))).toBe(
      'wg0.conf:4: invalid line "Allowed IPs = 192.0.2.0/24": the key before "=" contains a space',
    );
  });

  it("rejects lines without key", () => {
    expect(parseError(minimalFile(["= 192.0.2.3/32"]))).toBe('wg0.conf:4: invalid line "= 192.0.2.3/32": missing key before "="');
  });

  it("rejects empty values", () => {
    expect(parseError(minimalFile(["DNS ="]))).toBe("wg0.conf:4: empty value for DNS");
    expect(parseError(minimalFile(["MTU = # later"]))).toBe("wg0.conf:4: empty value for MTU");
  });

  it("rejects single-valued keys given twice", () => {
    expect(parseError(minimalFile([`PrivateKey = ${PRIVATE_KEY}`]))).toBe(
      "wg0.conf:4: PrivateKey given twice, on lines 2 and 4; keep one",
    );
    expect(parseError(minimalFile([], ["Endpoint = 192.0.2.1:51820", "endpoint = 192.0.2.1:51820"]))).toBe(
      "wg0.conf:8: Endpoint given twice, on lines 7 and 8; keep one",
    );
  });

  it("rejects a second [Interface]", () => {
    expect(parseError(minimalFile() + lines("[Interface]"))).toBe(
      "wg0.conf:7: second [Interface] section; the first is on line 1, so merge them into one",
    );
  });

  it("rejects a missing [Interface]", () => {
    expect(parseError(lines("[Peer]", `PublicKey = ${PEER_KEY}`, "AllowedIPs = 0.0.0.0/0"))).toBe(
      "wg0.conf: missing [Interface] section; a wg-quick file needs one with PrivateKey and Address",
    );
    expect(parseError("")).toBe(
      "wg0.conf: missing [Interface] section; a wg-quick file needs one with PrivateKey and Address",
    );
  });

  it("rejects [Interface] without PrivateKey", () => {
    const text = lines("# home", "[Interface]", "Address = 192.0.2.2/32", "[Peer]", `PublicKey = ${PEER_KEY}`);
    expect(parseError(text)).toBe("wg0.conf:2: missing PrivateKey in [Interface]");
  });

  it("rejects [Interface] without Address", () => {
    const text = lines("[Interface]", `PrivateKey = ${PRIVATE_KEY}`);
    expect(parseError(text)).toBe("wg0.conf:1: missing Address in [Interface]");
  });

  it("rejects [Peer] without PublicKey", () => {
    const text = minimalFile() + lines("", "[Peer]", "AllowedIPs = 192.0.2.0/24", "[Peer]");
    expect(parseError(text)).toBe("wg0.conf:8: missing PublicKey in [Peer]");
  });

  it("rejects [Peer] without AllowedIPs", () => {
    const text = minimalFile() + lines("[Peer]", `PublicKey = ${SECOND_PEER_KEY}`, "Endpoint = 192.0.2.1:51820");
    expect(parseError(text)).toBe("wg0.conf:7: missing AllowedIPs in [Peer]; list the networks to send through this peer, such as 0.0.0.0/0, ::/0");
  });

  it("rejects peers sharing a PublicKey", () => {
    const text = minimalFile() + lines("[Peer]", "AllowedIPs = 192.0.2.0/24", `PublicKey = ${PEER_KEY}`);
    expect(parseError(text)).toBe(`wg0.conf:9: PublicKey "${PEER_KEY}" is also the PublicKey of the [Peer] on line 4; each peer needs its own key`);
  });

  it("rejects a file without peers", () => {
    expect(parseError(lines("[Interface]", `PrivateKey = ${PRIVATE_KEY}`, "Address = 192.0.2.2/32"))).toBe(
      "wg0.conf: no [Peer] section; vpnns needs at least one peer to carry the namespace's traffic",
    );
  });
});

describe("parseWgQuick value errors", () => {
  it("rejects malformed keys", () => {
    expect(parseError(lines("[Interface]", "PrivateKey = c2VjcmV0IGtleQ=="))).toBe(
      'wg0.conf:2: invalid PrivateKey (value hidden, 16 characters): a key must be 32 bytes in base64: 44 characters ending in "="',
    );
    expect(parseError(minimalFile([], [`PresharedKey = ${PRESHARED_KEY.slice(0, -2)}B=`]))).toBe(
      'wg0.conf:7: invalid PresharedKey (value hidden, 44 characters): a key must be 32 bytes in base64: 44 characters ending in "="',
    );
    expect(parseError(lines("[Interface]", `PrivateKey = ${PRIVATE_KEY}`, "Address = 192.0.2.2", "[Peer]", "PublicKey = abc"))).toBe(
      'wg0.conf:5: invalid PublicKey "abc": a key must be 32 bytes in base64: 44 characters ending in "="',
    );
  });

  it("rejects invalid IPv4 addresses", () => {
    const cases: [string, string][] = [
      ["192.0.2.256/32", 'invalid Address "192.0.2.256/32": IPv4 octet 256 is greater than 255'],
      ["192.0.2.1/33", 'invalid Address "192.0.2.1/33": prefix length must be 0 to 32 for IPv4'],
      ["192.0.2.1/", 'invalid Address "192.0.2.1/": prefix length must be a whole number from 0 to 32 for IPv4'],
      ["192.0.2/24", 'invalid Address "192.0.2/24": not an IPv4 address: expected four numbers separated by dots'],
      ["192.0.2.010", 'invalid Address "192.0.2.010": IPv4 octet "010" has a leading zero'],
      ["home", 'invalid Address "home": not an IPv4 or IPv6 address'],
    ];
    for (const [address, message] of cases) {
      expect(parseError(minimalFile([`Address = ${address}`]))).toBe(`wg0.conf:4: ${message}`);
    }
  });

  it("rejects invalid IPv6 addresses", () => {
    const cases: [string, string][] = [
      ["2001:db8:::1", 'invalid Address "2001:db8:::1": ":::" is not valid in an IPv6 address'],
      ["2001::db8::1", 'invalid Address "2001::db8::1": "::" may appear only once in an IPv6 address'],
      ["1:2:3:4:5:6:7:8:9", 'invalid Address "1:2:3:4:5:6:7:8:9": 9 groups, more than the 8 of an IPv6 address'],
      ["1:2:3:4::5:6:7:8", 'invalid Address "1:2:3:4::5:6:7:8": "::" must stand for at least one zero group, but 8 groups are given'],
      ["2001:db8:1", 'invalid Address "2001:db8:1": only 3 groups; an IPv6 address has 8 unless "::" stands for zeros'],
      ["2001:db8::g", 'invalid Address "2001:db8::g": invalid IPv6 group "g": expected 1 to 4 hex digits'],
      [":1::2", 'invalid Address ":1::2": empty group between single colons in an IPv6 address'],
      ["fe80::1%eth0/64", 'invalid Address "fe80::1%eth0/64": IPv6 zone id "%eth0" is not supported'],
      ["2001:db8::1/129", 'invalid Address "2001:db8::1/129": prefix length must be 0 to 128 for IPv6'],
      ["::ffff:192.0.2.300", 'invalid Address "::ffff:192.0.2.300": IPv4 octet 300 is greater than 255'],
    ];
    for (const [address, message] of cases) {
      expect(parseError(minimalFile([`Address = ${address}`]))).toBe(`wg0.conf:4: ${message}`);
    }
  });

  it("rejects an empty Address list", () => {
    expect(parseError(minimalFile(["Address = ,"]))).toBe('wg0.conf:4: invalid Address ",": the list has no entries');
  });

  it("rejects invalid DNS entries", () => {
    expect(parseError(minimalFile(["DNS = 192.0.2.300"]))).toBe(
      'wg0.conf:4: invalid DNS "192.0.2.300": IPv4 octet 300 is greater than 255',
    );
    expect(parseError(minimalFile(["DNS = 192.0.2.1, corp_net"]))).toBe(
      'wg0.conf:4: invalid DNS "corp_net": not an IP address or a domain name',
    );
  });

  it("rejects invalid AllowedIPs", () => {
    expect(parseError(minimalFile([], ["AllowedIPs = 192.0.2.0/24,"]))).toBe(
      'wg0.conf:7: invalid AllowedIPs "192.0.2.0/24,": empty entry in the comma-separated list',
    );
    expect(parseError(minimalFile([], ["AllowedIPs = 192.0.2.0/24 198.51.100.0/24"]))).toBe(
      'wg0.conf:7: invalid AllowedIPs "192.0.2.0/24 198.51.100.0/24": entries must be separated by commas',
    );
    expect(parseError(minimalFile([], ["AllowedIPs = ::/0, 0.0.0.0/40"]))).toBe(
      'wg0.conf:7: invalid AllowedIPs "0.0.0.0/40": prefix length must be 0 to 32 for IPv4',
    );
  });

  it("rejects invalid endpoints", () => {
    const cases: [string, string][] = [
      ["vpn.example.net:99999", 'invalid Endpoint "vpn.example.net:99999": port must be 1 to 65535'],
      ["vpn.example.net:0", 'invalid Endpoint "vpn.example.net:0": port must be 1 to 65535'],
      ["vpn.example.net:wireguard", 'invalid Endpoint "vpn.example.net:wireguard": port must be a number from 1 to 65535'],
      ["vpn.example.net:", 'invalid Endpoint "vpn.example.net:": port must be a number from 1 to 65535'],
      ["vpn.example.net", 'invalid Endpoint "vpn.example.net": missing port; expected host:port, such as vpn.example.net:51820'],
      ["2001:db8::1:51820", 'invalid Endpoint "2001:db8::1:51820": an IPv6 address needs brackets, as in [2001:db8::1]:51820'],
      ["[2001:db8::1:51820", 'invalid Endpoint "[2001:db8::1:51820": missing "]" after the IPv6 address'],
      ["[2001:db8::1]", 'invalid Endpoint "[2001:db8::1]": missing port after "]"; expected [address]:port'],
      ["[192.0.2.1]:51820", 'invalid Endpoint "[192.0.2.1]:51820": brackets are only for IPv6 addresses'],
      ["[fe80::1%eth0]:51820", 'invalid Endpoint "[fe80::1%eth0]:51820": IPv6 zone id "%eth0" is not supported'],
      [":51820", 'invalid Endpoint ":51820": missing host before the port'],
      ["vpn_1.example.net:51820", 'invalid Endpoint "vpn_1.example.net:51820": "vpn_1.example.net" is not a valid host name'],
      ["-vpn.example.net:51820", 'invalid Endpoint "-vpn.example.net:51820": "-vpn.example.net" is not a valid host name'],
      ["203.0.113.300:51820", 'invalid Endpoint "203.0.113.300:51820": IPv4 octet 300 is greater than 255'],
    ];
    for (const [endpoint, message] of cases) {
      expect(parseError(minimalFile([], [`Endpoint = ${endpoint}`]))).toBe(`wg0.conf:7: ${message}`);
    }
  });

  it("rejects invalid MTU values", () => {
    expect(parseError(minimalFile(["MTU = auto"]))).toBe(
      'wg0.conf:4: invalid MTU "auto": MTU must be a whole number from 576 to 65535',
    );
    expect(parseError(minimalFile(["MTU = 575"]))).toBe('wg0.conf:4: invalid MTU "575": MTU must be 576 to 65535');
    expect(parseError(minimalFile(["MTU = 65536"]))).toBe('wg0.conf:4: invalid MTU "65536": MTU must be 576 to 65535');
    expect(parseError(minimalFile(["MTU = -1"]))).toBe(
      'wg0.conf:4: invalid MTU "-1": MTU must be a whole number from 576 to 65535',
    );
  });

  it("rejects small MTU with IPv6", () => {
    expect(parseError(minimalFile(["MTU = 1279", "Address = 2001:db8::2/128"]))).toBe(
      'wg0.conf:4: invalid MTU "1279": MTU must be at least 1280 because the profile has the IPv6 address 2001:db8::2/128',
    );
  });

  it("rejects invalid ListenPort values", () => {
    expect(parseError(minimalFile(["ListenPort = 65536"]))).toBe(
      'wg0.conf:4: invalid ListenPort "65536": port must be 0 to 65535',
    );
    expect(parseError(minimalFile(["ListenPort = random"]))).toBe(
      'wg0.conf:4: invalid ListenPort "random": port must be a number from 0 to 65535',
    );
  });

  it("rejects invalid PersistentKeepalive values", () => {
    const reason = 'PersistentKeepalive must be "off" or a number of seconds from 0 to 65535';
    expect(parseError(minimalFile([], ["PersistentKeepalive = 25s"]))).toBe(
      `wg0.conf:7: invalid PersistentKeepalive "25s": ${reason}`,
    );
    expect(parseError(minimalFile([], ["PersistentKeepalive = 65536"]))).toBe(
      `wg0.conf:7: invalid PersistentKeepalive "65536": ${reason}`,
    );
  });

  it("truncates long values in messages", () => {
    const value = "x".repeat(100);
    expect(parseError(minimalFile([`Address = ${value}`]))).toBe(
      `wg0.conf:4: invalid Address "${"x".repeat(80)}…": not an IPv4 or IPv6 address`,
    );
  });
});

describe("parseWgQuick hostile input", () => {
  it("rejects files over 1 MiB", () => {
    const text = minimalFile() + "#".repeat(MAX_CONFIG_BYTES);
    const bytes = Buffer.byteLength(text);
    expect(parseError(text)).toBe(`wg0.conf: file too large: ${bytes} bytes, at most 1048576 (1 MiB) are allowed`);
  });

  it("counts UTF-8 bytes, not characters", () => {
    // "é" is 2 bytes in UTF-8, so this text has fewer characters than the limit but more bytes.
    const text = minimalFile() + "#" + "é".repeat(MAX_CONFIG_BYTES / 2);
    expect(text.length).toBeLessThan(MAX_CONFIG_BYTES);
    expect(parseError(text)).toMatch(/^wg0\.conf: file too large: \d+ bytes, at most 1048576 \(1 MiB\) are allowed$/);
  });

  it("rejects control characters", () => {
    expect(parseError(minimalFile(["Address = 192.0.2.3\u0000"]))).toBe(
      "wg0.conf:4: invalid control character U+0000 at column 20; a wg-quick file must be plain text",
    );
    expect(parseError(minimalFile(["# \u001b[31mred"]))).toBe(
      "wg0.conf:4: invalid control character U+001B at column 3; a wg-quick file must be plain text",
    );
    expect(parseError(minimalFile(["DNS = 192.0.2.1\rDNS = 192.0.2.2"]))).toBe(
      "wg0.conf:4: invalid control character U+000D at column 16; a wg-quick file must be plain text",
    );
    expect(parseError(minimalFile(["# \u0085"]))).toBe(
      "wg0.conf:4: invalid control character U+0085 at column 3; a wg-quick file must be plain text",
    );
  });

  it("rejects overlong lines", () => {
    expect(parseError(minimalFile([`# ${"x".repeat(MAX_LINE_LENGTH - 1)}`]))).toBe(
      "wg0.conf:4: line too long: 4097 characters, at most 4096 are allowed; split a long list over several lines of the same key",
    );
  });

  it("rejects too many peers", () => {
    const peers = Array.from({ length: MAX_PEERS + 1 }, (_, index) =>
      lines("[Peer]", `PublicKey = ${peerKey(index)}`, "AllowedIPs = 192.0.2.0/24"),
    );
    const text = lines("[Interface]", `PrivateKey = ${PRIVATE_KEY}`, "Address = 192.0.2.2/32") + peers.join("");
    expect(parseError(text)).toBe(`wg0.conf:${4 + 3 * MAX_PEERS}: too many [Peer] sections: at most 1000 are allowed`);
  });
});

describe("parseWgQuick invalid fixtures", () => {
  const cases: [string, string][] = [
    ["endpoint-port.conf", 'endpoint-port.conf:7: invalid Endpoint "vpn.example.net:99999": port must be 1 to 65535'],
    [
      "amneziawg.conf",
      'amneziawg.conf:5: unknown key "Jc" in [Interface]; expected one of PrivateKey, Address, DNS, MTU, ListenPort',
    ],
    ["no-peer.conf", "no-peer.conf: no [Peer] section; vpnns needs at least one peer to carry the namespace's traffic"],
  ];
  for (const [name, message] of cases) {
    it(`rejects ${name}`, () => {
      expect(() => parseWgQuick(readFixture(`invalid/${name}`), name)).toThrow(new UsageError(message));
    });
  }
});
