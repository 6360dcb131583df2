/**
 * The publish supervisor of one profile, a detached process in the host namespace:
 *
 *   node supervisor.js --profile P --state-dir DIR
 *
 * It opens the host listeners that <DIR>/P/publish/ports.json requests and writes the outcome to
 * status.json. It starts the forwarder inside the namespace with nsenter and starts it again when
 * it ends, waiting 0.2 s, doubling up to 5 s. Every accepted TCP connection and every UDP client
 * becomes one connection to the forwarder's Unix socket. SIGHUP rereads ports.json, and SIGTERM
 * stops everything. The supervisor also stops once the namespace or its folder is gone, so it never
 * outlives the profile. Starts, stops, restarts and errors go to stderr, which vpnns points at
 * supervisor.log.
 */
import { spawn, type ChildProcess } from "node:child_process";
import dgram from "node:dgram";
import { closeSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { run } from "../tools/exec.js";
import { FORWARDER_GID, FORWARDER_UID, forwarderSocket, publishDir, requestFile, statusFile, type PortStatus, type PublishRequest, type PublishStatus } from "./files.js";
import { encodeFrame, encodeHeader, FrameDecoder, parseSocketOwners, REPLY_READY, splice } from "./protocol.js";
import { formatHostSide, type PublishedPort } from "./spec.js";

const FORWARDER_SCRIPT = fileURLToPath(new URL("../publish/forwarder.js", import.meta.url));
/** The forwarder runs as the overflow user "nobody", which owns no files and needs none. */
const FORWARDER_USER = `${FORWARDER_UID}:${FORWARDER_GID}`;
const RESTART_MIN_MS = 200;
const RESTART_MAX_MS = 5000;
/** A forwarder that ran this long resets the restart delay to RESTART_MIN_MS. */
const STABLE_RUN_MS = 10_000;
/** Milliseconds a connection waits for the forwarder's socket, for example while it restarts. */
const FORWARDER_WAIT_MS = 10_000;
const WATCHDOG_INTERVAL_MS = 1000;
const UDP_IDLE_MS = 120_000;
/** Maximum UDP clients per published port; the least recently active session ends first. */
const MAX_UDP_SESSIONS = 256;
/** Maximum datagrams a new UDP session queues while its forwarder connection opens. */
const MAX_QUEUED_DATAGRAMS = 64;
/**
 * Bytes of replies a UDP listener may keep queued for sending to clients. Datagrams beyond it are
 * dropped, as a full socket buffer drops them, so a flood cannot grow the supervisor's memory.
 */
const MAX_UDP_SEND_QUEUE_BYTES = 1024 * 1024;

function log(message: string): void {
  process.stderr.write(`${new Date().toISOString()} supervisor ${process.pid}: ${message}\n`);
}

/** O_CLOEXEC in the octal "flags" field of /proc/self/fdinfo/N on Linux. */
const O_CLOEXEC = 0o2000000;

/**
 * Close the descriptors above 2 that this process inherited without close-on-exec, such as a
 * shell's `300>file` or a job server's pipe in the caller of vpnns. The supervisor outlives its
 * caller, so it would keep them open, and would pass them on to the forwarder, which runs as
 * 65534 inside the namespace. Node.js opens its own descriptors with close-on-exec.
 */
function closeInheritedDescriptors(): void {
  for (const entry of readdirSync("/proc/self/fd")) {
    const descriptor = Number(entry);
    if (descriptor <= 2) continue;
    let flags: number;
    try {
      const match = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${descriptor}`, "utf8"));
      if (match === null) continue;
      flags = parseInt(match[1]!, 8);
    } catch {
      // A descriptor that is closed by now, such as the one readdirSync used, has no fdinfo.
      continue;
    }
    if ((flags & O_CLOEXEC) === 0) closeSync(descriptor);
  }
}

closeInheritedDescriptors();

const { values } = parseArgs({ options: { profile: { type: "string" }, "state-dir": { type: "string" } } });
if (values.profile === undefined || values["state-dir"] === undefined) {
  log("usage: supervisor.js --profile P --state-dir DIR");
  process.exit(2);
}
const profile = values.profile;
const folder = publishDir(values["state-dir"], profile);
const socketPath = forwarderSocket(folder);
const namespaceFile = join("/run/netns", `vpnns-${profile}`);

let request: PublishRequest = { generation: "", entries: [], targets: [] };
let stopping = false;

// ---------------------------------------------------------------------------------------------
// The forwarder

let forwarder: ChildProcess | undefined;
let forwarderRestarts = 0;
let restartDelay = RESTART_MIN_MS;
let restartTimer: NodeJS.Timeout | undefined;

function startForwarder(): void {
  const targets = request.targets.flatMap((target) => ["--target", target]);
  const argv = [`--net=${namespaceFile}`, "--", process.execPath, FORWARDER_SCRIPT, "--socket", socketPath, "--user", FORWARDER_USER, ...targets];
  const started = Date.now();
  const child = spawn("nsenter", argv, { stdio: ["pipe", "pipe", "inherit"] });
  forwarder = child;
  child.on("error", (error) => log(`failed to start the forwarder: ${error.message}`));
  createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line === "ready") log(`forwarder ${child.pid} is ready in ${namespaceFile}`);
  });
  child.on("exit", (code, signal) => {
    if (forwarder === child) forwarder = undefined;
    if (stopping) return;
    if (Date.now() - started >= STABLE_RUN_MS) restartDelay = RESTART_MIN_MS;
    log(`forwarder ${child.pid} ended (${signal ?? `exit code ${code}`}); starting it again in ${restartDelay} ms`);
    restartTimer = setTimeout(() => {
      forwarderRestarts += 1;
      startForwarder();
      writeStatus();
    }, restartDelay);
    restartDelay = Math.min(restartDelay * 2, RESTART_MAX_MS);
  });
  writeStatus();
}

/**
 * Opens a connection to the forwarder, sends the header and waits for the reply byte. A missing or
 * refusing socket, or a connection that closes before the reply (a forwarder that died), is retried
 * until FORWARDER_WAIT_MS have passed, so a forwarder restart costs a client time, not its connection.
 * Returns a function that cancels the attempts.
 */
function connectForwarder(entry: PublishedPort, onConnect: (socket: net.Socket) => void, onFail: (reason: string) => void): () => void {
  const deadline = Date.now() + FORWARDER_WAIT_MS;
  let cancelled = false;
  let timer: NodeJS.Timeout | undefined;
  const retry = (socket: net.Socket, reason: string): void => {
    socket.destroy();
    if (cancelled) return;
    if (Date.now() < deadline) timer = setTimeout(attempt, 100);
    else onFail(`forwarder socket ${socketPath}: ${reason}`);
  };
  const attempt = (): void => {
    const socket = net.createConnection({ path: socketPath, allowHalfOpen: true });
    const onError = (error: NodeJS.ErrnoException): void => retry(socket, error.code ?? error.message);
    const onEnd = (): void => retry(socket, "closed before it replied");
    socket.once("error", onError);
    socket.once("end", onEnd);
    socket.once("connect", () => {
      if (cancelled) {
        socket.destroy();
        return;
      }
      socket.write(encodeHeader({ protocol: entry.protocol, port: entry.namespacePort }));
    });
    socket.once("data", (chunk: Buffer) => {
      socket.pause();
      socket.off("error", onError);
      socket.off("end", onEnd);
      if (cancelled) {
        socket.destroy();
        return;
      }
      if (chunk[0] !== REPLY_READY) {
        socket.destroy();
        onFail(`no service inside accepts ${entry.protocol} port ${entry.namespacePort}`);
        return;
      }
      if (chunk.length > 1) socket.unshift(chunk.subarray(1));
      onConnect(socket);
    });
  };
  attempt();
  return () => {
    cancelled = true;
    clearTimeout(timer);
  };
}

// ---------------------------------------------------------------------------------------------
// Host listeners

interface Listener {
  entry: PublishedPort;
  listening: boolean;
  error?: string;
  close(): void;
}

const listeners = new Map<string, Listener>();

function listenerKey(entry: PublishedPort): string {
  return `${entry.protocol} ${entry.hostAddress} ${entry.hostPort}`;
}

async function describeBindError(entry: PublishedPort, error: NodeJS.ErrnoException): Promise<string> {
  const where = formatHostSide(entry);
  if (error.code === "EADDRINUSE") {
    const flags = entry.protocol === "tcp" ? "-H -ltnp" : "-H -lunp";
    const listed = await run(["ss", ...flags.split(" "), "sport", "=", `:${entry.hostPort}`], { intent: `find the owner of port ${entry.hostPort}`, allowFailure: true }).catch(
      () => undefined,
    );
    const owner = listed === undefined ? undefined : parseSocketOwners(listed.stdout);
    return `host port ${where} is already in use by ${owner ?? "another socket (ss shows no process)"}; choose another host port or stop that program`;
  }
  if (error.code === "EADDRNOTAVAIL") return `host address ${entry.hostAddress} of ${where} is not assigned to any interface of this host; use 127.0.0.1 or one of its addresses`;
  return `failed to listen on ${where}: ${error.code ?? error.message}`;
}

function listenTcp(entry: PublishedPort): Promise<Listener> {
  const connections = new Set<net.Socket>();
  const listener: Listener = { entry, listening: false, close: () => {} };
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    connections.add(client);
    client.on("close", () => connections.delete(client));
    client.on("error", () => client.destroy());
    const cancel = connectForwarder(
      listener.entry,
      (upstream) => {
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        splice(client, upstream);
        client.resume();
      },
      (reason) => {
        log(`dropped a connection from ${client.remoteAddress} to ${formatHostSide(listener.entry)}: ${reason}`);
        client.resetAndDestroy();
      },
    );
    client.on("close", cancel);
  });
  listener.close = () => {
    server.close();
    for (const connection of connections) connection.destroy();
  };
  return new Promise((resolve) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      void describeBindError(entry, error).then((reason) => resolve({ ...listener, error: reason }));
    });
    server.listen({ host: entry.hostAddress, port: entry.hostPort, ipv6Only: net.isIPv6(entry.hostAddress) }, () => {
      server.removeAllListeners("error");
      server.on("error", (error) => log(`listener ${formatHostSide(listener.entry)}: ${error.message}`));
      listener.listening = true;
      resolve(listener);
    });
  });
}

/** Milliseconds between two log lines about dropped datagrams of one listener. */
const DROP_LOG_INTERVAL_MS = 10_000;

/** Counts dropped datagrams and logs the count at most once per DROP_LOG_INTERVAL_MS. */
class DropCounter {
  private count = 0;
  private lastLog = 0;

  constructor(private readonly where: string) {}

  add(reason: string): void {
    this.count += 1;
    const now = Date.now();
    if (now - this.lastLog < DROP_LOG_INTERVAL_MS) return;
    log(`${this.where}: dropped ${this.count} datagrams since the last report, because ${reason}`);
    this.count = 0;
    this.lastLog = now;
  }
}

interface UdpSession {
  upstream?: net.Socket;
  queue: Buffer[];
  cancel: () => void;
  idleTimer?: NodeJS.Timeout;
}

function listenUdp(entry: PublishedPort): Promise<Listener> {
  const socket = dgram.createSocket({ type: net.isIPv6(entry.hostAddress) ? "udp6" : "udp4", ipv6Only: net.isIPv6(entry.hostAddress) });
  const sessions = new Map<string, UdpSession>();
  const listener: Listener = { entry, listening: false, close: () => {} };
  const drops = new DropCounter(`UDP ${formatHostSide(entry)}`);

  const endSession = (key: string): void => {
    const session = sessions.get(key);
    if (session === undefined) return;
    sessions.delete(key);
    clearTimeout(session.idleTimer);
    session.cancel();
    session.upstream?.destroy();
  };
  const touch = (key: string, session: UdpSession): void => {
    clearTimeout(session.idleTimer);
    session.idleTimer = setTimeout(() => endSession(key), UDP_IDLE_MS);
    // Map order is insertion order, so moving the session to the end keeps the oldest first.
    sessions.delete(key);
    sessions.set(key, session);
  };
  const openSession = (key: string, client: dgram.RemoteInfo): UdpSession => {
    if (sessions.size >= MAX_UDP_SESSIONS) endSession(sessions.keys().next().value!);
    const session: UdpSession = { queue: [], cancel: () => {} };
    sessions.set(key, session);
    session.cancel = connectForwarder(
      listener.entry,
      (upstream) => {
        session.upstream = upstream;
        const decoder = new FrameDecoder();
        upstream.on("data", (chunk: Buffer) => {
          touch(key, session);
          for (const datagram of decoder.push(chunk)) {
            if (socket.getSendQueueSize() > MAX_UDP_SEND_QUEUE_BYTES) drops.add("the send queue to clients is full");
            else socket.send(datagram, client.port, client.address);
          }
        });
        upstream.on("error", () => endSession(key));
        upstream.on("close", () => endSession(key));
        upstream.resume();
        for (const datagram of session.queue.splice(0)) upstream.write(encodeFrame(datagram));
      },
      (reason) => {
        log(`dropped UDP client ${client.address}:${client.port} of ${formatHostSide(listener.entry)}: ${reason}`);
        endSession(key);
      },
    );
    return session;
  };

  socket.on("message", (message, client) => {
    const key = `${client.address} ${client.port}`;
    const session = sessions.get(key) ?? openSession(key, client);
    touch(key, session);
    // A stream that needs a drain has a forwarder that does not keep up: UDP may drop, so the
    // datagram is dropped instead of growing the stream's buffer without bound.
    if (session.upstream?.writableNeedDrain === true) drops.add(`the forwarder does not read the stream of ${client.address}:${client.port} fast enough`);
    else if (session.upstream) session.upstream.write(encodeFrame(message));
    else if (session.queue.length < MAX_QUEUED_DATAGRAMS) session.queue.push(message);
    else drops.add(`the forwarder connection of ${client.address}:${client.port} is not open yet`);
  });
  listener.close = () => {
    for (const key of [...sessions.keys()]) endSession(key);
    socket.close();
  };
  return new Promise((resolve) => {
    socket.once("error", (error: NodeJS.ErrnoException) => {
      void describeBindError(entry, error).then((reason) => resolve({ ...listener, error: reason }));
    });
    socket.bind({ address: entry.hostAddress, port: entry.hostPort, exclusive: true }, () => {
      socket.removeAllListeners("error");
      socket.on("error", (error) => log(`listener ${formatHostSide(listener.entry)}: ${error.message}`));
      listener.listening = true;
      resolve(listener);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Requests and status

/** Opens, keeps or closes listeners until they match the request; a changed namespace port applies to new connections. */
async function applyRequest(): Promise<void> {
  let next: PublishRequest;
  try {
    next = JSON.parse(readFileSync(requestFile(folder), "utf8")) as PublishRequest;
  } catch (error) {
    log(`failed to read ${requestFile(folder)}: ${(error as Error).message}; keeping the current ports`);
    return;
  }
  const targetsChanged = JSON.stringify(next.targets) !== JSON.stringify(request.targets);
  request = next;
  const requested = new Map(next.entries.map((entry) => [listenerKey(entry), entry]));
  for (const [key, listener] of listeners) {
    if (requested.has(key) && listener.listening) continue;
    listener.close();
    listeners.delete(key);
    if (!requested.has(key)) log(`closed ${formatHostSide(listener.entry)}`);
  }
  for (const [key, entry] of requested) {
    const existing = listeners.get(key);
    if (existing) {
      existing.entry = entry;
      continue;
    }
    const listener = entry.protocol === "tcp" ? await listenTcp(entry) : await listenUdp(entry);
    listeners.set(key, listener);
    if (listener.listening) log(`listening on ${formatHostSide(entry)} for port ${entry.namespacePort} inside`);
    else log(listener.error ?? `failed to listen on ${formatHostSide(entry)}`);
  }
  if (forwarder === undefined && restartTimer === undefined) startForwarder();
  else if (targetsChanged) forwarder?.kill("SIGTERM");
  writeStatus();
}

function writeStatus(): void {
  if (stopping) return;
  const ports: PortStatus[] = request.entries.map((entry) => {
    const listener = listeners.get(listenerKey(entry));
    const status: PortStatus = { ...entry, listening: listener?.listening ?? false };
    if (listener?.error !== undefined) status.error = listener.error;
    return status;
  });
  const status: PublishStatus = {
    generation: request.generation,
    supervisorPid: process.pid,
    forwarderPid: forwarder?.pid ?? null,
    forwarderRestarts,
    targets: request.targets,
    ports,
  };
  const temporary = `${statusFile(folder)}.${process.pid}`;
  try {
    writeFileSync(temporary, JSON.stringify(status, null, 2) + "\n", { mode: 0o600 });
    renameSync(temporary, statusFile(folder));
  } catch (error) {
    log(`failed to write ${statusFile(folder)}: ${(error as Error).message}`);
  }
}

function stop(reason: string): void {
  if (stopping) return;
  stopping = true;
  log(`stopping: ${reason}`);
  clearTimeout(restartTimer);
  for (const listener of listeners.values()) listener.close();
  const child = forwarder;
  const finish = (): void => {
    rmSync(socketPath, { force: true });
    process.exit(0);
  };
  if (child === undefined || child.exitCode !== null) finish();
  else {
    child.once("exit", finish);
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 2000).unref();
  }
}

// Requests are applied one at a time, so a SIGHUP during a request waits for it.
let applying: Promise<void> = Promise.resolve();
function scheduleApply(): void {
  applying = applying.then(applyRequest).catch((error: unknown) => log(`failed to apply ${requestFile(folder)}: ${String(error)}`));
}

process.on("SIGHUP", scheduleApply);
process.on("SIGTERM", () => stop("received SIGTERM"));
process.on("SIGINT", () => stop("received SIGINT"));
setInterval(() => {
  if (!existsSync(namespaceFile)) stop(`namespace ${namespaceFile} is gone`);
  else if (!existsSync(folder)) stop(`folder ${folder} is gone`);
}, WATCHDOG_INTERVAL_MS);
log(`started for profile ${profile}`);
scheduleApply();
