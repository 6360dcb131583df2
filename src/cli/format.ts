/** Human-readable output of status and profiles. */
import type { ProfileReport } from "../core/status.js";
import type { Profile } from "../profile/types.js";
import { formatHostSide, formatPublishedPort } from "../publish/spec.js";

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(1)} ${units[unit]}`;
}

export function formatAge(seconds: number | null): string {
  if (seconds === null) return "never";
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

export function formatReport(report: ProfileReport): string {
  const lines = [`${report.profile}: ${report.state}`];
  const apps = [...report.apps, ...(report.isDefault ? ["(default profile)"] : [])];
  if (report.state === "down") {
    if (apps.length > 0) lines.push(`  apps:       ${apps.join(", ")}`);
    for (const port of report.publishing.ports) lines.push(`  published:  ${formatPublishedPort(port)} (opens at up)`);
    return lines.join("\n");
  }
  const backend = report.wireguardBackend ? ` (${report.wireguardBackend})` : "";
  lines.push(`  namespace:  ${report.namespace}`, `  interface:  ${report.interface}${backend}`);
  for (const peer of report.peers) {
    lines.push(
      `  endpoint:   ${peer.endpoint ?? "(none)"}`,
      `  handshake:  ${formatAge(peer.latestHandshakeAgeSeconds)}`,
      `  transfer:   ${formatBytes(peer.rxBytes)} received, ${formatBytes(peer.txBytes)} sent`,
    );
  }
  const processes = report.processes.map((entry) => `${entry.pid} ${entry.command} (uid ${entry.uid}${entry.app ? `, app ${entry.app}` : ""})`);
  if (apps.length > 0) lines.push(`  apps:       ${apps.join(", ")}`);
  lines.push(`  processes:  ${processes.length === 0 ? "none" : processes.join(", ")}`);
  for (const port of report.publishing.ports) {
    const state = port.listening ? "listening" : `not listening${port.error ? `: ${port.error}` : ""}`;
    lines.push(`  published:  ${formatHostSide(port)} to port ${port.namespacePort} inside (${state})`);
  }
  if (report.publishing.supervisorPid !== null) {
    const restarts = report.publishing.forwarderRestarts > 0 ? `, restarted ${report.publishing.forwarderRestarts} times` : "";
    lines.push(`  forwarder:  supervisor ${report.publishing.supervisorPid}, forwarder ${report.publishing.forwarderPid ?? "(starting)"}${restarts}`);
  }
  for (const problem of report.problems) lines.push(`  problem:    ${problem}`);
  return lines.join("\n");
}

export function formatProfile(profile: Profile): string {
  const lines = [
    `profile ${profile.name}`,
    `  addresses:  ${profile.interface.addresses.join(", ")}`,
    `  dns:        ${[...profile.interface.dns, ...profile.interface.dnsSearch].join(", ") || "(none)"}`,
    `  mtu:        ${profile.interface.mtu ?? "1420 (default)"}`,
    `  privatekey: ${profile.interface.privateKey}`,
  ];
  if (profile.interface.listenPort !== undefined) lines.push(`  listenport: ${profile.interface.listenPort}`);
  for (const peer of profile.peers) {
    lines.push(`  peer ${peer.publicKey}`, `    endpoint:   ${peer.endpoint ?? "(none)"}`, `    allowedips: ${peer.allowedIPs.join(", ")}`);
    if (peer.presharedKey !== undefined) lines.push(`    presharedkey: ${peer.presharedKey}`);
    if (peer.persistentKeepalive !== undefined) lines.push(`    keepalive:  ${peer.persistentKeepalive} s`);
  }
  if (profile.source) lines.push(`  imported from ${profile.source} at ${profile.importedAt ?? "an unknown time"}`);
  return lines.join("\n");
}
