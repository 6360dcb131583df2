/**
 * Host firewalls: vpnns works unchanged next to a host firewall that drops forwarded packets by
 * default, as Docker and ufw set it up: in nftables, in iptables-nft, and in iptables-legacy and
 * nftables at once. vpnns leaves the host's rules exactly as they were, with the nftables
 * kill-switch and with the iptables fallback that vpnns takes when nft is not installed. The
 * sandbox's own network namespace plays the host. Runs only inside test/sandbox.sh, and imports
 * the lab from dist/ (npm run build first).
 */
import { execa } from "execa";
import { mkdtemp, readdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, test } from "vitest";
import type { Lab } from "../../src/lab/lab.js";
import { interfaceName, namespaceName } from "../../src/core/names.js";
import { PROBE, SKIP_REASON, importClient, leftovers, makeDirs, sandboxed, seenAddress, vpnns, type ProbeResult, type TestDirs } from "./helpers.js";

/** Milliseconds to wait for a request that must succeed, including the WireGuard handshake. */
const REACHABLE_TIMEOUT_MS = 10_000;
/** Milliseconds to wait for a request that must fail, because the kill-switch drops it. */
const UNREACHABLE_TIMEOUT_MS = 1500;

async function command(argv: string[], input = ""): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  const [file = "", ...args] = argv;
  const result = await execa(file, args, { reject: false, input });
  return { exitCode: result.exitCode ?? -1, stdout: result.stdout, stderr: result.stderr };
}

async function mustRun(argv: string[], input = ""): Promise<string> {
  const result = await command(argv, input);
  if (result.exitCode !== 0) throw new Error(`${argv.join(" ")} failed: ${result.stderr}`);
  return result.stdout;
}

/** The save tools whose output makes up the host's firewall, besides `nft list ruleset`. */
const SAVE_TOOLS = ["iptables-legacy-save", "ip6tables-legacy-save", "iptables-nft-save", "ip6tables-nft-save"];

/**
 * Captures the host's firewall as text: `nft list ruleset` and each save tool's output, without counters,
 * comments and the warning that iptables-nft-save prints when legacy tables exist.
 */
async function hostFirewall(): Promise<string> {
  const parts = [`## nft\n${await mustRun(["nft", "--stateless", "list", "ruleset"])}`];
  for (const tool of SAVE_TOOLS) {
    const output = await mustRun([tool]);
    const lines = output
      .split("\n")
      .filter((line) => !line.startsWith("#"))
      .map((line) => line.replace(/\[\d+:\d+\]/g, ""));
    parts.push(`## ${tool}\n${lines.join("\n")}`);
  }
  return parts.join("\n");
}

/** An nftables host firewall: forwarding dropped, input only for loopback and replies, as ufw sets it up, and a table of the kill-switch's name. */
const NFT_HOST_RULESET = `
table inet hostfw {
  chain input {
    type filter hook input priority filter; policy drop;
    iif "lo" accept
    ct state established,related accept
    counter
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    counter
  }
  chain output {
    type filter hook output priority filter; policy accept;
    counter
  }
}
table inet vpnns {
  chain forward {
    type filter hook forward priority filter; policy drop;
  }
}
`;

/** iptables rules as Docker and ufw leave them: FORWARD dropped, input only for loopback and replies. */
function iptablesHostRules(family: "ipv4" | "ipv6"): string {
  return [
    "*filter",
    ":INPUT DROP [0:0]",
    ":FORWARD DROP [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":DOCKER-USER - [0:0]",
    "-A INPUT -i lo -j ACCEPT",
    "-A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
    ...(family === "ipv6" ? ["-A INPUT -p ipv6-icmp -j ACCEPT"] : []),
    "-A FORWARD -j DOCKER-USER",
    "-A DOCKER-USER -j RETURN",
    "COMMIT",
    "",
  ].join("\n");
}

type IptablesVariant = "legacy" | "nft";

async function installIptables(variant: IptablesVariant): Promise<void> {
  await mustRun([`iptables-${variant}-restore`], iptablesHostRules("ipv4"));
  await mustRun([`ip6tables-${variant}-restore`], iptablesHostRules("ipv6"));
}

