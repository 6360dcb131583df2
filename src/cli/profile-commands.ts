/** `vpnns profile ...`: import, list, show and remove stored profiles. */
import type { Command } from "commander";
import { UsageError } from "../core/errors.js";
import { info, warn } from "../core/log.js";
import { addVerboseOption } from "./options.js";

export function registerProfileCommands(program: Command): void {
  const profile = program.command("profile").description("import, list, show and remove profiles");

  addVerboseOption(profile.command("import"))
    .description("parse a wg-quick .conf file and store it as a profile")
    .argument("<file>", "the wg-quick file from the VPN provider")
    .option("--name <name>", "profile name (default: the file's base name without .conf)")
    .option("--force", "replace a profile of the same name")
    .action(async (file: string, options: { name?: string; force?: boolean }) => {
      const [{ importProfile }, { profileFile }] = await Promise.all([import("../profile/store.js"), import("../core/paths.js")]);
      const result = await importProfile(file, options);
      for (const warning of result.warnings) warn(warning);
      const verb = result.replaced ? "replaced" : "imported";
      info(`${verb} profile ${result.profile.name} (${profileFile(result.profile.name)}); start an app in it with: vpnns run --profile ${result.profile.name} -- COMMAND`);
    });

  addVerboseOption(profile.command("list"))
    .description("list stored profiles and whether each is up")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const [{ listProfileNames }, { reportProfiles }] = await Promise.all([import("../profile/store.js"), import("../core/status.js")]);
      const rows = (await reportProfiles(await listProfileNames())).map((report) => ({ name: report.profile, state: report.state }));
      if (options.json) console.log(JSON.stringify(rows, null, 2));
      else if (rows.length === 0) info("no profiles yet; import one with: vpnns profile import FILE");
      else for (const row of rows) console.log(`${row.name}\t${row.state}`);
    });

  addVerboseOption(profile.command("show"))
    .description("show a profile, with private and preshared keys hidden")
    .argument("<name>", "profile name")
    .option("--json", "print JSON")
    .action(async (name: string, options: { json?: boolean }) => {
      const [{ loadProfile, redactProfile }, { formatProfile }] = await Promise.all([import("../profile/store.js"), import("./format.js")]);
      const redacted = redactProfile(await loadProfile(name));
      console.log(options.json ? JSON.stringify(redacted, null, 2) : formatProfile(redacted));
    });

  addVerboseOption(profile.command("remove"))
    .description("remove a stored profile (refused while it is up, unless --force)")
    .argument("<name>", "profile name")
    .option("--force", "take the profile down first if it is up")
    .action(async (name: string, options: { force?: boolean }) => {
      const [{ validateProfileName }, { profileFile }, { profileExists, removeProfileFile }, { reportProfile }, { down }, { appsOfProfile, readAssignments }] =
        await Promise.all([
          import("../core/names.js"),
          import("../core/paths.js"),
          import("../profile/store.js"),
          import("../core/status.js"),
          import("../core/launcher.js"),
          import("../apps/assignments.js"),
        ]);
      validateProfileName(name);
      if (!(await profileExists(name))) throw new UsageError(`profile ${name} not found (${profileFile(name)}); list profiles with: vpnns profile list`);
      const report = await reportProfile(name);
      if (report.state !== "down") {
        if (!options.force) throw new UsageError(`profile ${name} is ${report.state}; take it down first with 'vpnns down ${name}', or add --force`);
        await down(name);
      }
      await removeProfileFile(name);
      info(`removed profile ${name}`);
      const assignments = await readAssignments();
      const apps = appsOfProfile(assignments, name);
      if (apps.length > 0) warn(`apps still assigned to ${name}: ${apps.join(", ")}; change them with 'vpnns app set APP PROFILE' or 'vpnns app unset APP'`);
      if (assignments.defaultProfile === name) warn(`${name} is still the default profile; choose another with 'vpnns profile default NAME' or clear it with --clear`);
    });
}
