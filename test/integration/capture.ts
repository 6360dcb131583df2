/**
 * A packet capture on the lab's uplink for the leak tests: tcpdump writes every frame to a pcap
 * file, and this module decodes the file and sorts each packet into an allowed kind or a leak.
 */
import { execa, type ResultPromise } from "execa";
import { createSocket } from "node:dgram";
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIPv6 } from "node:net";

/** UDP port of the discard service: the provider has nothing listening there, so a marker ends on the uplink. */
export const MARKER_PORT = 9;
const MARKER_PREFIX = "vpnns-capture-end ";

// ---------------------------------------------------------------------------------------------
// Decoding

/** One decoded frame. Fields that the frame does not have are undefined. */
export interface Packet {
  /** Index of the frame in the capture, from 0. */
  index: number;
  sourceMac: string;
  etherType: number;
  /** "ipv4", "ipv6", "arp" or the EtherType in hex. */
  family: string;
  source?: string;
  destination?: string;
  /** "tcp", "udp", "icmp", "icmpv6" or the IP protocol number. */
  protocol?: string;
  sourcePort?: number;
  destinationPort?: number;
  icmpType?: number;
  /** Bytes after the UDP or ICMP header, as far as the capture contains them. */
  payload?: Buffer;
}

/** Formats a packet as one line for failure messages. */
export function describePacket(packet: Packet): string {
  const ports = packet.sourcePort !== undefined ? ` ${packet.sourcePort} > ${packet.destinationPort}` : "";
  const icmp = packet.icmpType !== undefined ? ` type ${packet.icmpType}` : "";
  const addresses = packet.source !== undefined ? ` ${packet.source} > ${packet.destination}` : "";
  return `#${packet.index} from ${packet.sourceMac}: ${packet.family}${addresses} ${packet.protocol ?? ""}${ports}${icmp}`.trimEnd();
}

/**
 * Decodes a pcap file of Ethernet frames, as `tcpdump -w` writes it. A record cut short at the end
 * (tcpdump still writing) is left out.
 */
export function decodePcap(file: Buffer): Packet[] {
  if (file.length < 24) return [];
  const magicLittle = file.readUInt32LE(0);
  const magicBig = file.readUInt32BE(0);
  const magics = [0xa1b2c3d4, 0xa1b23c4d];
  let littleEndian: boolean;
  if (magics.includes(magicLittle)) littleEndian = true;
  else if (magics.includes(magicBig)) littleEndian = false;
  else throw new Error(`not a pcap file: magic number ${magicBig.toString(16)}`);
  const read32 = (offset: number) => (littleEndian ? file.readUInt32LE(offset) : file.readUInt32BE(offset));
  const linkType = read32(20);
  if (linkType !== 1) throw new Error(`pcap link type ${linkType} is not Ethernet (1)`);

  const packets: Packet[] = [];
  let offset = 24;
  while (offset + 16 <= file.length) {
    const capturedLength = read32(offset + 8);
    const start = offset + 16;
    if (start + capturedLength > file.length) break;
    packets.push(decodeEthernet(file.subarray(start, start + capturedLength), packets.length));
    offset = start + capturedLength;
  }
  return packets;
}

function formatMac(bytes: Buffer): string {
  return [...bytes].map((byte) => byte.toString(16).padStart(2, "0")).join(":");
}

function decodeEthernet(frame: Buffer, index: number): Packet {
  const sourceMac = formatMac(frame.subarray(6, 12));
  const etherType = frame.readUInt16BE(12);
  const packet: Packet = { index, sourceMac, etherType, family: `0x${etherType.toString(16).padStart(4, "0")}` };
  const body = frame.subarray(14);
  if (etherType === 0x0806) packet.family = "arp";
  else if (etherType === 0x0800) decodeIpv4(body, packet);
  else if (etherType === 0x86dd) decodeIpv6(body, packet);
  return packet;
}

function formatIpv4(bytes: Buffer): string {
  return [...bytes].join(".");
}

function formatIpv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // Let the URL parser compress the longest run of zero groups, as RFC 5952 recommends.
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}

function decodeIpv4(body: Buffer, packet: Packet): void {
  packet.family = "ipv4";
  const headerLength = (body[0]! & 0x0f) * 4;
  packet.source = formatIpv4(body.subarray(12, 16));
  packet.destination = formatIpv4(body.subarray(16, 20));
  decodeTransport(body[9]!, body.subarray(headerLength), packet, "icmp");
}

/** IPv6 extension headers that decodeIpv6 skips: hop-by-hop options (MLD uses one), routing, destination options. */
const IPV6_EXTENSION_HEADERS = new Set([0, 43, 60]);

