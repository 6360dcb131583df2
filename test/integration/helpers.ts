/**
 * Shared tools for the integration tests: the vpnns command line as a real process, the lab,
 * and a list of everything a profile could leave on the machine. The tests run only inside
 * test/sandbox.sh, import the lab from dist/ and run dist/cli/main.js (npm run build first).
 */
import { execa, type ResultPromise } from "execa";
import { mkdtemp, readdir, readFile, readlink, stat, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import type { Lab, LabClient, AddClientOptions } from "../../src/lab/lab.js";

export const sandboxed = process.env.VPNNS_SANDBOX === "1";
export const SKIP_REASON = "needs root and the private sandbox: run scripts/test";

export const CLI = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));
export const PROBE = fileURLToPath(new URL("../../dist/lab/probe.js", import.meta.url));

/** Config and state folders of one test file, so files never see each other's profiles. */
export interface TestDirs {
  configDir: string;
  stateDir: string;
}

export async function makeDirs(name: string): Promise<TestDirs> {
  const root = await mkdtemp(`/run/vpnns/test-${name}-`);
  return { configDir: join(root, "config"), stateDir: join(root, "state") };
}

export interface VpnnsOptions {
  env?: Record<string, string>;
  input?: string;
  timeout?: number;
}

/** Run the vpnns command line; never throws on a non-zero exit. */
export function vpnns(dirs: TestDirs, args: string[], options: VpnnsOptions = {}): ResultPromise<{ reject: false; all: true }> {
  return execa(process.execPath, [CLI, ...args], {
    reject: false,
    all: true,
    input: options.input ?? "",
    timeout: options.timeout ?? 60_000,
    env: { VPNNS_CONFIG_DIR: dirs.configDir, VPNNS_STATE_DIR: dirs.stateDir, ...options.env },
  }) as ResultPromise<{ reject: false; all: true }>;
}

/** Import a new lab client as a profile; returns the client. */
export async function importClient(dirs: TestDirs, lab: Lab, profile: string, options: AddClientOptions = {}): Promise<LabClient> {
  const client = await lab.addClient(options);
  const folder = await mkdtemp("/run/vpnns/conf-");
  const file = join(folder, `${profile}.conf`);
  await writeFile(file, client.profileText, { mode: 0o600 });
  const result = await vpnns(dirs, ["profile", "import", file, "--name", profile]);
  if (result.exitCode !== 0) throw new Error(`import of ${profile} failed: ${result.all}`);
  return client;
}

export interface ProbeResult {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
  uid?: number;
}

/** Fetch a URL from inside a profile with `vpnns run` and the probe program. */
export async function probeInside(dirs: TestDirs, profile: string, url: string, timeoutMs = 1500, extra: string[] = []): Promise<ProbeResult> {
  const result = await vpnns(dirs, ["run", "--profile", profile, ...extra, "--", process.execPath, PROBE, url, String(timeoutMs)]);
  const line = result.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as ProbeResult;
  } catch {
    return { ok: false, error: `vpnns run exited with ${result.exitCode}: ${result.all}` };
  }
}

/** Extract the address the lab's HTTP service saw from a probe's body. */
export function seenAddress(result: ProbeResult): string | undefined {
  try {
    return (JSON.parse(result.body ?? "") as { remoteAddress?: string }).remoteAddress;
  } catch {
    return undefined;
  }
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function run(argv: string[]): Promise<string> {
  const [file = "", ...args] = argv;
  return (await execa(file, args, { reject: false })).stdout;
}

/** Everything of a profile still on the machine: namespace, links, DNS files, state, daemons, locks. */
export async function leftovers(dirs: TestDirs, profile: string, interfaceName: string): Promise<string[]> {
  const found: string[] = [];
  if ((await run(["ip", "netns", "list"])).split("\n").some((line) => line.split(" ")[0] === `vpnns-${profile}`)) {
    found.push(`namespace vpnns-${profile}`);
  }
  if ((await run(["ip", "-o", "link", "show"])).includes(` ${interfaceName}:`)) found.push(`link ${interfaceName}`);
  for (const path of [`/etc/netns/vpnns-${profile}`, join(dirs.stateDir, profile), join(dirs.stateDir, "locks", `${profile}.lock`), `/var/run/wireguard/${interfaceName}.sock`]) {
    if (await exists(path)) found.push(path);
  }
  const ownNamespace = await readlink("/proc/self/ns/net");
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    const argv = cmdline.split("\0");
    if (!argv[0]?.endsWith("wireguard-go") || !argv.includes(interfaceName)) continue;
    // Another sandbox's daemon of the same name lives in another network namespace.
    const namespace = await readlink(`/proc/${entry}/ns/net`).catch(() => "");
    if (namespace === ownNamespace) found.push(`wireguard-go process ${entry}`);
  }
  return found;
}

/** Poll until the condition holds, and throw with the description after timeoutMs. */
export async function waitFor(description: string, condition: () => boolean | Promise<boolean>, timeoutMs = 20_000, intervalMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * PIDs of the wireguard-go daemons that serve this interface, leaving out zombies. Only daemons in
 * this process's network namespace count, because vpnns starts them there, and other sandboxes on
 * the machine share /proc and may run daemons with the same interface name.
 */
export async function wireguardGoPids(interfaceName: string): Promise<number[]> {
  const ownNamespace = await readlink("/proc/self/ns/net");
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(`/proc/${entry}/stat`, "utf8");
      if (status.slice(status.lastIndexOf(")") + 2)[0] === "Z") continue;
      if ((await readlink(`/proc/${entry}/ns/net`)) !== ownNamespace) continue;
      const argv = (await readFile(`/proc/${entry}/cmdline`, "utf8")).split("\0");
      if (argv[0]?.endsWith("wireguard-go") && argv.includes(interfaceName)) pids.push(Number(entry));
    } catch {
      // The process ended during the scan.
    }
  }
  return pids;
}
