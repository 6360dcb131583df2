import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Conf from "conf";
import { afterEach, describe, expect, it } from "vitest";
import { UsageError } from "../../src/core/errors.js";
import { profileRootSchema, profileSchema, validateStoredProfile } from "../../src/profile/schema.js";
import type { Profile } from "../../src/profile/types.js";
import { findDuplicate, formatPublishedPort, parsePublishSpec, type PublishedPort } from "../../src/publish/spec.js";

const PRIVATE_KEY = "test+private+key00000000000000000000000000A=";
const PEER_KEY = "test+peer+public+key0000000000000000000000A=";

function sampleProfile(publish?: unknown): Record<string, unknown> {
  const profile: Record<string, unknown> = {
    name: "work",
    interface: { privateKey: PRIVATE_KEY, addresses: ["192.0.2.2/32"], dns: [], dnsSearch: [] },
    peers: [{ publicKey: PEER_KEY, allowedIPs: ["0.0.0.0/0"] }],
  };
  if (publish !== undefined) profile.publish = publish;
  return profile;
}

function parsed(text: string, protocol: "tcp" | "udp" = "tcp"): PublishedPort {
  const result = parsePublishSpec(text, protocol);
  if (!result.ok) throw new Error(`expected ${text} to parse: ${result.reason}`);
  return result.value;
}

function rejection(text: string): string {
  const result = parsePublishSpec(text, "tcp");
  if (result.ok) throw new Error(`expected ${text} to be rejected`);
  return result.reason;
}

function storedError(value: unknown): string {
  try {
    validateStoredProfile(value, "work.json");
  } catch (error) {
    expect(error).toBeInstanceOf(UsageError);
    return (error as Error).message;
  }
  throw new Error("expected validateStoredProfile to throw");
}

describe("parsePublishSpec", () => {
  it("defaults the host address to loopback", () => {
    expect(parsed("8080:80")).toEqual({ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, namespacePort: 80 });
  });

  it("takes an IPv4 host address", () => {
    expect(parsed("192.0.2.7:8080:80", "udp")).toEqual({ protocol: "udp", hostAddress: "192.0.2.7", hostPort: 8080, namespacePort: 80 });
  });

  it("takes a wildcard host address", () => {
    expect(parsed("0.0.0.0:9091:9091").hostAddress).toBe("0.0.0.0");
    expect(parsed("[::]:9091:9091").hostAddress).toBe("::");
  });

  it("takes a bracketed IPv6 address in canonical form", () => {
    expect(parsed("[2001:DB8:0::1]:8443:443")).toEqual({ protocol: "tcp", hostAddress: "2001:db8::1", hostPort: 8443, namespacePort: 443 });
    expect(parsed("[::1]:1:65535")).toEqual({ protocol: "tcp", hostAddress: "::1", hostPort: 1, namespacePort: 65535 });
  });

  it("rejects bad ports with the value", () => {
    expect(rejection("0:80")).toBe('invalid host port "0": a port is a whole number from 1 to 65535');
    expect(rejection("8080:65536")).toBe('invalid namespace port "65536": a port is a whole number from 1 to 65535');
    expect(rejection("http:80")).toBe('invalid host port "http": a port is a whole number from 1 to 65535');
    expect(rejection("8080:-1")).toContain('invalid namespace port "-1"');
    expect(rejection("8080:80.5")).toContain('invalid namespace port "80.5"');
  });

  it("rejects bad addresses", () => {
    expect(rejection("192.0.2.300:8080:80")).toBe("invalid host address: IPv4 octet 300 is greater than 255");
    expect(rejection("localhost:8080:80")).toBe("invalid host address: not an IPv4 or IPv6 address");
    expect(rejection("[192.0.2.1]:8080:80")).toContain("brackets are only for IPv6 addresses");
    expect(rejection("::1:8080:80")).toContain("write an IPv6 host address in brackets");
    expect(rejection("[::1:8080:80")).toContain('needs "]:" after it');
  });

  it("rejects a wrong number of fields", () => {
    expect(rejection("8080")).toContain("expected [host-address:]host-port:namespace-port");
    expect(rejection("")).toContain("expected [host-address:]host-port:namespace-port");
    expect(rejection("[::1]:8080")).toContain("expected [host-address:]host-port:namespace-port");
  });
});

