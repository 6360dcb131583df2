/** Machine-wide settings in <config>/settings.json, stored with conf and validated by its schema. */
import Conf from "conf";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { configDir } from "./paths.js";
import { UsageError } from "./errors.js";
import type { WireGuardBackendSetting } from "../resources/wireguard-link.js";
import type { FirewallBackend } from "../resources/firewall.js";

export interface Settings {
  /** How WireGuard links are made: "auto" tries the kernel module, then wireguard-go. */
  wireguardBackend: WireGuardBackendSetting;
  /** Which tool applies the kill-switch: "auto" takes nft where installed, else iptables-restore. */
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

function openSettings(): Conf<Settings> {
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

/** Read the settings; a missing file means the defaults, and reading never creates it. */
export function readSettings(): Settings {
  if (!existsSync(settingsFile())) return { ...DEFAULT_SETTINGS };
  return { ...DEFAULT_SETTINGS, ...openSettings().store };
}

export function writeSetting<K extends keyof Settings>(key: K, value: Settings[K]): void {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  const store = openSettings();
  try {
    store.set(key, value);
  } catch (error) {
    throw new UsageError(`invalid value ${JSON.stringify(value)} for setting ${key}: ${(error as Error).message}`, { cause: error });
  }
}
