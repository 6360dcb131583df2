/**
 * The desktop session seen from inside a profile. Path-based Unix sockets (Wayland, PulseAudio,
 * PipeWire, a D-Bus bus at $XDG_RUNTIME_DIR/bus, X11 under /tmp/.X11-unix) work from any network
 * namespace, because the file system is shared. Abstract Unix sockets belong to the network
 * namespace that bound them, and TCP meets the kill-switch, so sessions that use those need a fix.
 */
import { statSync } from "node:fs";
import { join } from "node:path";

export interface SessionCheck {
  /** The environment for the app, with a reachable D-Bus address where one was substituted. */
  env: NodeJS.ProcessEnv;
  /** Warnings for the user: what will not work inside the profile and how to fix it. */
  warnings: string[];
  /** Changes made to the environment, for verbose output. */
  changes: string[];
}

interface BusAddress {
  transport: string;
  keys: Map<string, string>;
}

/** Parse a D-Bus address list ("unix:path=/run/user/1000/bus;tcp:host=..."), unescaping %XX in values. */
export function parseBusAddresses(value: string): BusAddress[] {
  return value
    .split(";")
    .filter((entry) => entry !== "")
    .map((entry) => {
      const colon = entry.indexOf(":");
      const transport = colon < 0 ? entry : entry.slice(0, colon);
      const keys = new Map<string, string>();
      for (const pair of colon < 0 ? [] : entry.slice(colon + 1).split(",")) {
        const equals = pair.indexOf("=");
        if (equals > 0) keys.set(pair.slice(0, equals), decodeBusValue(pair.slice(equals + 1)));
      }
      return { transport, keys };
    });
}

function decodeBusValue(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/** Escape a D-Bus address value: each byte outside - 0-9 A-Z a-z _ / . * becomes %XX, which the address format accepts for any byte. */
export function escapeBusValue(value: string): string {
  let escaped = "";
  for (const byte of Buffer.from(value)) {
    const character = String.fromCharCode(byte);
    escaped += /^[-0-9A-Za-z_/.*]$/.test(character) ? character : `%${byte.toString(16).padStart(2, "0")}`;
  }
  return escaped;
}

/** Return whether a client in another network namespace can connect to the address. */
function isReachableFromNamespace(address: BusAddress): boolean {
  if (address.transport === "unix") return !address.keys.has("abstract");
  // TCP goes through the namespace's own network, where the kill-switch allows only the tunnel.
  return address.transport !== "tcp" && address.transport !== "nonce-tcp";
}

function isSocket(path: string): boolean {
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}

/**
 * Check DBUS_SESSION_BUS_ADDRESS. When no address in the list is reachable from the namespace, use
 * the path socket $XDG_RUNTIME_DIR/bus if it exists, else warn.
 */
function checkSessionBus(env: NodeJS.ProcessEnv, profile: string, result: SessionCheck): void {
  const value = env.DBUS_SESSION_BUS_ADDRESS;
  if (value === undefined || value === "") return;
  const addresses = parseBusAddresses(value);
  if (addresses.length === 0 || addresses.some(isReachableFromNamespace)) return;

  const abstract = addresses.some((address) => address.keys.has("abstract"));
  const kind = abstract ? "an abstract Unix socket, which belongs to the host's network namespace" : "TCP, which the kill-switch blocks inside the namespace";
  const runtimeDir = env.XDG_RUNTIME_DIR;
  const busPath = runtimeDir !== undefined && runtimeDir !== "" ? join(runtimeDir, "bus") : undefined;
  if (busPath !== undefined && isSocket(busPath)) {
    // NOTE: where a login has both a systemd user bus at this path and a separate session bus on an
    // abstract socket (started by dbus-launch), apps in the profile use the user bus, not the session's.
    const replacement = `unix:path=${escapeBusValue(busPath)}`;
    result.env.DBUS_SESSION_BUS_ADDRESS = replacement;
    result.changes.push(`DBUS_SESSION_BUS_ADDRESS=${replacement} instead of ${value}, which uses ${kind}`);
    return;
  }
  result.warnings.push(
    `the D-Bus session bus address ${value} uses ${kind}, so apps in profile ${profile} cannot reach the session bus ` +
      `(notifications, portals and single-instance checks fail); use a session bus on a path socket, for example by ` +
      `installing dbus-user-session, which puts it at $XDG_RUNTIME_DIR/bus, and logging in again`,
  );
}

/** Warn when X11 clients in the namespace cannot reach the display that DISPLAY names. */
function checkDisplay(env: NodeJS.ProcessEnv, profile: string, result: SessionCheck, x11SocketDir: string): void {
  const display = env.DISPLAY;
  if (display === undefined || display === "") return;
  const match = /^([^:/]*):(\d+)(?:\.\d+)?$/.exec(display);
  if (match === null) return;
  const [, host = "", number = ""] = match;
  if (host !== "" && host !== "unix") {
    result.warnings.push(
      `DISPLAY ${display} connects to the X server over TCP (as SSH X11 forwarding does), which the kill-switch blocks ` +
        `inside the namespace, so X11 apps in profile ${profile} cannot open windows; run them from a local session`,
    );
    return;
  }
  // Clients of a local display try the abstract socket @/tmp/.X11-unix/XN first, which is not
  // reachable from another network namespace, and then the path /tmp/.X11-unix/XN.
  const socket = join(x11SocketDir, `X${number}`);
  if (isSocket(socket)) return;
  result.warnings.push(
    `DISPLAY ${display} has no socket ${socket}, so X11 apps in profile ${profile} cannot reach the X server: ` +
      `its abstract socket belongs to the host's network namespace; start the X server so that it also listens on ${socket} ` +
      `(without "-nolisten unix")`,
  );
}

/** Warn when every PulseAudio server named by PULSE_SERVER is reached over TCP. */
function checkPulseServer(env: NodeJS.ProcessEnv, profile: string, result: SessionCheck): void {
  const value = env.PULSE_SERVER;
  if (value === undefined || value.trim() === "") return;
  const servers = value.trim().split(/\s+/);
  const local = servers.some((server) => server.startsWith("unix:") || server.startsWith("/"));
  if (local) return;
  result.warnings.push(
    `PULSE_SERVER ${value} is reached over the network, which the kill-switch blocks inside the namespace, so apps in ` +
      `profile ${profile} have no sound; unset PULSE_SERVER to use the local socket in $XDG_RUNTIME_DIR/pulse`,
  );
}

/**
 * Check that the desktop session's sockets are reachable from inside a profile. Returns the app's
 * environment, with a D-Bus address on an abstract socket replaced by $XDG_RUNTIME_DIR/bus when
 * that exists, and warnings for what stays unreachable.
 */
export function checkDesktopSession(env: NodeJS.ProcessEnv, profile: string, x11SocketDir = "/tmp/.X11-unix"): SessionCheck {
  const result: SessionCheck = { env: { ...env }, warnings: [], changes: [] };
  checkSessionBus(env, profile, result);
  checkDisplay(env, profile, result, x11SocketDir);
  checkPulseServer(env, profile, result);
  return result;
}
