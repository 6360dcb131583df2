/**
 * `vpnns check`: a self-test of a profile that is up. Each check reads the live system (links,
 * firewall, routes, DNS files, the WireGuard peer) and, for what apps see, runs a small script
 * through the same launch path as `vpnns run`. A failed check comes with the command that fixes it.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Profile } from "../profile/types.js";
import type { ProbeOutcome, ResolverReport } from "./check-inside.js";
import { interfaceName, namespaceName } from "./names.js";
import { netnsEtcDir } from "./paths.js";
import { isProcessAlive, readState, type ProfileState } from "./state.js";
import { checkHealth } from "./launcher.js";
import { planAppCommand } from "./app.js";
import { UsageError } from "./errors.js";
import type { TargetUser } from "./user.js";
import { run } from "../tools/exec.js";
import { listLinks } from "../tools/ip.js";
import { setPersistentKeepalive, showInterface, type InterfaceStatus } from "../tools/wg.js";
import { listTable } from "../tools/nft.js";
import { saveFilter } from "../tools/iptables.js";
import { NFT_TABLE, renderNftRuleset, type FirewallBackend } from "../resources/firewall.js";
import { renderResolvConf } from "../resources/dns.js";
import { namespaceExists, sleep } from "../resources/namespace.js";
import { prepareAppMounts } from "../resources/app-mounts.js";

export type CheckName = "up" | "interfaces" | "kill-switch" | "routes" | "dns-files" | "resolver-sockets" | "handshake" | "ipv6" | "probe";

export interface CheckResult {
  name: CheckName;
  ok: boolean;
  /** The finding, in one or two sentences. */
  detail: string;
  /** The action that repairs a failure, or null when the check passed. */
  fix: string | null;
}

/** The response of the server behind `--probe`. */
export interface ProbeReport {
  url: string;
  /** The user the request ran as, as apps of `vpnns run` do. */
  user: string;
  status: number | null;
  bytes: number | null;
  /** The client address that the server reported in its body, when it reported one. */
  seenAddress: string | null;
  error: string | null;
}

export interface CheckReport {
  profile: string;
  ok: boolean;
  checks: CheckResult[];
  probe: ProbeReport | null;
}

export interface CheckOptions {
  /** The user that the inside checks and the probe run as, like the apps of `vpnns run`. */
  user: TargetUser;
  probeUrl?: string;
}

/**
 * Seconds after which WireGuard no longer uses a session's keys (RejectAfterTime in wireguard-go's
 * device/constants.go). An older handshake is normal for an idle tunnel, so the check then
 * provokes a new one.
 */
export const RECENT_HANDSHAKE_SECONDS = 180;
/** Milliseconds to wait for a provoked handshake. */
export const HANDSHAKE_WAIT_MS = 5000;
/** Keepalive interval set for a moment to make WireGuard send a packet at once. */
const PROVOKING_KEEPALIVE_SECONDS = 25;
/** Milliseconds that the probe waits for the response. */
export const PROBE_TIMEOUT_MS = 10_000;
/** JSON fields in which "what is my IP" services return the client's address. */
const ADDRESS_FIELDS = ["ip", "address", "remoteAddress", "remote_addr", "origin", "client_ip", "clientIp"];
/** Maximum length of a plain-text body shown as the address the server saw. */
const MAX_PLAIN_ADDRESS_LENGTH = 100;

const INSIDE_SCRIPT = fileURLToPath(new URL("../core/check-inside.js", import.meta.url));

/** Parse the URL of --probe: http or https only; anything else is a usage error. */
export function parseProbeUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`invalid --probe URL ${JSON.stringify(text)}: give an absolute http or https URL, such as https://example.org/`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`invalid --probe URL ${JSON.stringify(text)}: the scheme is ${url.protocol.slice(0, -1)}, only http and https are supported`);
  }
  return url.href;
}

