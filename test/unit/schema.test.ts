import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Conf from "conf";
import { afterEach, beforeEach, describe, it, expect, vi } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { profileRootSchema, profileSchema, validateStoredProfile } from "../../src/profile/schema.js";
import type { Profile } from "../../src/profile/types.js";
import { parseWgQuick } from "../../src/profile/wgquick.js";

const PRIVATE_KEY = "test+private+key00000000000000000000000000A=";
const PEER_KEY = "test+peer+public+key0000000000000000000000A=";
const SECOND_PEER_KEY = "test+second+peer+public+key000000000000000A=";
const PRESHARED_KEY = "test+preshared+key000000000000000000000000A=";

function sampleProfile(): Profile {
  return {
    name: "work",
    interface: {
      privateKey: PRIVATE_KEY,
      addresses: ["192.0.2.2/32", "2001:db8::2/128"],
      dns: ["192.0.2.53"],
      dnsSearch: ["corp.example.net"],
      mtu: 1420,
      listenPort: 51820,
    },
    peers: [
      {
        publicKey: PEER_KEY,
        presharedKey: PRESHARED_KEY,
        allowedIPs: ["0.0.0.0/0", "::/0"],
        endpoint: "vpn.example.net:51820",
        persistentKeepalive: 25,
      },
    ],
    source: "/home/user/work.conf",
    importedAt: "2025-01-31T12:00:00.000Z",
  };
}

/** Copies the sample profile through JSON and applies `edit`, as a user editing the file would. */
function editedProfile(edit: (profile: Record<string, any>) => void): unknown {
  const profile = JSON.parse(JSON.stringify(sampleProfile()));
  edit(profile);
  return profile;
}

function validationError(value: unknown): string {
  try {
    validateStoredProfile(value, "work.json");
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as UsageError).message;
  }
  throw new Error("expected validateStoredProfile to throw a UsageError");
}

