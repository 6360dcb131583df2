/**
 * The files of a profile's published ports, in <state>/<profile>/publish (mode 0700, root only):
 * the request that vpnns writes, the status that the supervisor writes back, the supervisor's
 * log and the forwarder's Unix socket.
 */
import { join } from "node:path";
import type { PublishedPort } from "./spec.js";

/** User and group ID of the forwarder once it has bound its socket: the overflow user "nobody". */
export const FORWARDER_UID = 65534;
export const FORWARDER_GID = 65534;

export function publishDir(stateDir: string, profile: string): string {
  return join(stateDir, profile, "publish");
}

export function requestFile(folder: string): string {
  return join(folder, "ports.json");
}

export function statusFile(folder: string): string {
  return join(folder, "status.json");
}

export function logFile(folder: string): string {
  return join(folder, "supervisor.log");
}

export function forwarderSocket(folder: string): string {
  return join(folder, "forwarder.sock");
}

/** The ports a supervisor must publish, written by vpnns before it starts or signals the supervisor. */
export interface PublishRequest {
  /** Changes with every request, so vpnns can tell when the supervisor has applied this one. */
  generation: string;
  entries: PublishedPort[];
  /**
   * Addresses inside the namespace that the forwarder tries in this order: 127.0.0.1, ::1, then
   * the profile's tunnel addresses.
   */
  targets: string[];
}

export interface PortStatus extends PublishedPort {
  listening: boolean;
  /** Reason the host listener is not open, such as a port in use and its owner. */
  error?: string;
}

/** The state the supervisor last applied, rewritten after every request and forwarder restart. */
export interface PublishStatus {
  generation: string;
  supervisorPid: number;
  /** PID of the running forwarder process inside the namespace, if any. */
  forwarderPid: number | null;
  /** How often the forwarder was started again after it ended. */
  forwarderRestarts: number;
  /** The targets of the applied request. */
  targets: string[];
  ports: PortStatus[];
}
