/** The machine and tool versions that the report records next to the figures. */
import { readFile } from "node:fs/promises";
import { cpus, release, totalmem } from "node:os";
import { readOutput } from "./commands.js";

export interface MachineInfo {
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
}

export function describeMachine(): MachineInfo {
  const processors = cpus();
  return {
    cpuModel: processors[0]?.model.trim() ?? "unknown",
    cores: processors.length,
    memoryGiB: totalmem() / 2 ** 30,
    kernel: release(),
  };
}

/** Reads the 1-minute load average from /proc/loadavg, which counts the work of other sandboxes too. */
export async function loadAverage(): Promise<number> {
  const text = await readFile("/proc/loadavg", "utf8");
  return Number(text.split(" ")[0]);
}

/** Returns the first line of a command's output that matches the pattern, or "not found". */
async function versionLine(argv: string[], pattern: RegExp): Promise<string> {
  const output = await readOutput(argv);
  return output?.split("\n").find((line) => pattern.test(line))?.trim() ?? "not found";
}

/** Versions of Node.js, vpnns and the tools that vpnns and the benchmark run. */
export async function toolVersions(cli: string): Promise<[string, string][]> {
  return [
    ["node", process.version],
    ["vpnns", await versionLine([process.execPath, cli, "--version"], /\d/)],
    ["wg (wireguard-tools)", await versionLine(["wg", "--version"], /wireguard-tools/)],
    ["wireguard-go", await versionLine(["wireguard-go", "--version"], /wireguard-go/)],
    ["nft (nftables)", await versionLine(["nft", "--version"], /nftables/)],
    ["ip (iproute2)", await versionLine(["ip", "-V"], /iproute2/)],
    ["iperf3", await versionLine(["iperf3", "--version"], /iperf/)],
    ["ping (iputils)", await versionLine(["ping", "-V"], /iputils/)],
  ];
}

/** Describes the measured sources: the commit, and whether src/ has uncommitted changes. */
export async function sourceRevision(repository: string): Promise<string> {
  const commit = (await readOutput(["git", "-C", repository, "rev-parse", "--short", "HEAD"]))?.trim();
  if (commit === undefined) return "unknown (git failed)";
  const changes = await readOutput(["git", "-C", repository, "status", "--porcelain", "--", "src"]);
  if (changes === undefined) return `${commit}, status unknown`;
  return changes.trim() === "" ? commit : `${commit} with uncommitted changes in src/`;
}