/** Empties the filter tables of a variant and sets their policies back to ACCEPT. */
async function removeIptables(variant: IptablesVariant): Promise<void> {
  const empty = ["*filter", ":INPUT ACCEPT [0:0]", ":FORWARD ACCEPT [0:0]", ":OUTPUT ACCEPT [0:0]", "COMMIT", ""].join("\n");
  await mustRun([`iptables-${variant}-restore`], empty);
  await mustRun([`ip6tables-${variant}-restore`], empty);
  if (variant === "nft") {
    // iptables-nft keeps its tables in nftables, where they can go entirely.
    await command(["nft", "delete", "table", "ip", "filter"]);
    await command(["nft", "delete", "table", "ip6", "filter"]);
  }
}

/** Fetches a URL from inside a profile with `vpnns run` and the probe program, with vpnns's environment. */
async function probe(dirs: TestDirs, profile: string, url: string, timeoutMs: number, env: Record<string, string>): Promise<ProbeResult> {
  const result = await vpnns(dirs, ["run", "--profile", profile, "--", process.execPath, PROBE, url, String(timeoutMs)], { env });
  try {
    return JSON.parse(result.stdout.trim().split("\n").pop() ?? "") as ProbeResult;
  } catch {
    return { ok: false, error: `vpnns run exited with ${result.exitCode}: ${result.all}` };
  }
}

interface HostSetup {
  name: string;
  install(): Promise<void>;
  remove(): Promise<void>;
}

const HOST_SETUPS: HostSetup[] = [
  {
    name: "nftables",
    install: () => mustRun(["nft", "-f", "-"], NFT_HOST_RULESET).then(() => {}),
    remove: async () => {
      await command(["nft", "delete", "table", "inet", "hostfw"]);
      await command(["nft", "delete", "table", "inet", "vpnns"]);
    },
  },
  { name: "iptables-nft", install: () => installIptables("nft"), remove: () => removeIptables("nft") },
  {
    name: "iptables-legacy and nftables",
    install: async () => {
      await installIptables("legacy");
      await mustRun(["nft", "-f", "-"], NFT_HOST_RULESET);
    },
    remove: async () => {
      await command(["nft", "delete", "table", "inet", "hostfw"]);
      await command(["nft", "delete", "table", "inet", "vpnns"]);
      await removeIptables("legacy");
    },
  },
];

/**
 * Builds a PATH of one folder that links every program on PATH except nft, so vpnns takes its
 * iptables fallback. iptables-restore and its siblings point to the given variant: the
 * xtables multi-call programs choose what to do by the name they are started under.
 */
async function pathWithoutNft(variant: IptablesVariant): Promise<string> {
  const folder = await mkdtemp(`/run/vpnns/no-nft-${variant}-`);
  const overrides = new Map(
    ["iptables-restore", "ip6tables-restore", "iptables-save", "ip6tables-save"].map((name) => [name, `/usr/sbin/${name.replace(/(-restore|-save)$/, `-${variant}$1`)}`]),
  );
  for (const [name, target] of overrides) await symlink(target, join(folder, name));
  const linked = new Set([...overrides.keys(), "nft"]);
  for (const directory of (process.env.PATH ?? "").split(":")) {
    if (directory === "") continue;
    const names = await readdir(directory).catch(() => [] as string[]);
    for (const name of names) {
      if (linked.has(name)) continue;
      linked.add(name);
      await symlink(join(directory, name), join(folder, name));
    }
  }
  return folder;
}

interface Backend {
  name: string;
  /** The iptables variant of the fallback, run with a PATH without nft; undefined for the nft kill-switch. */
  variant?: IptablesVariant;
}

const BACKENDS: Backend[] = [{ name: "nft kill-switch" }, { name: "iptables-nft fallback", variant: "nft" }, { name: "iptables-legacy fallback", variant: "legacy" }];

if (!sandboxed) test.skip(`host firewall tests skipped: ${SKIP_REASON}`, () => {});