function pass(name: CheckName, detail: string): CheckResult {
  return { name, ok: true, detail, fix: null };
}

function fail(name: CheckName, detail: string, fix: string): CheckResult {
  return { name, ok: false, detail, fix };
}

/** Return the command that rebuilds a profile from scratch, for fixes. */
function rebuildCommand(profile: string): string {
  return `run 'vpnns down ${profile}' and 'vpnns up ${profile}' to rebuild it (this ends the apps inside)`;
}

/** Run every check on a profile; the report is ok only when each check passed. */
export async function checkProfile(profile: Profile, options: CheckOptions): Promise<CheckReport> {
  const name = profile.name;
  const state = await readState(name);
  const upCheck = await checkUp(name, state);
  if (!upCheck.ok && (state?.phase !== "up" || !(await namespaceExists(namespaceName(name))))) {
    return { profile: name, ok: false, checks: [upCheck], probe: null };
  }
  const context: Context = { profile, state: state!, namespace: namespaceName(name), link: interfaceName(name), user: options.user };

  const checks = [upCheck];
  checks.push(await checkInterfaces(context));
  checks.push(await checkKillSwitch(context));
  checks.push(await checkRoutes(context));
  const inside = await runInside<ResolverReport>(context, ["resolver"]);
  checks.push(await checkDnsFiles(context, inside));
  checks.push(checkResolverSockets(context, inside));
  checks.push(await checkHandshake(context));
  checks.push(await checkIpv6(context));

  let probe: ProbeReport | null = null;
  if (options.probeUrl !== undefined) {
    probe = await probeUrl(context, options.probeUrl);
    checks.push(probeCheck(context, probe));
  }
  return { profile: name, ok: checks.every((check) => check.ok), checks, probe };
}

interface Context {
  profile: Profile;
  state: ProfileState;
  namespace: string;
  link: string;
  user: TargetUser;
}

async function checkUp(profile: string, state: ProfileState | undefined): Promise<CheckResult> {
  if (state === undefined) {
    return fail("up", `profile ${profile} is not up`, `run 'vpnns up ${profile}', or start an app with 'vpnns run --profile ${profile} -- COMMAND'`);
  }
  if (state.phase !== "up" && isProcessAlive(state.ownerPid)) {
    return fail("up", `profile ${profile} is being brought up by process ${state.ownerPid}`, `wait until that finishes, then run 'vpnns check ${profile}' again`);
  }
  const problems = await checkHealth(state);
  if (problems.length > 0) {
    return fail("up", `profile ${profile} is broken: ${problems.join("; ")}`, `run 'vpnns up ${profile}', which removes the broken parts and rebuilds the profile (this ends the apps inside)`);
  }
  return pass("up", `namespace ${state.namespace} with interface ${state.interfaceName} (${state.wireguardBackend ?? "unknown backend"}), kill-switch through ${state.firewallBackend ?? "an unknown backend"}`);
}

async function checkInterfaces(context: Context): Promise<CheckResult> {
  const links = await listLinks(context.namespace);
  const extra = links.filter((link) => link !== "lo" && link !== context.link);
  const missing = ["lo", context.link].filter((link) => !links.includes(link));
  if (extra.length === 0 && missing.length === 0) return pass("interfaces", `only lo and ${context.link} are in ${context.namespace}`);

  const found = [
    ...(extra.length > 0 ? [`${context.namespace} also has ${extra.join(", ")}: only lo and ${context.link} belong there, and any other interface is a way out that bypasses the tunnel`] : []),
    ...(missing.length > 0 ? [`${missing.join(" and ")} ${missing.length === 1 ? "is" : "are"} missing`] : []),
  ];
  const remove = extra.map((link) => `'ip -n ${context.namespace} link delete ${link}'`).join(" and ");
  const fix = extra.length > 0 ? `find out what added ${extra.length === 1 ? "it" : "them"}, remove ${extra.length === 1 ? "it" : "them"} with ${remove}, or ${rebuildCommand(context.profile.name)}` : rebuildCommand(context.profile.name);
  return fail("interfaces", found.join("; "), fix);
}

