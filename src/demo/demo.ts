/**
 * `vpnns demo`: the main job end to end with no VPN account. It re-executes itself inside private
 * mount and network namespaces, so the machine's own network, /etc and /run stay untouched even
 * after a crash. There it builds a local WireGuard provider with the lab and drives the real vpnns
 * commands against it, printing one checked line per guarantee.
 */
import { execa } from "execa";
import { mkdtemp, writeFile, access } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { createLab, type Lab, type LabClient } from "../lab/lab.js";
import { prepareSandbox, sandboxArgv } from "../lab/sandbox.js";
import { listNamespaces, listLinks } from "../tools/ip.js";
import { findUserspaceDaemons } from "../resources/wireguard-link.js";
import { isVerbose } from "../core/log.js";

const SANDBOX_VARIABLE = "VPNNS_DEMO_SANDBOX";
const PROFILE = "demo";
const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
const PROBE = fileURLToPath(new URL("../lab/probe.js", import.meta.url));

export async function runDemo(): Promise<number> {
  if (process.env[SANDBOX_VARIABLE] !== "1") return runInSandbox();
  return runChecks();
}

/** Start the demo again inside a private sandbox and wait for it, passing Ctrl-C on so it can clean up. */
async function runInSandbox(): Promise<number> {
  const argv = sandboxArgv([process.execPath, CLI, ...(isVerbose() ? ["-v"] : []), "demo"]);
  const [file = "", ...args] = argv;
  const child = execa(file, args, { stdio: "inherit", reject: false, env: { [SANDBOX_VARIABLE]: "1" }, forceKillAfterDelay: false });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, forward);
  const result = await child;
  if (result.code === "ENOENT") {
    process.stderr.write("vpnns: the demo needs unshare from util-linux\n");
    return 1;
  }
  return result.exitCode ?? 1;
}

interface Check {
  passed: boolean;
  text: string;
}

class Report {
  readonly checks: Check[] = [];
  readonly started = Date.now();

  record(passed: boolean, text: string, detail?: string): void {
    this.checks.push({ passed, text });
    if (process.env.VPNNS_DEMO_TIMING) text += ` (${((Date.now() - this.started) / 1000).toFixed(1)} s)`;
    process.stdout.write(`${passed ? "[ok]  " : "[FAIL]"} ${text}${!passed && detail ? `\n       ${detail}` : ""}\n`);
  }

  get failed(): number {
    return this.checks.filter((check) => !check.passed).length;
  }
}

async function vpnns(args: string[]) {
  const verbose = isVerbose() ? ["-v"] : [];
  return execa(process.execPath, [CLI, ...verbose, ...args], { reject: false, all: true });
}

interface ProbeResult {
  ok: boolean;
  status?: number;
  body?: string;
  error?: string;
  uid?: number;
}

async function probeInside(url: string, timeoutMs = 1500): Promise<ProbeResult> {
  const result = await vpnns(["run", "--profile", PROFILE, "--", process.execPath, PROBE, url, String(timeoutMs)]);
  const line = result.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as ProbeResult;
  } catch {
    return { ok: false, error: `vpnns run exited with ${result.exitCode}: ${result.stderr.trim()}` };
  }
}

function remoteAddress(result: ProbeResult): string | undefined {
  try {
    return (JSON.parse(result.body ?? "") as { remoteAddress?: string }).remoteAddress;
  } catch {
    return undefined;
  }
}

async function runChecks(): Promise<number> {
  await prepareSandbox();
  const started = Date.now();
  process.stdout.write("vpnns demo: a local WireGuard provider in private namespaces; nothing on this machine's own network changes\n\n");
  const report = new Report();
  let lab: Lab | undefined;
  const interrupt = async (signal: NodeJS.Signals) => {
    process.stdout.write(`\ninterrupted by ${signal}: removing the demo profile and the lab\n`);
    await cleanUp(lab);
    process.exit(130);
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);

  try {
    lab = await createLab();
    const client = await lab.addClient();
    await runScenario(lab, client, report);
  } catch (error) {
    report.record(false, "the demo ran to the end", (error as Error).message);
  } finally {
    await cleanUp(lab);
  }
  await checkClean(report);

  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(`\n${report.checks.length - report.failed} passed, ${report.failed} failed in ${seconds} s\n`);
  return report.failed === 0 ? 0 : 1;
}