describe.skipIf(!sandboxed)("host firewalls", () => {
  let lab: Lab;
  let dirs: TestDirs;
  /** PATH without nft for each iptables variant. */
  const fallbackPaths = new Map<IptablesVariant, string>();
  let cleanHost: string;
  let profileCount = 0;

  beforeAll(async () => {
    const labModule = (await import("../../dist/lab/lab.js")) as typeof import("../../src/lab/lab.js");
    lab = await labModule.createLab();
    dirs = await makeDirs("host-firewall");
    for (const variant of ["nft", "legacy"] as const) fallbackPaths.set(variant, await pathWithoutNft(variant));
    cleanHost = await hostFirewall();
  });

  afterAll(async () => {
    if (dirs) await vpnns(dirs, ["down", "--all"]);
    await lab?.destroy();
  });

  it("fallback PATH has no nft", async () => {
    for (const path of fallbackPaths.values()) {
      const result = await execa("sh", ["-c", "command -v nft; command -v iptables-restore"], { reject: false, env: { PATH: path } });
      expect(result.stdout.trim().split("\n")).toEqual([join(path, "iptables-restore")]);
    }
  });

  for (const setup of HOST_SETUPS) {
    describe(`host with ${setup.name}`, () => {
      let hostRules: string;

      beforeAll(async () => {
        await setup.install();
        hostRules = await hostFirewall();
      });

      afterAll(async () => {
        await setup.remove();
      });

      afterEach(async () => {
        // A failed test may leave its profile up; the host rules stay as they are.
        await vpnns(dirs, ["down", "--all"]);
      });

      it("host rules are in place", () => {
        expect(hostRules).not.toBe(cleanHost);
        expect(hostRules).toMatch(/policy drop|FORWARD DROP/);
      });

      for (const backend of BACKENDS) {
        it(`${backend.name}: up, run and down`, async () => {
          profileCount += 1;
          const profile = `hostfw${profileCount}`;
          const path = backend.variant === undefined ? undefined : fallbackPaths.get(backend.variant);
          const env: Record<string, string> = path === undefined ? {} : { PATH: path };
          const client = await importClient(dirs, lab, profile);

          const up = await vpnns(dirs, ["up", profile], { env });
          expect(up.exitCode, up.all).toBe(0);
          const status = await vpnns(dirs, ["status", profile, "--json"], { env });
          const firewallBackend = (JSON.parse(status.stdout) as { firewallBackend: string }).firewallBackend;
          expect(firewallBackend).toBe(backend.variant === undefined ? "nft" : "iptables");
          if (backend.variant !== undefined) {
            // The kill-switch is in the variant's tables inside the namespace.
            for (const family of ["iptables", "ip6tables"]) {
              const killSwitch = await mustRun(["ip", "netns", "exec", namespaceName(profile), `${family}-${backend.variant}-save`, "-t", "filter"]);
              expect(killSwitch).toMatch(/^:OUTPUT DROP/m);
            }
          }
          expect(await hostFirewall()).toBe(hostRules);

          const service = await probe(dirs, profile, `http://${lab.serviceAddress4}/`, REACHABLE_TIMEOUT_MS, env);
          expect(service.error).toBeUndefined();
          expect(seenAddress(service)).toBe(client.address4);
          const host = await probe(dirs, profile, `http://${lab.hostAddress4}:${lab.hostHttpPort}/`, UNREACHABLE_TIMEOUT_MS, env);
          expect(host.ok).toBe(false);

          const down = await vpnns(dirs, ["down", profile], { env });
          expect(down.exitCode, down.all).toBe(0);
          expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
          expect(await hostFirewall()).toBe(hostRules);
        });
      }

      it("run brings up and takes down", async () => {
        profileCount += 1;
        const profile = `hostfw${profileCount}`;
        await importClient(dirs, lab, profile);
        const result = await vpnns(dirs, ["run", "--profile", profile, "--", "true"]);
        expect(result.exitCode, result.all).toBe(0);
        expect(await leftovers(dirs, profile, interfaceName(profile))).toEqual([]);
        expect(await hostFirewall()).toBe(hostRules);
      });
    });
  }
});