describe("validateStoredProfile", () => {
  it("accepts a stored profile", () => {
    const profile = sampleProfile();
    expect(validateStoredProfile(JSON.parse(JSON.stringify(profile)), "work.json")).toEqual(profile);
  });

  it("accepts a parsed fixture", () => {
    const text = readFileSync(new URL("../fixtures/wgquick/multi-peer.conf", import.meta.url), "utf8");
    const profile: Profile = { name: "multi", ...parseWgQuick(text, "multi-peer.conf").config };
    expect(validateStoredProfile(JSON.parse(JSON.stringify(profile)), "multi.json")).toEqual(profile);
  });

  it("accepts ISO times with offsets", () => {
    for (const importedAt of ["2024-02-29T23:59:59+02:00", "2025-12-31T00:00:00Z", "2025-06-01T08:30:00.5-07:00"]) {
      const value = editedProfile((profile) => (profile.importedAt = importedAt));
      expect(validateStoredProfile(value, "work.json").importedAt).toBe(importedAt);
    }
  });

  it("accepts optional fields missing", () => {
    const value = editedProfile((profile) => {
      delete profile.source;
      delete profile.importedAt;
      delete profile.interface.mtu;
      delete profile.interface.listenPort;
      profile.peers[0] = { publicKey: PEER_KEY, allowedIPs: ["0.0.0.0/0"] };
    });
    expect(validateStoredProfile(value, "work.json")).toEqual({
      name: "work",
      interface: {
        privateKey: PRIVATE_KEY,
        addresses: ["192.0.2.2/32", "2001:db8::2/128"],
        dns: ["192.0.2.53"],
        dnsSearch: ["corp.example.net"],
      },
      peers: [{ publicKey: PEER_KEY, allowedIPs: ["0.0.0.0/0"] }],
    });
  });

  it("normalizes hand-edited values", () => {
    const value = editedProfile((profile) => {
      profile.interface.addresses = ["192.0.2.2", "2001:DB8:0::2/128"];
      profile.interface.dns = ["2001:DB8::0053"];
      profile.interface.listenPort = 0;
      profile.peers[0].allowedIPs = ["10.0.0.5/24"];
      profile.peers[0].endpoint = "[2001:DB8::1]:51820";
    });
    const profile = validateStoredProfile(value, "work.json");
    expect(profile.interface.addresses).toEqual(["192.0.2.2/32", "2001:db8::2/128"]);
    expect(profile.interface.dns).toEqual(["2001:db8::53"]);
    expect(profile.interface).not.toHaveProperty("listenPort");
    expect(profile.peers[0].allowedIPs).toEqual(["10.0.0.0/24"]);
    expect(profile.peers[0].endpoint).toBe("[2001:db8::1]:51820");
  });

  it("rejects values of wrong type", () => {
    expect(validationError([])).toBe("work.json: invalid profile []: expected a JSON object");
    expect(validationError(null)).toBe("work.json: invalid profile null: expected a JSON object");
    expect(validationError(editedProfile((p) => (p.name = 7)))).toBe("work.json: invalid name 7: expected a string");
    expect(validationError(editedProfile((p) => (p.interface = "eth0")))).toBe(
      'work.json: invalid interface "eth0": expected a JSON object',
    );
    expect(validationError(editedProfile((p) => (p.interface.dns = "192.0.2.53")))).toBe(
      'work.json: invalid interface.dns "192.0.2.53": expected an array',
    );
    expect(validationError(editedProfile((p) => (p.interface.addresses = [1])))).toBe(
      "work.json: invalid interface.addresses[0] 1: expected a string",
    );
    expect(validationError(editedProfile((p) => (p.interface.mtu = 1420.5)))).toBe(
      "work.json: invalid interface.mtu 1420.5: expected a whole number",
    );
    expect(validationError(editedProfile((p) => (p.interface.mtu = "1420")))).toBe(
      'work.json: invalid interface.mtu "1420": expected a whole number',
    );
    expect(validationError(editedProfile((p) => (p.peers = {})))).toBe("work.json: invalid peers {}: expected an array");
  });

  it("rejects missing fields", () => {
    expect(validationError(editedProfile((p) => delete p.name))).toBe("work.json: missing name");
    expect(validationError(editedProfile((p) => delete p.interface))).toBe("work.json: missing interface");
    expect(validationError(editedProfile((p) => delete p.interface.privateKey))).toBe(
      "work.json: missing interface.privateKey",
    );
    expect(validationError(editedProfile((p) => delete p.interface.dnsSearch))).toBe(
      "work.json: missing interface.dnsSearch",
    );
    expect(validationError(editedProfile((p) => delete p.peers))).toBe("work.json: missing peers");
    expect(validationError(editedProfile((p) => delete p.peers[0].allowedIPs))).toBe(
      "work.json: missing peers[0].allowedIPs",
    );
  });

  it("rejects unknown properties", () => {
    expect(validationError(editedProfile((p) => (p.comment = "x")))).toBe(
      "work.json: unknown property comment; expected only name, interface, peers, source, importedAt, publish",
    );
    expect(validationError(editedProfile((p) => (p.interface.table = "off")))).toBe(
      "work.json: unknown property interface.table; expected only privateKey, addresses, dns, dnsSearch, mtu, listenPort",
    );
    expect(validationError(editedProfile((p) => (p.peers[0].endPoint = "x")))).toBe(
      "work.json: unknown property peers[0].endPoint; expected only publicKey, presharedKey, allowedIPs, endpoint, persistentKeepalive",
    );
  });

  it("hides secrets in messages", () => {
    expect(validationError(editedProfile((p) => (p.interface.privateKey = "secret")))).toBe(
      'work.json: invalid interface.privateKey (value hidden, 6 characters): a key must be 32 bytes in base64: 44 characters ending in "="',
    );
    expect(validationError(editedProfile((p) => (p.interface.privateKey = 12345)))).toBe(
      "work.json: invalid interface.privateKey (value hidden): expected a string",
    );
    expect(validationError(editedProfile((p) => (p.peers[0].presharedKey = "x")))).toBe(
      'work.json: invalid peers[0].presharedKey (value hidden, 1 characters): a key must be 32 bytes in base64: 44 characters ending in "="',
    );
  });

  it("rejects invalid values", () => {
    const cases: [(profile: Record<string, any>) => void, string][] = [
      [(p) => (p.name = "Work VPN"), 'work.json: invalid name "Work VPN": a profile name has lowercase letters, digits, "-" and "_", starts with a letter or digit and has at most 32 characters'],
      [(p) => (p.interface.addresses = []), "work.json: invalid interface.addresses []: at least one address is required"],
      [(p) => (p.interface.addresses = ["192.0.2.2/33"]), 'work.json: invalid interface.addresses[0] "192.0.2.2/33": prefix length must be 0 to 32 for IPv4'],
      [(p) => (p.interface.dns = ["corp.example.net"]), 'work.json: invalid interface.dns[0] "corp.example.net": not an IPv4 or IPv6 address'],
      [(p) => (p.interface.dnsSearch = ["corp_net"]), 'work.json: invalid interface.dnsSearch[0] "corp_net": not a valid domain name'],
      [(p) => (p.interface.mtu = 70000), "work.json: invalid interface.mtu 70000: MTU must be 576 to 65535"],
      [(p) => (p.interface.mtu = 1200), "work.json: invalid interface.mtu 1200: MTU must be at least 1280 because the profile has the IPv6 address 2001:db8::2/128"],
      [(p) => (p.interface.listenPort = 65536), "work.json: invalid interface.listenPort 65536: port must be 0 to 65535"],
      [(p) => (p.peers = []), "work.json: invalid peers []: at least one peer is required to carry the namespace's traffic"],
      [(p) => (p.peers[0].publicKey = "abc"), 'work.json: invalid peers[0].publicKey "abc": a key must be 32 bytes in base64: 44 characters ending in "="'],
      [(p) => (p.peers[0].allowedIPs = []), "work.json: invalid peers[0].allowedIPs []: at least one network is required"],
      [(p) => (p.peers[0].allowedIPs = ["::/0", "::/129"]), 'work.json: invalid peers[0].allowedIPs[1] "::/129": prefix length must be 0 to 128 for IPv6'],
      [(p) => (p.peers[0].endpoint = "vpn.example.net:0"), 'work.json: invalid peers[0].endpoint "vpn.example.net:0": port must be 1 to 65535'],
      [(p) => (p.peers[0].persistentKeepalive = 0), "work.json: invalid peers[0].persistentKeepalive 0: persistentKeepalive must be 1 to 65535 seconds; remove it to turn keepalive off"],
      [(p) => (p.source = "work.conf"), 'work.json: invalid source "work.conf": expected an absolute path'],
      [(p) => (p.importedAt = "yesterday"), 'work.json: invalid importedAt "yesterday": expected an ISO 8601 time such as 2025-01-31T12:00:00.000Z'],
      [(p) => (p.importedAt = "2025-02-30T12:00:00Z"), 'work.json: invalid importedAt "2025-02-30T12:00:00Z": expected an ISO 8601 time such as 2025-01-31T12:00:00.000Z'],
      [(p) => (p.importedAt = "2025-01-31T24:00:00Z"), 'work.json: invalid importedAt "2025-01-31T24:00:00Z": expected an ISO 8601 time such as 2025-01-31T12:00:00.000Z'],
    ];
    for (const [edit, message] of cases) expect(validationError(editedProfile(edit)), message).toBe(message);
  });

  it("rejects peers sharing a key", () => {
    const value = editedProfile((profile) => {
      profile.peers.push({ publicKey: SECOND_PEER_KEY, allowedIPs: ["192.0.2.0/24"] });
      profile.peers.push({ publicKey: PEER_KEY, allowedIPs: ["198.51.100.0/24"] });
    });
    expect(validationError(value)).toBe(
      `work.json: invalid peers[2].publicKey "${PEER_KEY}": the same key as peers[0].publicKey; each peer needs its own`,
    );
  });
});