async function checkKillSwitch(context: Context): Promise<CheckResult> {
  const backend: FirewallBackend = context.state.firewallBackend ?? "nft";
  const problems = backend === "nft" ? await nftProblems(context) : await iptablesProblems(context);
  if (problems.length === 0) {
    const where = backend === "nft" ? `nftables table inet ${NFT_TABLE}` : "iptables and ip6tables filter tables";
    return pass("kill-switch", `${where} in ${context.namespace}: input, forward and output drop everything except loopback and ${context.link}`);
  }
  return fail("kill-switch", problems.join("; "), rebuildCommand(context.profile.name));
}

/** Split an nft listing into chains: each chain's name and its lines after the hook line, trimmed. */
export function parseNftChains(listing: string): Map<string, { policy: string | undefined; rules: string[] }> {
  const chains = new Map<string, { policy: string | undefined; rules: string[] }>();
  for (const match of listing.matchAll(/chain (\S+) \{([^}]*)\}/g)) {
    const lines = (match[2] ?? "")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "");
    const hook = lines.find((line) => line.startsWith("type "));
    const policy = hook === undefined ? undefined : /policy (\w+);/.exec(hook)?.[1];
    chains.set(match[1] ?? "", { policy, rules: lines.filter((line) => line !== hook) });
  }
  return chains;
}

async function nftProblems(context: Context): Promise<string[]> {
  const listing = await listTable(context.namespace, "inet", NFT_TABLE);
  if (listing === undefined) return [`nftables table inet ${NFT_TABLE} is missing in ${context.namespace}, so nothing stops traffic that finds another way out`];
  const actual = parseNftChains(listing);
  const expected = parseNftChains(renderNftRuleset({ interfaceName: context.link, ipv6: context.state.ipv6 }));
  const problems: string[] = [];
  for (const [chain, expectedChain] of expected) {
    const found = actual.get(chain);
    if (found === undefined) {
      problems.push(`chain ${chain} is missing from table inet ${NFT_TABLE}`);
      continue;
    }
    if (found.policy !== "drop") problems.push(`chain ${chain} has policy ${found.policy ?? "none"}, not drop`);
    const added = found.rules.filter((rule) => !expectedChain.rules.includes(rule));
    const removed = expectedChain.rules.filter((rule) => !found.rules.includes(rule));
    if (added.length > 0) problems.push(`chain ${chain} has rules vpnns did not write: ${added.join(", ")}`);
    if (removed.length > 0) problems.push(`chain ${chain} lacks the rules ${removed.join(", ")}`);
  }
  return problems;
}

async function iptablesProblems(context: Context): Promise<string[]> {
  const problems: string[] = [];
  for (const family of ["ipv4", "ipv6"] as const) {
    const tool = family === "ipv4" ? "iptables" : "ip6tables";
    const rules = await saveFilter(context.namespace, family);
    if (rules === undefined) {
      problems.push(`${tool} rules in ${context.namespace} cannot be read`);
      continue;
    }
    for (const chain of ["INPUT", "FORWARD", "OUTPUT"]) {
      if (!new RegExp(`^:${chain} DROP`, "m").test(rules)) problems.push(`${tool} chain ${chain} does not default to DROP`);
    }
    const tunnelAllowed = family === "ipv4" || context.state.ipv6;
    const allowedOutput = new Set(["-A OUTPUT -o lo -j ACCEPT", ...(tunnelAllowed ? [`-A OUTPUT -o ${context.link} -j ACCEPT`] : [])]);
    const unexpected = rules
      .split("\n")
      .filter((line) => line.startsWith("-A ") && !line.startsWith("-A INPUT "))
      .filter((line) => !allowedOutput.has(line));
    if (unexpected.length > 0) problems.push(`${tool} has rules vpnns did not write: ${unexpected.join(", ")}`);
  }
  return problems;
}

