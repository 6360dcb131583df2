/** `vpnns settings`: show and change machine-wide settings. */
import type { Command } from "commander";
import type { Settings } from "../core/settings.js";
import { UsageError } from "../core/errors.js";
import { info } from "../core/log.js";
import { addVerboseOption } from "./options.js";

/** Settings as named on the command line, with the values each accepts. */
const SETTING_NAMES: Record<string, { key: keyof Settings; values: readonly string[] }> = {
  "wireguard-backend": { key: "wireguardBackend", values: ["auto", "kernel", "wireguard-go"] },
  "firewall-backend": { key: "firewallBackend", values: ["auto", "nft", "iptables"] },
};

export function registerSettingsCommands(program: Command): void {
  const settings = addVerboseOption(program.command("settings"))
    .description("show the settings; change one with 'vpnns settings set NAME VALUE'")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const { readSettings } = await import("../core/settings.js");
      const current = readSettings();
      if (options.json) {
        console.log(JSON.stringify(current, null, 2));
        return;
      }
      for (const [name, { key, values }] of Object.entries(SETTING_NAMES)) console.log(`${name} = ${current[key]}\t(${values.join(", ")})`);
    });

  addVerboseOption(settings.command("set"))
    .description("change a setting: wireguard-backend (auto, kernel, wireguard-go) or firewall-backend (auto, nft, iptables)")
    .argument("<name>", "setting name")
    .argument("<value>", "new value")
    .action(async (name: string, value: string) => {
      const setting = SETTING_NAMES[name];
      if (!setting) throw new UsageError(`unknown setting ${JSON.stringify(name)}; expected one of: ${Object.keys(SETTING_NAMES).join(", ")}`);
      if (!setting.values.includes(value)) {
        throw new UsageError(`invalid value ${JSON.stringify(value)} for ${name}; expected one of: ${setting.values.join(", ")}`);
      }
      const { settingsFile, writeSetting } = await import("../core/settings.js");
      await writeSetting(setting.key, value as never);
      info(`${name} = ${value} (${settingsFile()}); it applies to profiles brought up from now on`);
    });
}