async function runScenario(lab: Lab, client: LabClient, report: Report): Promise<void> {
  const folder = await mkdtemp("/run/vpnns-demo-");
  const file = join(folder, "provider.conf");
  await writeFile(file, client.profileText, { mode: 0o600 });

  const imported = await vpnns(["profile", "import", file, "--name", PROFILE]);
  report.record(imported.exitCode === 0, "vpnns profile import: the provider's wg-quick file becomes profile 'demo'", imported.all);

  const up = await vpnns(["up", PROFILE]);
  report.record(up.exitCode === 0, `vpnns up: namespace vpnns-${PROFILE} is built and the tunnel to ${lab.endpoint4} completes a handshake`, up.all);
  if (up.exitCode !== 0) return;

  const byName = await probeInside(`http://${lab.serviceName}/`);
  const seen = remoteAddress(byName);
  const tunnelAddresses = [client.address4, client.address6];
  report.record(
    byName.ok && tunnelAddresses.includes(seen ?? ""),
    `an app in the profile reaches http://${lab.serviceName}/ and the service sees its tunnel address ${seen ?? "(none)"}`,
    JSON.stringify(byName),
  );
  const resolved = await vpnns(["run", "--profile", PROFILE, "--", "getent", "ahosts", lab.serviceName]);
  report.record(
    resolved.exitCode === 0 && resolved.stdout.includes(lab.serviceAddress4),
    `${lab.serviceName} resolves through the profile's DNS server ${lab.serviceAddress4}, which only the tunnel reaches`,
    resolved.all,
  );
  const overIpv6 = await probeInside(`http://[${lab.serviceAddress6}]/`);
  report.record(
    overIpv6.ok && remoteAddress(overIpv6) === client.address6,
    `IPv6 goes through the tunnel too: the service sees ${client.address6}`,
    JSON.stringify(overIpv6),
  );

  const hostUrl = `http://${lab.hostAddress4}:${lab.hostHttpPort}/`;
  const fromHost = await execa(process.execPath, [PROBE, hostUrl, "1500"], { reject: false });
  const fromInside = await probeInside(hostUrl, 1000);
  report.record(
    fromHost.exitCode === 0 && !fromInside.ok,
    `the host side ${hostUrl} answers the host but is unreachable from inside the profile`,
    `from the host: ${fromHost.stdout.trim()}; from inside: ${JSON.stringify(fromInside)}`,
  );

  await lab.cutTunnel();
  const afterCut = await probeInside(`http://${lab.serviceAddress4}/`, 1000);
  const hostAfterCut = await probeInside(hostUrl, 1000);
  report.record(
    !afterCut.ok && !hostAfterCut.ok,
    "with the provider's WireGuard stopped, the app reaches nothing: no fallback to the host's network",
    `service: ${JSON.stringify(afterCut)}; host side: ${JSON.stringify(hostAfterCut)}`,
  );

  const down = await vpnns(["down", PROFILE]);
  report.record(down.exitCode === 0, "vpnns down: processes, interface, firewall, DNS files, state and namespace removed", down.all);
}

async function cleanUp(lab: Lab | undefined): Promise<void> {
  await vpnns(["down", PROFILE]);
  await lab?.destroy();
}

async function checkClean(report: Report): Promise<void> {
  const leftovers: string[] = [];
  for (const namespace of await listNamespaces()) leftovers.push(`namespace ${namespace}`);
  for (const link of await listLinks()) if (link !== "lo") leftovers.push(`link ${link}`);
  if ((await findUserspaceDaemons(`vns-${PROFILE}`)).length > 0) leftovers.push("wireguard-go process");
  for (const path of [`/etc/netns/vpnns-${PROFILE}`, `/run/vpnns/${PROFILE}`]) {
    if (await access(path).then(() => true, () => false)) leftovers.push(path);
  }
  report.record(leftovers.length === 0, "everything the demo made is gone: no namespace, link, process, DNS file or state left", leftovers.join(", "));
}