interface RouteEntry {
  dst: string;
  dev?: string;
  type?: string;
  table?: string;
  nexthops?: { dev?: string }[];
}

async function listRoutes(namespace: string, family: "-4" | "-6"): Promise<RouteEntry[]> {
  const { stdout } = await run(["ip", "-n", namespace, family, "-j", "route", "show", "table", "all"], { intent: `list routes in ${namespace}` });
  return stdout.trim() === "" ? [] : (JSON.parse(stdout) as RouteEntry[]);
}

async function checkRoutes(context: Context): Promise<CheckResult> {
  const routes = [...(await listRoutes(context.namespace, "-4")), ...(await listRoutes(context.namespace, "-6"))];
  const allowed = new Set(["lo", context.link]);
  const outside = routes.filter((route) => {
    const devices = route.nexthops?.map((hop) => hop.dev) ?? [route.dev];
    // Routes without a device (unreachable, blackhole, prohibit) send nothing anywhere.
    return devices.some((device) => device !== undefined && !allowed.has(device));
  });
  if (outside.length === 0) {
    const defaults = routes.filter((route) => route.dst === "default").length;
    return pass("routes", `all ${routes.length} routes go through ${context.link} or loopback${defaults > 0 ? `, including ${defaults} default route${defaults > 1 ? "s" : ""}` : ""}`);
  }
  const described = outside.map((route) => `${route.dst} dev ${route.dev ?? route.nexthops?.map((hop) => hop.dev).join(",")}${route.table ? ` table ${route.table}` : ""}`);
  const deletes = outside.map((route) => `'ip -n ${context.namespace} route delete ${route.dst}${route.table ? ` table ${route.table}` : ""}'`);
  return fail("routes", `routes that bypass ${context.link}: ${described.join(", ")}`, `remove them with ${deletes.join(" and ")}, or ${rebuildCommand(context.profile.name)}`);
}

/** Return the value of the hosts line of an nsswitch.conf, or undefined when it has none. */
export function hostsLine(nsswitch: string): string | undefined {
  const lines = nsswitch.split("\n").filter((line) => /^\s*hosts\s*:/.test(line));
  return lines.length === 1 ? lines[0]!.replace(/^\s*hosts\s*:/, "").trim().replace(/\s+/g, " ") : undefined;
}

async function checkDnsFiles(context: Context, inside: ResolverReport | string): Promise<CheckResult> {
  const folder = netnsEtcDir(context.profile.name);
  const expected = renderResolvConf(context.profile.interface, context.profile.name);
  const problems: string[] = [];
  const resolvConf = await readFile(join(folder, "resolv.conf"), "utf8").catch(() => undefined);
  const nsswitchConf = await readFile(join(folder, "nsswitch.conf"), "utf8").catch(() => undefined);
  if (resolvConf === undefined) problems.push(`${folder}/resolv.conf is missing`);
  else if (resolvConf !== expected) problems.push(`${folder}/resolv.conf differs from the profile's DNS settings (${describeDns(context.profile)})`);
  if (nsswitchConf === undefined) problems.push(`${folder}/nsswitch.conf is missing`);
  else if (hostsLine(nsswitchConf) !== "files dns") problems.push(`${folder}/nsswitch.conf has hosts line "${hostsLine(nsswitchConf) ?? "(none or several)"}", not "files dns"`);

  if (typeof inside === "string") {
    problems.push(`the files apps read could not be checked: ${inside}`);
  } else {
    if (inside.resolvConf !== expected) problems.push("apps inside read a resolv.conf that is not the profile's");
    if (inside.nsswitchConf === null || hostsLine(inside.nsswitchConf) !== "files dns") problems.push(`apps inside read an nsswitch.conf whose hosts line is not "files dns"`);
  }
  if (problems.length === 0) return pass("dns-files", `apps inside read ${folder}/resolv.conf (${describeDns(context.profile)}) and nsswitch.conf with "hosts: files dns"`);
  return fail("dns-files", problems.join("; "), rebuildCommand(context.profile.name));
}

