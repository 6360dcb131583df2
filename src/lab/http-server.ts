/**
 * The lab's HTTP service. `GET /` returns JSON with the client address the server saw, and
 * `GET /bytes?n=N` streams N bytes of a known pattern for transfer tests.
 */
import http from "node:http";
import net from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** Largest body that /bytes sends: 1 GiB. */
export const MAX_BYTES = 2 ** 30;
/** Byte i of a /bytes body is i % PATTERN_PERIOD. */
export const PATTERN_PERIOD = 256;

/** A multiple of PATTERN_PERIOD, so every chunk starts at pattern offset 0. */
const CHUNK_LENGTH = 64 * 1024;

/** Response body of `GET /`. */
export interface ServiceInfo {
  service: string;
  /** The client's address as the server saw it, with the "::ffff:" prefix of IPv4-mapped addresses removed. */
  remoteAddress: string;
}

/** Returns the expected /bytes body of length n, for checking a transfer. */
export function patternBytes(n: number): Buffer {
  const bytes = Buffer.alloc(n);
  for (let index = 0; index < n; index++) bytes[index] = index % PATTERN_PERIOD;
  return bytes;
}

function* patternChunks(total: number): Generator<Buffer> {
  const chunk = patternBytes(Math.min(CHUNK_LENGTH, total));
  for (let sent = 0; sent < total; sent += CHUNK_LENGTH) {
    yield chunk.subarray(0, Math.min(CHUNK_LENGTH, total - sent));
  }
}

function sendText(response: http.ServerResponse, status: number, text: string, headers: http.OutgoingHttpHeaders = {}): void {
  response.writeHead(status, { "content-type": "text/plain; charset=utf-8", ...headers });
  response.end(`${text}\n`);
}

/** Creates the request handler. `service` is the name in the JSON of `GET /`, and onError receives failed transfers. */
export function createRequestHandler(service: string, onError: (message: string) => void = () => {}): http.RequestListener {
  return (request, response) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      sendText(response, 405, `method ${request.method} is not allowed: use GET`, { allow: "GET, HEAD" });
      return;
    }
    const url = new URL(request.url ?? "/", "http://lab.invalid");

    if (url.pathname === "/") {
      const remoteAddress = (request.socket.remoteAddress ?? "").replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/, "");
      const info: ServiceInfo = { service, remoteAddress };
      response.writeHead(200, { "content-type": "application/json" });
      response.end(JSON.stringify(info));
      return;
    }

    if (url.pathname === "/bytes") {
      const text = url.searchParams.get("n") ?? "";
      const n = /^\d{1,10}$/.test(text) ? Number(text) : Number.NaN;
      if (!(n <= MAX_BYTES)) {
        sendText(response, 400, `invalid n ${JSON.stringify(text)}: expected a whole number of bytes from 0 to ${MAX_BYTES}`);
        return;
      }
      response.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(n) });
      if (request.method === "HEAD") {
        response.end();
        return;
      }
      // pipeline() waits for the client to read each chunk, so a 1 GiB body never sits in memory.
      pipeline(Readable.from(patternChunks(n)), response).catch((error: Error) => {
        onError(`failed to send ${n} bytes to ${request.socket.remoteAddress}: ${error.message}`);
      });
      return;
    }

    sendText(response, 404, `not found: ${url.pathname}; the lab serves / and /bytes?n=N`);
  };
}

/** An HTTP server listening on one or more addresses. */
export interface HttpService {
  close(): Promise<void>;
}

async function listenOne(handler: http.RequestListener, address: string, port: number): Promise<http.Server> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: address, port, ipv6Only: net.isIPv6(address) }, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return server;
}

/** Starts one server per address, all with the same handler, and resolves once all are listening. */
export async function startHttpService(handler: http.RequestListener, addresses: readonly string[], port: number): Promise<HttpService> {
  const servers: http.Server[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(
      servers.splice(0).map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  };
  try {
    for (const address of addresses) servers.push(await listenOne(handler, address, port));
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
}
