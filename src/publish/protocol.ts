/**
 * The stream protocol between the publish supervisor in the host namespace and the forwarder inside
 * the profile's namespace, over one Unix socket per profile. Each connection starts with a header
 * line, "tcp PORT\n" or "udp PORT\n", that names the port inside. The forwarder replies with one
 * byte: REPLY_READY once it has connected to the service (TCP) or opened the session (UDP), or
 * REPLY_NO_SERVICE before it closes. A TCP connection then carries the bytes unchanged. A UDP session carries datagrams, each framed by its length as a 16-bit big-endian
 * number, in both directions.
 */
import type net from "node:net";
import type { PublishProtocol } from "./spec.js";

/** Reply byte: the forwarder reached the service, and the stream follows. */
export const REPLY_READY = 0x01;
/** Reply byte: no service accepts the port on any target address. */
export const REPLY_NO_SERVICE = 0x00;

/** Maximum header length, that of "tcp 65535\n". */
export const MAX_HEADER_LENGTH = 10;

/** Largest datagram a frame can carry, set by the 16-bit length field. */
export const MAX_DATAGRAM = 0xffff;

export interface Header {
  protocol: PublishProtocol;
  port: number;
}

export function encodeHeader(header: Header): Buffer {
  return Buffer.from(`${header.protocol} ${header.port}\n`, "ascii");
}

export type HeaderResult =
  | { state: "incomplete" }
  | { state: "invalid"; reason: string }
  | { state: "complete"; header: Header; rest: Buffer };

/** Parses the header at the start of `data`; "incomplete" means more bytes are needed. */
export function parseHeader(data: Buffer): HeaderResult {
  const end = data.indexOf(0x0a);
  if (end < 0) return data.length >= MAX_HEADER_LENGTH ? { state: "invalid", reason: "no header line in the first 10 bytes" } : { state: "incomplete" };
  const line = data.subarray(0, end).toString("ascii");
  const match = /^(tcp|udp) ([1-9][0-9]{0,4})$/.exec(line);
  const port = Number(match?.[2]);
  if (match === null || port > 65535) return { state: "invalid", reason: `invalid header ${JSON.stringify(line)}: expected "tcp PORT" or "udp PORT"` };
  return { state: "complete", header: { protocol: match[1] as PublishProtocol, port }, rest: data.subarray(end + 1) };
}

/** Frames a datagram for the stream: its length as 2 bytes, then the payload. */
export function encodeFrame(payload: Buffer): Buffer {
  if (payload.length > MAX_DATAGRAM) throw new RangeError(`datagram of ${payload.length} bytes is larger than ${MAX_DATAGRAM}`);
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame.writeUInt16BE(payload.length, 0);
  payload.copy(frame, 2);
  return frame;
}

/** Splits a byte stream back into the datagrams that encodeFrame framed, across any chunk boundaries. */
export class FrameDecoder {
  private pending: Buffer = Buffer.alloc(0);

  /** Adds a chunk of the stream and returns the datagrams it completes. */
  push(chunk: Buffer): Buffer[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const datagrams: Buffer[] = [];
    let offset = 0;
    while (this.pending.length - offset >= 2) {
      const length = this.pending.readUInt16BE(offset);
      if (this.pending.length - offset - 2 < length) break;
      datagrams.push(Buffer.from(this.pending.subarray(offset + 2, offset + 2 + length)));
      offset += 2 + length;
    }
    this.pending = this.pending.subarray(offset);
    return datagrams;
  }
}

/**
 * Parses the owners of a socket from `ss -H -lntp` or `ss -H -lunp` output lines, such as
 * `users:(("nginx",pid=812,fd=6),("nginx",pid=813,fd=6))`, into "nginx (pid 812), nginx (pid 813)".
 * Returns undefined when no line names a process.
 */
export function parseSocketOwners(ssOutput: string): string | undefined {
  const owners = new Set<string>();
  for (const match of ssOutput.matchAll(/\("([^"]*)",pid=(\d+),fd=\d+\)/g)) owners.add(`${match[1]} (pid ${match[2]})`);
  return owners.size > 0 ? [...owners].join(", ") : undefined;
}

/**
 * Joins two sockets in both directions with backpressure. An end in one direction is passed on as
 * an end (a half-close), and an error on either side destroys both.
 */
export function splice(left: net.Socket, right: net.Socket): void {
  left.pipe(right);
  right.pipe(left);
  left.on("error", () => right.destroy());
  right.on("error", () => left.destroy());
  // A side destroyed without an end event (a reset) must not leave the other open.
  left.on("close", () => right.end());
  right.on("close", () => left.end());
}