function describeDns(profile: Profile): string {
  return profile.interface.dns.length > 0 ? `nameserver ${profile.interface.dns.join(", ")}` : "no DNS servers";
}

function checkResolverSockets(context: Context, inside: ResolverReport | string): CheckResult {
  if (typeof inside === "string") return fail("resolver-sockets", `the resolver sockets could not be checked from inside: ${inside}`, rebuildCommand(context.profile.name));
  const reachable = inside.sockets.filter((socket) => socket.reachable).map((socket) => socket.path);
  if (reachable.length === 0) {
    return pass("resolver-sockets", `no host resolver socket accepts connections from inside (${inside.sockets.map((socket) => `${socket.path}: ${socket.error ?? "?"}`).join(", ")})`);
  }
  const nscd = reachable.some((path) => path.includes("/nscd/"));
  const resolved = reachable.some((path) => path.includes("/systemd/resolve/"));
  const detail = [
    `${reachable.join(" and ")} accept${reachable.length === 1 ? "s" : ""} connections from inside`,
    ...(nscd ? ["glibc asks nscd before it reads nsswitch.conf, so the host's nscd answers lookups of apps inside through the host's network"] : []),
    ...(resolved ? ["programs that call systemd-resolved directly resolve names through the host's network"] : []),
  ];
  // `up` covers only the folders that exist then, and a profile that an older vpnns brought up has no cover at all.
  const fix = `${rebuildCommand(context.profile.name)}, because 'vpnns up' covers /run/nscd and /run/systemd/resolve for apps when those folders exist`;
  return fail("resolver-sockets", detail.join("; "), fix);
}

/** Seconds since the peer's latest handshake, or undefined when there was none. */
function handshakeAge(status: InterfaceStatus | undefined, publicKey: string, nowSeconds: number): number | undefined {
  const peer = status?.peers.find((entry) => entry.publicKey === publicKey);
  return peer === undefined || peer.latestHandshake === 0 ? undefined : Math.max(0, Math.round(nowSeconds - peer.latestHandshake));
}

async function checkHandshake(context: Context): Promise<CheckResult> {
  const peers = context.profile.peers.filter((peer) => peer.endpoint !== undefined);
  if (peers.length === 0) return pass("handshake", "no peer has an endpoint, so this side waits for the peers to start handshakes");
  let status = await showInterface(context.namespace, context.link);
  if (status === undefined) return fail("handshake", `WireGuard interface ${context.link} cannot be read`, rebuildCommand(context.profile.name));

  const ages = () => peers.map((peer) => handshakeAge(status, peer.publicKey, Date.now() / 1000));
  const isRecent = (age: number | undefined) => age !== undefined && age <= RECENT_HANDSHAKE_SECONDS;
  if (!ages().some(isRecent)) {
    status = await provokeHandshake(context, peers);
  }
  const recent = ages().filter(isRecent) as number[];
  if (recent.length > 0) return pass("handshake", `latest handshake ${Math.min(...recent)} s ago`);

  const endpoints = peers.map((peer) => peer.endpoint).join(", ");
  const last = ages().filter((age): age is number => age !== undefined);
  const when = last.length > 0 ? `the latest was ${Math.min(...last)} s ago` : "there was none since the profile came up";
  return fail(
    "handshake",
    `no WireGuard handshake with ${endpoints} within ${HANDSHAKE_WAIT_MS / 1000} s of a keepalive; ${when}`,
    `check that this machine reaches ${endpoints} over UDP and that the profile's keys are still valid at the provider, then ${rebuildCommand(context.profile.name)}`,
  );
}

