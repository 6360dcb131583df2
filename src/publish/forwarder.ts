/**
 * The forwarder of published ports, which runs inside a profile's network namespace:
 *
 *   nsenter --net=/run/netns/vpnns-P -- node forwarder.js --socket PATH --user UID:GID --target ADDRESS...
 *
 * It listens on the Unix socket PATH while it is still root, so the socket can live in the root-only
 * state folder, and then drops to UID:GID. For every connection of the supervisor it reads a header
 * (see protocol.ts) and connects to that port on the first target address that accepts. It only
 * opens connections to local addresses of the namespace, so it adds no route, interface or firewall
 * rule. It prints "ready" once it listens, and exits when its stdin (a pipe from the supervisor)
 * closes, so it never outlives the supervisor.
 */
import dgram from "node:dgram";
import { chmodSync, rmSync } from "node:fs";
import net from "node:net";
import { parseArgs } from "node:util";
import { encodeFrame, FrameDecoder, parseHeader, REPLY_NO_SERVICE, REPLY_READY, splice, type Header } from "./protocol.js";

/** Milliseconds a new connection has to send its header. */
const HEADER_TIMEOUT_MS = 10_000;
/** Milliseconds to wait for a connection to one target address before trying the next. */
const CONNECT_TIMEOUT_MS = 5_000;
/** Milliseconds after which a UDP session without datagrams in either direction ends. */
const UDP_IDLE_MS = 120_000;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} forwarder ${process.pid}: ${message}\n`);
}

interface Options {
  socketPath: string;
  uid: number;
  gid: number;
  targets: string[];
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: { socket: { type: "string" }, user: { type: "string" }, target: { type: "string", multiple: true, default: [] } },
  });
  const user = /^(\d+):(\d+)$/.exec(values.user ?? "");
  if (values.socket === undefined || user === null || values.target.length === 0) {
    throw new Error("usage: forwarder.js --socket PATH --user UID:GID --target ADDRESS [--target ADDRESS...]");
  }
  const invalid = values.target.find((target) => net.isIP(target) === 0);
  if (invalid !== undefined) throw new Error(`invalid --target ${JSON.stringify(invalid)}: expected an IP address`);
  return { socketPath: values.socket, uid: Number(user[1]), gid: Number(user[2]), targets: values.target };
}

/** The index of the target that last accepted a connection to each port, tried first next time. */
const preferredTarget = new Map<string, number>();

function targetOrder(targets: string[], key: string): number[] {
  const first = preferredTarget.get(key) ?? 0;
  return [first, ...targets.keys()].filter((index, position, all) => all.indexOf(index) === position);
}

/** Connects to the port on each target in turn and resolves with the first connection that opens. */
function connectTcp(targets: string[], port: number): Promise<net.Socket> {
  const order = targetOrder(targets, `tcp ${port}`);
  const errors: string[] = [];
  return new Promise((resolve, reject) => {
    const attempt = (position: number): void => {
      if (position >= order.length) {
        reject(new Error(`no service accepts port ${port} on ${targets.join(", ")}: ${errors.join("; ")}`));
        return;
      }
      const index = order[position]!;
      const socket = net.connect({ host: targets[index], port, allowHalfOpen: true, timeout: CONNECT_TIMEOUT_MS });
      const fail = (reason: string): void => {
        socket.destroy();
        errors.push(`${targets[index]}: ${reason}`);
        attempt(position + 1);
      };
      const onTimeout = (): void => fail("timed out");
      const onError = (error: NodeJS.ErrnoException): void => fail(error.code ?? error.message);
      socket.once("timeout", onTimeout);
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("timeout", onTimeout);
        socket.off("error", onError);
        socket.setTimeout(0);
        preferredTarget.set(`tcp ${port}`, index);
        resolve(socket);
      });
    };
    attempt(0);
  });
}

function serveTcp(upstream: net.Socket, header: Header, rest: Buffer, targets: string[]): void {
  upstream.pause();
  connectTcp(targets, header.port).then(
    (service) => {
      upstream.write(Buffer.of(REPLY_READY));
      if (rest.length > 0) service.write(rest);
      splice(upstream, service);
      upstream.resume();
    },
    (error: Error) => {
      log(error.message);
      upstream.end(Buffer.of(REPLY_NO_SERVICE));
    },
  );
}

/** Maximum datagrams of a UDP session kept for a resend until its target address replies. */
const MAX_UNCONFIRMED = 64;
/** Bytes a UDP session may keep queued for sending to the service; datagrams beyond it are dropped. */
const MAX_UDP_SEND_QUEUE_BYTES = 1024 * 1024;

/**
 * Relays one UDP session: datagrams from the stream go to the port on a target address, and its
 * replies go back framed. Until the target replies, the session keeps what it sent. A target that
 * replies with ICMP port unreachable is then replaced by the next one, which gets those datagrams again.
 */
function serveUdp(upstream: net.Socket, header: Header, rest: Buffer, targets: string[]): void {
  const decoder = new FrameDecoder();
  const key = `udp ${header.port}`;
  let index = preferredTarget.get(key) ?? 0;
  let idleTimer: NodeJS.Timeout | undefined;
  let dropped = 0;
  let session: { socket: dgram.Socket; connected: boolean; confirmed: boolean; queue: Buffer[]; unconfirmed: Buffer[] };

  const touch = (): void => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => upstream.destroy(), UDP_IDLE_MS);
  };
  const deliver = (datagram: Buffer): void => {
    const { socket } = session;
    socket.send(datagram, (error) => {
      if (error) socket.emit("error", error);
    });
  };
  const open = (resend: Buffer[]): void => {
    const target = targets[index]!;
    const socket = dgram.createSocket(net.isIPv6(target) ? "udp6" : "udp4");
    const current = { socket, connected: false, confirmed: false, queue: [] as Buffer[], unconfirmed: [] as Buffer[] };
    session = current;
    socket.on("message", (message) => {
      current.confirmed = true;
      current.unconfirmed = [];
      preferredTarget.set(key, index);
      touch();
      // A stream that needs a drain has a supervisor that does not keep up. UDP may drop, so the
      // reply is dropped instead of growing the stream's buffer without bound.
      if (upstream.writableNeedDrain) dropped += 1;
      else upstream.write(encodeFrame(message));
    });
    socket.on("error", (error: NodeJS.ErrnoException) => {
      if (session !== current) return;
      if (error.code === "ECONNREFUSED" && !current.confirmed && index < targets.length - 1) {
        socket.close();
        index += 1;
        open(current.unconfirmed);
        return;
      }
      log(`UDP port ${header.port} on ${target}: ${error.code ?? error.message}`);
    });
    socket.connect(header.port, target, () => {
      current.connected = true;
      for (const datagram of current.queue.splice(0)) deliver(datagram);
    });
    for (const datagram of resend) send(datagram);
  };
  // A send before connect() completes fails with ERR_SOCKET_DGRAM_NOT_CONNECTED, so it waits in the queue.
  const send = (datagram: Buffer): void => {
    if (session.connected ? session.socket.getSendQueueSize() > MAX_UDP_SEND_QUEUE_BYTES : session.queue.length >= MAX_UNCONFIRMED) {
      dropped += 1;
      return;
    }
    if (!session.confirmed && session.unconfirmed.length < MAX_UNCONFIRMED) session.unconfirmed.push(datagram);
    if (session.connected) deliver(datagram);
    else session.queue.push(datagram);
  };

  open([]);
  upstream.write(Buffer.of(REPLY_READY));
  const receive = (chunk: Buffer): void => {
    touch();
    for (const datagram of decoder.push(chunk)) send(datagram);
  };
  touch();
  if (rest.length > 0) receive(rest);
  upstream.on("data", receive);
  upstream.on("error", () => upstream.destroy());
  upstream.on("end", () => upstream.end());
  upstream.on("close", () => {
    clearTimeout(idleTimer);
    session.socket.close();
    if (dropped > 0) log(`UDP port ${header.port}: dropped ${dropped} datagrams of the session because the other side did not keep up`);
  });
}

function handleConnection(upstream: net.Socket, targets: string[]): void {
  let received = Buffer.alloc(0);
  const timer = setTimeout(() => upstream.destroy(), HEADER_TIMEOUT_MS);
  const onData = (chunk: Buffer): void => {
    received = Buffer.concat([received, chunk]);
    const result = parseHeader(received);
    if (result.state === "incomplete") return;
    clearTimeout(timer);
    upstream.off("data", onData);
    if (result.state === "invalid") {
      log(result.reason);
      upstream.destroy();
      return;
    }
    if (result.header.protocol === "tcp") serveTcp(upstream, result.header, result.rest, targets);
    else serveUdp(upstream, result.header, result.rest, targets);
  };
  upstream.on("data", onData);
  upstream.on("error", () => clearTimeout(timer));
}

async function main(): Promise<void> {
  const options = parseOptions();
  rmSync(options.socketPath, { force: true });
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, (upstream) => handleConnection(upstream, options.targets));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.socketPath, () => resolve());
  });
  chmodSync(options.socketPath, 0o600);
  // The socket is bound, so root is no longer needed: connecting to local ports needs no privilege.
  if (!process.setgroups || !process.setgid || !process.setuid) throw new Error("cannot change user: this platform has no setuid");
  process.setgroups([]);
  process.setgid(options.gid);
  process.setuid(options.uid);
  server.on("error", (error) => log(`socket ${options.socketPath}: ${error.message}`));

  process.stdin.on("end", () => process.exit(0));
  process.stdin.on("error", () => process.exit(0));
  process.stdin.resume();
  process.on("SIGTERM", () => process.exit(0));
  process.stdout.write("ready\n");
}

main().catch((error: unknown) => {
  log(`failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
