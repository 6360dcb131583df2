/** `vpnns app ...`, `vpnns profile default` and `vpnns desktop`: per-app profiles and desktop launchers. */
import type { Command } from "commander";
import { UsageError } from "../core/errors.js";
import { info, warn } from "../core/log.js";
import { addVerboseOption } from "./options.js";

export function registerAppCommands(program: Command): void {
  const app = program.command("app").description("choose the profile that 'vpnns run' uses for an app");

  addVerboseOption(app.command("set"))
    .description("run an app in a profile when 'vpnns run' gets no --profile")
    .argument("<app>", "the command's base name, such as firefox")
    .argument("<profile>", "profile name")
    .action(async (name: string, profile: string) => {
      const { assignmentsFile, setAppProfile } = await import("../apps/assignments.js");
      await setAppProfile(name, profile);
      info(`${name} runs in profile ${profile} (${assignmentsFile()}); start it with: vpnns run ${name}`);
    });

  addVerboseOption(app.command("unset"))
    .description("remove an app's profile, so 'vpnns run' falls back to the default profile")
    .argument("<app>", "the command's base name")
    .action(async (name: string) => {
      const { unsetAppProfile } = await import("../apps/assignments.js");
      const previous = await unsetAppProfile(name);
      info(previous === undefined ? `${name} had no profile; nothing changed` : `${name} no longer runs in profile ${previous}`);
    });

  addVerboseOption(app.command("list"))
    .description("list the apps with a profile, and the default profile")
    .option("--json", "print JSON")
    .action(async (options: { json?: boolean }) => {
      const [{ readAssignments }, { profileExists }] = await Promise.all([import("../apps/assignments.js"), import("../profile/store.js")]);
      const assignments = await readAssignments();
      const rows = [];
      for (const [name, profile] of Object.entries(assignments.apps).sort(([a], [b]) => a.localeCompare(b))) {
        rows.push({ app: name, profile, profileExists: await profileExists(profile) });
      }
      if (options.json) {
        console.log(JSON.stringify({ apps: rows, defaultProfile: assignments.defaultProfile ?? null }, null, 2));
        return;
      }
      for (const row of rows) console.log(`${row.app}\t${row.profile}${row.profileExists ? "" : "\t(profile not found)"}`);
      if (rows.length === 0) info("no apps have a profile; assign one with: vpnns app set APP PROFILE");
      info(assignments.defaultProfile === undefined ? "no default profile; set one with: vpnns profile default NAME" : `default profile: ${assignments.defaultProfile}`);
    });

  registerProfileDefault(program);
  registerDesktop(program);
}

/** `vpnns profile default`, added to the `profile` command of profile-commands.ts. */
function registerProfileDefault(program: Command): void {
  const profile = program.commands.find((command) => command.name() === "profile");
  if (profile === undefined) throw new Error("registerAppCommands needs the profile command: call registerProfileCommands first");
  addVerboseOption(profile.command("default"))
    .description("show the default profile of 'vpnns run', or set it")
    .argument("[name]", "profile name to make the default")
    .option("--clear", "remove the default profile")
    .action(async (name: string | undefined, options: { clear?: boolean }) => {
      const { readAssignments, setDefaultProfile } = await import("../apps/assignments.js");
      if (options.clear && name !== undefined) throw new UsageError("give either a profile name or --clear");
      if (options.clear) {
        await setDefaultProfile(undefined);
        info("no default profile; 'vpnns run' needs --profile or an app's profile");
        return;
      }
      if (name !== undefined) {
        await setDefaultProfile(name);
        info(`default profile: ${name}; 'vpnns run' uses it for apps without their own profile`);
        return;
      }
      const current = (await readAssignments()).defaultProfile;
      if (current === undefined) info("no default profile; set one with: vpnns profile default NAME");
      else console.log(current);
    });
}

function registerDesktop(program: Command): void {
  addVerboseOption(program.command("desktop"))
    .description("add a menu entry that starts an app in a profile, based on the app's own entry (or remove it with --remove)")
    .argument("<app>", "the command's base name, such as firefox")
    .option("-p, --profile <name>", "profile the entry starts the app in (default: the app's profile, else the default profile)")
    .option("--remove", "remove the entry instead")
    .action(async (name: string, options: { profile?: string; remove?: boolean }) => {
      const [{ chooseProfile, validateAppName }, { removeLauncher, writeLauncher }, { appEnvironment, findProgram }, { validateProfileName }, { resolveTargetUser }, { profileExists }] =
        await Promise.all([
          import("../apps/assignments.js"),
          import("../apps/desktop.js"),
          import("../core/app.js"),
          import("../core/names.js"),
          import("../core/user.js"),
          import("../profile/store.js"),
        ]);
      validateAppName(name);
      const user = await resolveTargetUser({});
      if (options.remove) {
        const profile = options.profile ?? (await chooseProfile(undefined, name)).profile;
        validateProfileName(profile);
        const result = removeLauncher({ user, profile, app: name });
        info(result.removed ? `removed ${result.file}` : `no entry at ${result.file}; nothing removed`);
        return;
      }

      const { profile } = await chooseProfile(options.profile, name);
      validateProfileName(profile);
      if (!(await profileExists(profile))) throw new UsageError(`profile ${profile} not found; list profiles with: vpnns profile list`);
      const result = writeLauncher({ user, profile, app: name });
      if (result.basedOn !== undefined) {
        info(`wrote ${result.file}, based on ${result.basedOn}`);
        return;
      }
      info(`wrote ${result.file}: no desktop entry of ${name} was found, so it has a plain name and no icon`);
      if (findProgram(name, appEnvironment(user).PATH ?? "") === undefined) {
        warn(`${name} is not on PATH (${appEnvironment(user).PATH}); the entry fails to start until it is installed`);
      }
    });
}