/**
 * Make WireGuard send a keepalive to each peer and wait for a handshake newer than the ones before.
 * Turning a keepalive interval on sends a packet at once, and with expired keys that packet starts a
 * handshake. Each peer's own interval is restored afterwards.
 */
async function provokeHandshake(context: Context, peers: Profile["peers"]): Promise<InterfaceStatus | undefined> {
  const { namespace, link } = context;
  const before = await showInterface(namespace, link);
  const previous = new Map(before?.peers.map((peer) => [peer.publicKey, peer.latestHandshake]) ?? []);
  for (const peer of peers) {
    if (peer.persistentKeepalive !== undefined) await setPersistentKeepalive({ namespace, interfaceName: link, publicKey: peer.publicKey, seconds: 0 });
    await setPersistentKeepalive({ namespace, interfaceName: link, publicKey: peer.publicKey, seconds: peer.persistentKeepalive ?? PROVOKING_KEEPALIVE_SECONDS });
  }
  let status = before;
  try {
    const deadline = Date.now() + HANDSHAKE_WAIT_MS;
    while (Date.now() < deadline) {
      await sleep(100);
      status = await showInterface(namespace, link);
      if (status?.peers.some((peer) => peer.latestHandshake > (previous.get(peer.publicKey) ?? 0))) break;
    }
  } finally {
    for (const peer of peers) {
      if (peer.persistentKeepalive === undefined) await setPersistentKeepalive({ namespace, interfaceName: link, publicKey: peer.publicKey, seconds: 0 });
    }
  }
  return status;
}

async function checkIpv6(context: Context): Promise<CheckResult> {
  const expectedAddresses = context.profile.interface.addresses.filter((address) => address.includes(":")).map((address) => address.split("/")[0]!);
  const { stdout } = await run(["ip", "-n", context.namespace, "-6", "-j", "address", "show"], { intent: `list IPv6 addresses in ${context.namespace}` });
  const interfaces = stdout.trim() === "" ? [] : (JSON.parse(stdout) as { ifname: string; addr_info?: { local: string; scope: string }[] }[]);
  const onTunnel = interfaces.filter((entry) => entry.ifname === context.link).flatMap((entry) => entry.addr_info ?? []).map((info) => info.local);
  const elsewhere = interfaces
    .filter((entry) => entry.ifname !== context.link && entry.ifname !== "lo")
    .flatMap((entry) => (entry.addr_info ?? []).filter((info) => info.scope === "global").map((info) => `${info.local} on ${entry.ifname}`));
  if (elsewhere.length > 0) {
    return fail("ipv6", `IPv6 addresses outside the tunnel: ${elsewhere.join(", ")}`, rebuildCommand(context.profile.name));
  }

  if (expectedAddresses.length > 0) {
    const missing = expectedAddresses.filter((address) => !onTunnel.some((found) => sameIpv6(found, address)));
    if (missing.length === 0) return pass("ipv6", `IPv6 goes through the tunnel from ${expectedAddresses.join(", ")}`);
    return fail("ipv6", `the profile's IPv6 address ${missing.join(", ")} is missing from ${context.link}, so IPv6 is neither tunnelled nor blocked`, rebuildCommand(context.profile.name));
  }
  if (await killSwitchDropsIpv6(context)) return pass("ipv6", "IPv6 is blocked: the profile has no IPv6 address and the kill-switch drops IPv6 on every interface but loopback");
  return fail("ipv6", "the profile has no IPv6 address, but the kill-switch does not drop IPv6 on the tunnel", rebuildCommand(context.profile.name));
}

function sameIpv6(a: string, b: string): boolean {
  return expandIpv6(a) === expandIpv6(b);
}

