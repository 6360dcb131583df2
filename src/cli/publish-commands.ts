/** `vpnns publish` and `vpnns unpublish`: ports of services inside a profile, opened on the host. */
import type { Command } from "commander";
import { UsageError } from "../core/errors.js";
import { addVerboseOption } from "./options.js";
import type { PublishedPort } from "../publish/spec.js";

export function registerPublishCommands(program: Command): void {
  addVerboseOption(program.command("publish"))
    .description("publish a port of a service inside the profile on the host, now when the profile is up and at every up")
    .argument("<profile>", "profile name")
    .argument("<spec>", "[host-address:]host-port:namespace-port; the host address defaults to 127.0.0.1, so the LAN needs an explicit one such as 0.0.0.0")
    .option("--udp", "publish a UDP port instead of a TCP port")
    .action(async (name: string, specText: string, options: { udp?: boolean }) => {
      const { validateProfileName } = await import("../core/names.js");
      const { parsePublishSpec } = await import("../publish/spec.js");
      validateProfileName(name);
      const parsed = parsePublishSpec(specText, options.udp ? "udp" : "tcp");
      if (!parsed.ok) throw new UsageError(`invalid publish spec ${JSON.stringify(specText)}: ${parsed.reason}`);
      await updatePublishList(name, (entries, profileName) => addEntry(entries, parsed.value, profileName));
    });

  addVerboseOption(program.command("unpublish"))
    .description("stop publishing a host port of the profile and remove it from the profile")
    .argument("<profile>", "profile name")
    .argument("<host-port>", "the host port given to vpnns publish")
    .option("--udp", "remove a published UDP port instead of a TCP port")
    .action(async (name: string, portText: string, options: { udp?: boolean }) => {
      const { validateProfileName } = await import("../core/names.js");
      const { parsePort } = await import("../publish/spec.js");
      validateProfileName(name);
      const port = parsePort(portText);
      if (!port.ok) throw new UsageError(`invalid host port ${JSON.stringify(portText)}: ${port.reason}`);
      const protocol = options.udp ? "udp" : "tcp";
      await updatePublishList(name, (entries, profileName) => removeEntry(entries, port.value, protocol, profileName));
    });
}

type Change = { entries: PublishedPort[]; message: string } | { entries: undefined; message: string };

/**
 * Change the profile's publish list under its lock. When the profile is up, the supervisor applies
 * the new list first, and the profile file changes only once every host port is open.
 */
async function updatePublishList(name: string, change: (entries: PublishedPort[], profile: string) => Promise<Change>): Promise<void> {
  const { loadProfile, savePublishList } = await import("../profile/store.js");
  const { lockProfile } = await import("../core/lock.js");
  const { readState } = await import("../core/state.js");
  const { applyPublishing } = await import("../publish/control.js");
  const { info, warn } = await import("../core/log.js");

  // Loading before the lock reports a missing profile without creating a lock file for it.
  await loadProfile(name);
  const lock = await lockProfile(name);
  try {
    const profile = await loadProfile(name);
    const current = profile.publish ?? [];
    const { entries, message } = await change(current, name);
    if (entries === undefined) {
      info(message);
      return;
    }
    const state = await readState(name);
    if (state?.phase === "up") {
      try {
        await applyPublishing({ ...profile, publish: entries });
      } catch (error) {
        await applyPublishing(profile).catch((restoreError: Error) => warn(`failed to restore the published ports of profile ${name}: ${restoreError.message}`));
        throw error;
      }
    }
    await savePublishList(name, entries);
    info(state?.phase === "up" ? message : `${message}; it takes effect at the next 'vpnns up ${name}'`);
  } finally {
    await lock.release();
  }
}

async function addEntry(entries: PublishedPort[], entry: PublishedPort, profile: string): Promise<Change> {
  const { MAX_PUBLISHED_PORTS, findDuplicate, formatHostSide, formatPublishedPort } = await import("../publish/spec.js");
  const duplicate = findDuplicate(entries, entry);
  if (duplicate >= 0) {
    const existing = entries[duplicate]!;
    if (formatPublishedPort(existing) === formatPublishedPort(entry)) {
      return { entries: undefined, message: `${formatPublishedPort(entry)} is already published in profile ${profile}; nothing changed` };
    }
    const unpublish = `vpnns unpublish ${profile} ${entry.hostPort}${entry.protocol === "udp" ? " --udp" : ""}`;
    throw new UsageError(
      `host port ${formatHostSide(entry)} is already published in profile ${profile} as ${formatPublishedPort(existing)}; remove it first with: ${unpublish}`,
    );
  }
  if (entries.length >= MAX_PUBLISHED_PORTS) throw new UsageError(`profile ${profile} already publishes ${MAX_PUBLISHED_PORTS} ports, the maximum; unpublish one first`);
  return { entries: [...entries, entry], message: `published ${formatPublishedPort(entry)} in profile ${profile}` };
}

async function removeEntry(entries: PublishedPort[], hostPort: number, protocol: "tcp" | "udp", profile: string): Promise<Change> {
  const { formatPublishedPort } = await import("../publish/spec.js");
  const index = entries.findIndex((entry) => entry.hostPort === hostPort && entry.protocol === protocol);
  if (index < 0) {
    const published = entries.length > 0 ? `it publishes ${entries.map(formatPublishedPort).join(", ")}` : "it publishes no ports";
    throw new UsageError(`host port ${hostPort}/${protocol} is not published in profile ${profile}; ${published}`);
  }
  return { entries: entries.filter((_, position) => position !== index), message: `unpublished ${formatPublishedPort(entries[index]!)} in profile ${profile}` };
}
