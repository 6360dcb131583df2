/**
 * The lab provider's services, run by the lab inside the provider namespace as
 * `ip netns exec <provider> node servers.js --address4 ... --address6 ... --zone NAME=IPV4,IPV6 ...`.
 * It serves HTTP on port 80 and DNS on port 53 of both addresses, prints "ready" on stdout once every
 * socket is bound, and exits on SIGTERM, SIGINT or when its stdin closes, so it ends with the lab.
 */
import net from "node:net";
import { parseArgs } from "node:util";
import { warn } from "../core/log.js";
import { startDnsServer, type HostRecords } from "./dns-server.js";
import { createRequestHandler, startHttpService } from "./http-server.js";
import { PROVIDER_SERVICE, READY_LINE, SERVICE_HTTP_PORT } from "./topology.js";

function parseZoneEntry(entry: string): [string, HostRecords] {
  const match = /^([^=]+)=([^,]*),([^,]*)$/.exec(entry);
  const [, name, address4, address6] = match ?? [];
  if (name === undefined || !net.isIPv4(address4 ?? "") || !net.isIPv6(address6 ?? "")) {
    throw new Error(`invalid --zone ${JSON.stringify(entry)}: expected NAME=IPV4,IPV6`);
  }
  return [name.toLowerCase(), { a: [address4!], aaaa: [address6!] }];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      address4: { type: "string" },
      address6: { type: "string" },
      zone: { type: "string", multiple: true, default: [] },
    },
  });
  const { address4, address6 } = values;
  if (!net.isIPv4(address4 ?? "") || !net.isIPv6(address6 ?? "")) {
    throw new Error("missing or invalid --address4 or --address6: both service addresses are required");
  }
  const addresses = [address4!, address6!];
  const zone = new Map(values.zone.map(parseZoneEntry));
  const report = (message: string): void => warn(`lab servers: ${message}`);

  const http = await startHttpService(createRequestHandler(PROVIDER_SERVICE, report), addresses, SERVICE_HTTP_PORT);
  const dns = await startDnsServer({ zone, addresses, onError: report });

  let stopping = false;
  // A stop is the normal end of a lab, so it goes unlogged and the demo's summary stays its last line.
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    Promise.all([http.close(), dns.close()]).then(
      () => process.exit(0),
      (error: unknown) => {
        report(`failed to close: ${String(error)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop());
  process.on("SIGINT", () => stop());
  process.stdin.on("end", () => stop());
  process.stdin.on("error", () => stop());
  process.stdin.resume();

  process.stdout.write(`${READY_LINE}\n`);
}

main().catch((error: unknown) => {
  warn(`lab servers: failed to start: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