/** Expand an IPv6 address to eight groups of four hex digits, to compare spellings. */
export function expandIpv6(address: string): string {
  const [head = "", tail] = address.toLowerCase().split("::");
  const headGroups = head === "" ? [] : head.split(":");
  const tailGroups = tail === undefined || tail === "" ? [] : tail.split(":");
  const zeros = tail === undefined ? [] : new Array<string>(8 - headGroups.length - tailGroups.length).fill("0");
  return [...headGroups, ...zeros, ...tailGroups].map((group) => group.padStart(4, "0")).join(":");
}

async function killSwitchDropsIpv6(context: Context): Promise<boolean> {
  if ((context.state.firewallBackend ?? "nft") === "nft") {
    const listing = await listTable(context.namespace, "inet", NFT_TABLE);
    if (listing === undefined) return false;
    const chains = parseNftChains(listing);
    return ["input", "output"].every((chain) => chains.get(chain)?.rules.includes("meta nfproto ipv6 drop") === true);
  }
  const rules = await saveFilter(context.namespace, "ipv6");
  if (rules === undefined || !/^:OUTPUT DROP/m.test(rules)) return false;
  return !rules.split("\n").some((line) => line.startsWith("-A OUTPUT ") && line !== "-A OUTPUT -o lo -j ACCEPT");
}

/**
 * Run check-inside.js in the profile as the check's user, through the launch path of apps, and
 * parse its JSON line. A failure comes back as a string that describes it.
 */
async function runInside<T>(context: Context, args: string[]): Promise<T | string> {
  const argv = planAppCommand(context.namespace, context.user, [process.execPath, INSIDE_SCRIPT, ...args], await prepareAppMounts(context.namespace));
  const result = await run(argv, { intent: `run the check script inside ${context.namespace}`, allowFailure: true, timeout: PROBE_TIMEOUT_MS + 5000 });
  const line = result.stdout.trim().split("\n").pop() ?? "";
  try {
    return JSON.parse(line) as T;
  } catch {
    return `'${argv.join(" ")}' exited with code ${result.exitCode}: ${result.stderr.trim() || "no output"}`;
  }
}

async function probeUrl(context: Context, url: string): Promise<ProbeReport> {
  const outcome = await runInside<ProbeOutcome>(context, ["probe", url, String(PROBE_TIMEOUT_MS)]);
  const user = context.user.name;
  if (typeof outcome === "string") return { url, user, status: null, bytes: null, seenAddress: null, error: outcome };
  if (!outcome.ok) return { url, user, status: null, bytes: null, seenAddress: null, error: outcome.error };
  return { url, user, status: outcome.status, bytes: outcome.bytes, seenAddress: addressInBody(outcome.body, outcome.contentType), error: null };
}

/** Find the client address in a response body: a JSON field such as "ip" or "remoteAddress", or a short plain-text body. */
export function addressInBody(body: string, contentType: string): string | null {
  const text = body.trim();
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === "object" && value !== null) {
      for (const field of ADDRESS_FIELDS) {
        const found = (value as Record<string, unknown>)[field];
        if (typeof found === "string" && found !== "") return found;
      }
      return null;
    }
  } catch {
    // Not JSON: a plain-text body may be the address itself.
  }
  const plain = contentType === "" || contentType.startsWith("text/plain");
  if (plain && text !== "" && text.length <= MAX_PLAIN_ADDRESS_LENGTH && !text.includes("\n")) return text;
  return null;
}

function probeCheck(context: Context, probe: ProbeReport): CheckResult {
  if (probe.error !== null || probe.status === null) {
    return fail(
      "probe",
      `fetching ${probe.url} from inside as user ${probe.user} failed: ${probe.error ?? "no response"}`,
      `check the handshake above and that ${probe.url} is reachable through the VPN provider; 'vpnns run --profile ${context.profile.name} -- curl -v ${probe.url}' shows more`,
    );
  }
  const seen = probe.seenAddress !== null ? `; the server saw address ${probe.seenAddress}` : `, ${probe.bytes} bytes with no address in the body`;
  return pass("probe", `HTTP ${probe.status} from ${probe.url} as user ${probe.user}${seen}`);
}
