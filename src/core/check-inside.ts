/**
 * The part of `vpnns check` that runs inside a profile, started through the same launch path as
 * apps, so it sees the files and sockets an app sees. It prints one JSON line and exits. Other
 * modules import only its types.
 *
 *   node check-inside.js resolver               the resolver sockets and the DNS files
 *   node check-inside.js probe URL TIMEOUT_MS   an HTTP request to URL
 */
import { connect } from "node:net";
import { readFile } from "node:fs/promises";

/** Sockets through which glibc or other programs would ask a resolver of the host. */
const RESOLVER_SOCKETS = [
  // glibc asks nscd before it reads nsswitch.conf, whenever this socket accepts connections.
  "/run/nscd/socket",
  "/var/run/nscd/socket",
  // systemd-resolved's Varlink API, used by nss-resolve and resolvectl.
  "/run/systemd/resolve/io.systemd.Resolve",
];

/** Milliseconds to wait for a Unix socket to accept a connection. */
const CONNECT_TIMEOUT_MS = 2000;
/** Maximum number of body characters sent back from a probe. */
const MAX_BODY_CHARACTERS = 4096;

export interface SocketReport {
  path: string;
  /** Whether a connection to the socket succeeded. */
  reachable: boolean;
  /** The error code of a failed connection, such as "ENOENT" or "ECONNREFUSED". */
  error?: string;
}

export interface ResolverReport {
  sockets: SocketReport[];
  /** /etc/resolv.conf and /etc/nsswitch.conf as the process reads them, or null when unreadable. */
  resolvConf: string | null;
  nsswitchConf: string | null;
}

export type ProbeOutcome =
  | { ok: true; status: number; bytes: number; contentType: string; body: string }
  | { ok: false; error: string };

function trySocket(path: string): Promise<SocketReport> {
  return new Promise((resolve) => {
    const socket = connect({ path });
    const finish = (report: SocketReport) => {
      socket.destroy();
      resolve(report);
    };
    socket.setTimeout(CONNECT_TIMEOUT_MS, () => finish({ path, reachable: false, error: "ETIMEDOUT" }));
    socket.once("connect", () => finish({ path, reachable: true }));
    socket.once("error", (error: NodeJS.ErrnoException) => finish({ path, reachable: false, error: error.code ?? error.message }));
  });
}

async function readOrNull(path: string): Promise<string | null> {
  return readFile(path, "utf8").catch(() => null);
}

async function reportResolver(): Promise<ResolverReport> {
  const sockets = await Promise.all(RESOLVER_SOCKETS.map(trySocket));
  return { sockets, resolvConf: await readOrNull("/etc/resolv.conf"), nsswitchConf: await readOrNull("/etc/nsswitch.conf") };
}

async function probe(url: string, timeoutMs: number): Promise<ProbeOutcome> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = Buffer.from(await response.arrayBuffer());
    return {
      ok: true,
      status: response.status,
      bytes: body.length,
      contentType: response.headers.get("content-type") ?? "",
      body: body.toString("utf8").slice(0, MAX_BODY_CHARACTERS),
    };
  } catch (error) {
    const cause = (error as Error & { cause?: Error & { code?: string } }).cause;
    return { ok: false, error: cause?.code ?? cause?.message ?? (error as Error).message };
  }
}

async function main(argv: string[]): Promise<number> {
  const [mode, url, timeoutText = "10000"] = argv;
  if (mode === "resolver") {
    process.stdout.write(JSON.stringify(await reportResolver()) + "\n");
    return 0;
  }
  if (mode === "probe" && url !== undefined) {
    process.stdout.write(JSON.stringify(await probe(url, Number(timeoutText))) + "\n");
    return 0;
  }
  process.stderr.write("usage: check-inside.js resolver | probe URL TIMEOUT_MS\n");
  return 2;
}

// Exit at once: an aborted fetch leaves a connection attempt that would keep Node alive for seconds.
process.exit(await main(process.argv.slice(2)));
