/** Machine-wide settings in <config>/settings.json, stored with conf and validated by its schema. */
import type Conf from "conf";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { configDir } from "./paths.js";
import { UsageError } from "./errors.js";
import { checkConfigJsonFile } from "./config-file.js";
import type { WireGuardBackendSetting } from "../resources/wireguard-link.js";
import type { FirewallBackend } from "../resources/firewall.js";

export interface Settings {
  /** Backend that creates WireGuard links: "auto" tries the kernel module, then wireguard-go. */
  wireguardBackend: WireGuardBackendSetting;
  /** Tool that applies the kill-switch: "auto" takes nft where installed, else iptables-restore. */
  firewallBackend: "auto" | FirewallBackend;
}

export const DEFAULT_SETTINGS: Settings = { wireguardBackend: "auto", firewallBackend: "auto" };

const settingsSchema = {
  wireguardBackend: { enum: ["auto", "kernel", "wireguard-go"] },
  firewallBackend: { enum: ["auto", "nft", "iptables"] },
} as const;

export function settingsFile(): string {
  return join(configDir(), "settings.json");
}

async function openSettings(): Promise<Conf<Settings>> {
  const { default: Conf } = await import("conf");
  try {
    return new Conf<Settings>({
      cwd: configDir(),
      configName: "settings",
      projectSuffix: "",
      schema: settingsSchema,
      defaults: DEFAULT_SETTINGS,
      clearInvalidConfig: false,
      configFileMode: 0o600,
      accessPropertiesByDotNotation: false,
    });
  } catch (error) {
    throw new UsageError(`invalid settings file ${settingsFile()}: ${(error as Error).message}; fix or delete the file`, { cause: error });
  }
}

/**
 * Read the settings; a missing file means the defaults, and reading never creates it. Reading
 * checks the values by hand against the same lists as the schema, so commands that only read do
 * not load conf and compile its schema.
 */
export function readSettings(): Settings {
  const file = settingsFile();
  if (!checkConfigJsonFile(file, "settings file")) return { ...DEFAULT_SETTINGS };
  let stored: unknown;
  try {
    stored = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new UsageError(`invalid settings file ${file}: ${(error as Error).message}; fix or delete the file`, { cause: error });
  }
  if (typeof stored !== "object" || stored === null || Array.isArray(stored)) {
    throw new UsageError(`invalid settings file ${file}: expected a JSON object; fix or delete the file`);
  }
  const settings = { ...DEFAULT_SETTINGS };
  for (const [key, value] of Object.entries(stored)) {
    const allowed = (settingsSchema as Record<string, { enum: readonly string[] }>)[key]?.enum;
    if (allowed === undefined) continue;
    if (!allowed.includes(value as string)) {
      throw new UsageError(`invalid settings file ${file}: ${key} is ${JSON.stringify(value)}, expected one of ${allowed.join(", ")}; fix or delete the file`);
    }
    (settings as Record<string, unknown>)[key] = value;
  }
  return settings;
}

export async function writeSetting<K extends keyof Settings>(key: K, value: Settings[K]): Promise<void> {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  checkConfigJsonFile(settingsFile(), "settings file");
  const store = await openSettings();
  try {
    store.set(key, value);
  } catch (error) {
    throw new UsageError(`invalid value ${JSON.stringify(value)} for setting ${key}: ${(error as Error).message}`, { cause: error });
  }
}