function decodeIpv6(body: Buffer, packet: Packet): void {
  packet.family = "ipv6";
  packet.source = formatIpv6(body.subarray(8, 24));
  packet.destination = formatIpv6(body.subarray(24, 40));
  let nextHeader = body[6]!;
  let rest = body.subarray(40);
  while (IPV6_EXTENSION_HEADERS.has(nextHeader) && rest.length >= 8) {
    const length = (rest[1]! + 1) * 8;
    nextHeader = rest[0]!;
    rest = rest.subarray(length);
  }
  decodeTransport(nextHeader, rest, packet, "icmpv6");
}

function decodeTransport(protocol: number, segment: Buffer, packet: Packet, icmpName: "icmp" | "icmpv6"): void {
  const names: Record<number, string> = { 1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6" };
  packet.protocol = names[protocol] ?? String(protocol);
  if ((protocol === 6 || protocol === 17) && segment.length >= 4) {
    packet.sourcePort = segment.readUInt16BE(0);
    packet.destinationPort = segment.readUInt16BE(2);
    if (protocol === 17) packet.payload = segment.subarray(8);
  }
  if (packet.protocol === icmpName && segment.length >= 1) {
    packet.icmpType = segment[0];
    packet.payload = segment.subarray(8);
  }
}

// ---------------------------------------------------------------------------------------------
// Sorting

/** What the host side may put on the uplink, and what marks a packet as coming from inside a profile. */
export interface UplinkRules {
  /** MAC address of the host-side end of the uplink: frames from it leave the host side. */
  hostMac: string;
  /** Host-side uplink addresses, the source of WireGuard's encrypted UDP. */
  hostAddresses: string[];
  /** Endpoints of the profiles as "address port": the only destinations of encrypted UDP. */
  endpoints: { address: string; port: number }[];
  /** Address of the provider's end of the uplink, where the capture's end marker goes. */
  markerAddress: string;
  /** Tunnel addresses of the profiles: any packet on the uplink that shows one leaked. */
  insideAddresses: string[];
}

export type PacketKind =
  | "wireguard-out"
  | "wireguard-in"
  | "wireguard-error"
  | "marker"
  | "marker-reply"
  | "arp"
  | "neighbour-discovery"
  | "leak"
  | "unexpected-in";

/** Checks that a UDP payload starts like a WireGuard message: a type from 1 to 4, then three reserved zero bytes. */
function looksLikeWireGuard(payload: Buffer | undefined): boolean {
  return payload !== undefined && payload.length >= 32 && payload[0]! >= 1 && payload[0]! <= 4 && payload.readUIntBE(1, 3) === 0;
}

function isEndpoint(rules: UplinkRules, address: string | undefined, port: number | undefined): boolean {
  return rules.endpoints.some((endpoint) => endpoint.address === address && endpoint.port === port);
}

/**
 * Checks an ICMP or ICMPv6 destination-unreachable message for a quoted UDP packet from an
 * endpoint. The host side sends one when the provider's WireGuard packet reaches a client port
 * that is closed, because the profile's daemon is gone.
 */
function quotesWireGuardFromEndpoint(packet: Packet, rules: UplinkRules): boolean {
  const quoted = packet.payload;
  if (quoted === undefined) return false;
  if (packet.protocol === "icmp" && packet.icmpType === 3 && quoted.length >= 28) {
    const headerLength = (quoted[0]! & 0x0f) * 4;
    if (quoted[9] !== 17 || quoted.length < headerLength + 4) return false;
    return isEndpoint(rules, formatIpv4(quoted.subarray(12, 16)), quoted.readUInt16BE(headerLength));
  }
  if (packet.protocol === "icmpv6" && packet.icmpType === 1 && quoted.length >= 44) {
    if (quoted[6] !== 17) return false;
    return isEndpoint(rules, formatIpv6(quoted.subarray(8, 24)), quoted.readUInt16BE(40));
  }
  return false;
}

function isMarker(packet: Packet, rules: UplinkRules): boolean {
  return (
    packet.protocol === "udp" &&
    packet.destination === rules.markerAddress &&
    packet.destinationPort === MARKER_PORT &&
    (packet.payload?.toString("latin1").startsWith(MARKER_PREFIX) ?? false)
  );
}

/** Checks an ICMP(v6) error from the provider that quotes a marker: the provider's reply to it. */
function quotesMarker(packet: Packet): boolean {
  const quoted = packet.payload?.toString("latin1") ?? "";
  return (packet.protocol === "icmp" || packet.protocol === "icmpv6") && quoted.includes(MARKER_PREFIX);
}

/** ICMPv6 types of neighbour discovery (133 to 137) and multicast listener discovery (130 to 132, 143). */
const NEIGHBOUR_TYPES = new Set([130, 131, 132, 133, 134, 135, 136, 137, 143]);

/**
 * Sorts a packet. Leaving the host side, only these are allowed: WireGuard messages from a host
 * address to an endpoint, ICMP errors about the provider's WireGuard packets, the capture's own
 * markers, ARP, and neighbour and multicast listener discovery. Everything else that leaves is a
 * leak, and so is any packet that shows an address from inside a profile.
 */
export function classifyPacket(packet: Packet, rules: UplinkRules): PacketKind {
  const showsInside = [packet.source, packet.destination].some((address) => address !== undefined && rules.insideAddresses.includes(address));
  if (showsInside) return "leak";
  if (packet.family === "arp") return "arp";
  if (packet.protocol === "icmpv6" && packet.icmpType !== undefined && NEIGHBOUR_TYPES.has(packet.icmpType)) return "neighbour-discovery";

  if (packet.sourceMac === rules.hostMac) {
    const fromHost = packet.source !== undefined && rules.hostAddresses.includes(packet.source);
    if (fromHost && packet.protocol === "udp" && isEndpoint(rules, packet.destination, packet.destinationPort) && looksLikeWireGuard(packet.payload)) {
      return "wireguard-out";
    }
    if (fromHost && rules.endpoints.some((endpoint) => endpoint.address === packet.destination) && quotesWireGuardFromEndpoint(packet, rules)) {
      return "wireguard-error";
    }
    if (fromHost && isMarker(packet, rules)) return "marker";
    return "leak";
  }

  if (packet.protocol === "udp" && isEndpoint(rules, packet.source, packet.sourcePort) && looksLikeWireGuard(packet.payload)) return "wireguard-in";
  if (packet.source === rules.markerAddress && quotesMarker(packet)) return "marker-reply";
  return "unexpected-in";
}

// ---------------------------------------------------------------------------------------------
// Capturing

export interface CaptureResult {
  packets: Packet[];
  /** The "packets dropped by kernel" count that tcpdump printed when it stopped. */
  droppedByKernel: number;
}

/**
 * A running `tcpdump -w` on one interface. stop() sends a marker datagram across the interface
 * and stops tcpdump once the marker is in the file, so every packet sent before stop() is in it.
 */
const TCPDUMP_OPTIONS = { reject: false, buffer: false, stdin: "ignore", stdout: "ignore", stderr: "pipe" } as const;

export class UplinkCapture {
  private stderr = "";

  private constructor(
    private readonly tcpdump: ResultPromise<typeof TCPDUMP_OPTIONS>,
    private readonly file: string,
    private readonly markerAddress: string,
  ) {}

  /** Starts tcpdump and resolves once it prints that it is listening. */
  static async start(options: { interfaceName: string; file: string; markerAddress: string }): Promise<UplinkCapture> {
    // -U writes each packet at once, so the file can be read while tcpdump runs. -Z root keeps
    // tcpdump from switching to an unprivileged user that could not write into the test's folder.
    const tcpdump = execa("tcpdump", ["-i", options.interfaceName, "-n", "-U", "-Z", "root", "-w", options.file], TCPDUMP_OPTIONS);
    const capture = new UplinkCapture(tcpdump, options.file, options.markerAddress);
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        capture.stderr += chunk.toString("utf8");
        if (capture.stderr.includes("listening on")) {
          tcpdump.stderr.off("data", onData);
          tcpdump.stderr.on("data", (more: Buffer) => {
            capture.stderr += more.toString("utf8");
          });
          resolve();
        }
      };
      tcpdump.stderr.on("data", onData);
      void tcpdump.then((result) => reject(new Error(`tcpdump exited before it listened (${result.exitCode ?? result.signal}): ${capture.stderr}`)));
    });
    return capture;
  }

  /** Sends the end marker, waits until tcpdump has written it, stops tcpdump and decodes the file. */
  async stop(timeoutMs = 30_000): Promise<CaptureResult> {
    const marker = `${MARKER_PREFIX}${randomUUID()}`;
    await sendDatagram(this.markerAddress, MARKER_PORT, marker);
    const deadline = Date.now() + timeoutMs;
    while (!(await this.fileContains(marker))) {
      if (Date.now() > deadline) {
        this.tcpdump.kill("SIGKILL");
        throw new Error(`the capture did not record its end marker within ${timeoutMs} ms; tcpdump: ${this.stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.tcpdump.kill("SIGINT");
    const result = await this.tcpdump;
    if (result.exitCode !== 0) throw new Error(`tcpdump exited with ${result.exitCode ?? result.signal}: ${this.stderr}`);
    const dropped = /(\d+) packets? dropped by kernel/.exec(this.stderr);
    if (!dropped) throw new Error(`tcpdump printed no drop count: ${this.stderr}`);
    return { packets: decodePcap(await readFile(this.file)), droppedByKernel: Number(dropped[1]) };
  }

  /** Stops tcpdump without reading the file, for cleanup after a failure. */
  async abort(): Promise<void> {
    this.tcpdump.kill("SIGKILL");
    await this.tcpdump;
  }

  private async fileContains(text: string): Promise<boolean> {
    const content = await readFile(this.file).catch(() => Buffer.alloc(0));
    return content.includes(text, 0, "latin1");
  }
}

function sendDatagram(address: string, port: number, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(address) ? "udp6" : "udp4");
    socket.send(text, port, address, (error) => {
      socket.close();
      if (error) reject(error);
      else resolve();
    });
  });
}