describe("profileSchema with conf", () => {
  let folder: string;

  beforeEach(() => {
    folder = mkdtempSync(join(tmpdir(), "vpnns-schema-"));
  });

  afterEach(() => {
    rmSync(folder, { recursive: true, force: true });
  });

  function openStore(defaults?: Profile): Conf<Profile> {
    return new Conf<Profile>({
      cwd: folder,
      configName: "work",
      schema: profileSchema,
      rootSchema: profileRootSchema,
      ...(defaults === undefined ? {} : { defaults }),
      clearInvalidConfig: false,
    });
  }

  /** Stores `profile` and returns conf's error message, or undefined when conf accepts it. */
  function storeError(profile: unknown): string | undefined {
    const store = openStore();
    try {
      store.store = profile as Profile;
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }

  it("stores and reads a profile", () => {
    const warn = vi.spyOn(console, "warn");
    const profile = sampleProfile();
    openStore(profile).store = profile;
    expect({ ...openStore().store }).toEqual(profile);
    // ajv reports schema problems such as missing types through console.warn in strict mode.
    expect(warn).not.toHaveBeenCalled();
    warn.mockRestore();
  });

  it("stores a parsed example profile", () => {
    const text = readFileSync(new URL("../../profiles/example.conf", import.meta.url), "utf8");
    const profile: Profile = { name: "example", ...parseWgQuick(text, "example.conf").config };
    expect(storeError(profile)).toBeUndefined();
  });

  it("rejects invalid profiles", () => {
    const cases: [(profile: Record<string, any>) => void, string][] = [
      [(p) => (p.name = "Work"), "`name` must match pattern"],
      [(p) => (p.extra = 1), "must NOT have additional properties"],
      [(p) => (p.interface.privateKey = `${PRIVATE_KEY.slice(0, -2)}B=`), "`interface/privateKey` must match pattern"],
      [(p) => delete p.interface.dns, "must have required property 'dns'"],
      [(p) => (p.interface.addresses = ["192.0.2.256/32"]), "`interface/addresses/0` must match pattern"],
      [(p) => (p.interface.addresses = ["192.0.2.1/33"]), "`interface/addresses/0` must match pattern"],
      [(p) => (p.interface.addresses = ["2001:db8::1/129"]), "`interface/addresses/0` must match pattern"],
      [(p) => (p.interface.dnsSearch = ["-corp.example.net"]), "`interface/dnsSearch/0` must match pattern"],
      [(p) => (p.interface.mtu = 575), "`interface/mtu` must be >= 576"],
      [(p) => (p.interface.mtu = 1279), "`interface/mtu` must be >= 1280"],
      [(p) => (p.interface.listenPort = 65536), "`interface/listenPort` must be <= 65535"],
      [(p) => (p.peers = []), "`peers` must NOT have fewer than 1 items"],
      [(p) => (p.peers[0].endpoint = "vpn.example.net:65536"), "`peers/0/endpoint` must match pattern"],
      [(p) => (p.peers[0].endpoint = "vpn.example.net"), "`peers/0/endpoint` must match pattern"],
      [(p) => (p.peers[0].persistentKeepalive = 0), "`peers/0/persistentKeepalive` must be >= 1"],
      [(p) => (p.peers[0].colour = "red"), "`peers/0` must NOT have additional properties"],
      [(p) => (p.source = "work.conf"), "`source` must match pattern"],
      [(p) => (p.importedAt = "yesterday"), "`importedAt` must match pattern"],
    ];
    for (const [edit, fragment] of cases) {
      const message = storeError(editedProfile(edit));
      expect(message).toContain("Config schema violation");
      expect(message).toContain(fragment);
    }
  });

  it("accepts IPv4-only small MTU", () => {
    const value = editedProfile((profile) => {
      profile.interface.addresses = ["192.0.2.2/32"];
      profile.interface.mtu = 576;
    });
    expect(storeError(value)).toBeUndefined();
  });
});