describe("published port helpers", () => {
  it("formats entries as the command takes them", () => {
    expect(formatPublishedPort(parsed("8080:80"))).toBe("127.0.0.1:8080:80/tcp");
    expect(formatPublishedPort(parsed("[::1]:53:5353", "udp"))).toBe("[::1]:53:5353/udp");
  });

  it("finds a duplicate host port per protocol", () => {
    const entries = [parsed("8080:80"), parsed("192.0.2.7:9090:90")];
    expect(findDuplicate(entries, parsed("0.0.0.0:8080:81"))).toBe(0);
    expect(findDuplicate(entries, parsed("8080:80", "udp"))).toBe(-1);
    expect(findDuplicate(entries, parsed("9091:90"))).toBe(-1);
  });
});

describe("stored publish list", () => {
  it("keeps an old profile without publish valid", () => {
    expect(validateStoredProfile(sampleProfile(), "work.json")).not.toHaveProperty("publish");
  });

  it("accepts and normalizes entries", () => {
    const profile = validateStoredProfile(
      sampleProfile([{ protocol: "udp", hostAddress: "2001:DB8::0001", hostPort: 5353, namespacePort: 53 }]),
      "work.json",
    );
    expect(profile.publish).toEqual([{ protocol: "udp", hostAddress: "2001:db8::1", hostPort: 5353, namespacePort: 53 }]);
  });

  it("rejects bad entries with path and value", () => {
    const entry = { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, namespacePort: 80 };
    expect(storedError(sampleProfile({}))).toBe("work.json: invalid publish {}: expected an array");
    expect(storedError(sampleProfile([{ ...entry, protocol: "sctp" }]))).toBe('work.json: invalid publish[0].protocol "sctp": expected "tcp" or "udp"');
    expect(storedError(sampleProfile([{ ...entry, hostPort: 70000 }]))).toBe(
      "work.json: invalid publish[0].hostPort 70000: a port is a whole number from 1 to 65535",
    );
    expect(storedError(sampleProfile([{ ...entry, hostAddress: "lan" }]))).toBe(
      'work.json: invalid publish[0].hostAddress "lan": invalid host address: not an IPv4 or IPv6 address',
    );
    expect(storedError(sampleProfile([{ ...entry, extra: 1 }]))).toContain("unknown property publish[0].extra");
    expect(storedError(sampleProfile([{ protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080 }]))).toBe(
      "work.json: missing publish[0].namespacePort",
    );
  });

  it("rejects a duplicate host port", () => {
    const first = { protocol: "tcp", hostAddress: "127.0.0.1", hostPort: 8080, namespacePort: 80 };
    const second = { protocol: "tcp", hostAddress: "0.0.0.0", hostPort: 8080, namespacePort: 81 };
    expect(storedError(sampleProfile([first, second]))).toBe(
      "work.json: invalid publish[1].hostPort 8080: 127.0.0.1:8080/tcp in publish[0] already uses this host port; remove one of them",
    );
  });
});

describe("publish in the conf schema", () => {
  const folders: string[] = [];

  afterEach(() => {
    for (const folder of folders.splice(0)) rmSync(folder, { recursive: true, force: true });
  });

  function storeError(profile: unknown): string | undefined {
    const folder = mkdtempSync(join(tmpdir(), "vpnns-publish-schema-"));
    folders.push(folder);
    const store = new Conf<Profile>({ cwd: folder, configName: "work", schema: profileSchema, rootSchema: profileRootSchema, clearInvalidConfig: false });
    try {
      store.store = profile as Profile;
      return undefined;
    } catch (error) {
      return (error as Error).message;
    }
  }

  it("stores profiles with and without publish", () => {
    expect(storeError(sampleProfile())).toBeUndefined();
    expect(storeError(sampleProfile([{ protocol: "tcp", hostAddress: "::1", hostPort: 8080, namespacePort: 80 }]))).toBeUndefined();
  });

  it("rejects invalid publish entries", () => {
    expect(storeError(sampleProfile([{ protocol: "tcp", hostAddress: "::1", hostPort: 0, namespacePort: 80 }]))).toContain("publish");
    expect(storeError(sampleProfile([{ protocol: "icmp", hostAddress: "::1", hostPort: 1, namespacePort: 80 }]))).toContain("publish");
    expect(storeError(sampleProfile([{ protocol: "tcp", hostAddress: "::1", hostPort: 1 }]))).toContain("publish");
  });
});
