/** `vpnns systemd install`, `enable`, `disable`, `attach` and `detach`. */
import { Option, type Command } from "commander";
import { access, constants } from "node:fs/promises";
import { isAbsolute } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { UsageError } from "../core/errors.js";
import { validateProfileName } from "../core/names.js";
import { info, warn } from "../core/log.js";
import {
  attachService,
  DEFAULT_RETRY_FOR_SECONDS,
  detachService,
  disableProfile,
  enableProfile,
  installTemplate,
  instanceName,
  normalizeServiceName,
  renderTemplate,
  unitDir,
} from "../systemd/units.js";
import { addVerboseOption, parseSeconds } from "./options.js";

/** Variables that choose vpnns's folders. `install` copies those that are set into the unit. */
const FOLDER_VARIABLES = ["VPNNS_CONFIG_DIR", "VPNNS_STATE_DIR"] as const;

/** Load a profile to check that it exists and is valid; the profile modules load only here. */
async function loadProfile(name: string): Promise<void> {
  const store = await import("../profile/store.js");
  await store.loadProfile(name);
}

/** The package root, two levels above dist/cli/. */
const PACKAGE_ROOT = new URL("../../", import.meta.url);

interface UnitDirFlags {
  unitDir?: string;
}

function addUnitDirOption(command: Command): Command {
  return command.option("--unit-dir <dir>", "unit folder to write to (default: $VPNNS_SYSTEMD_DIR, else /etc/systemd/system)");
}

export function registerSystemdCommands(program: Command): void {
  const systemd = program
    .command("systemd")
    .description("start profiles at boot with the vpnns@.service template, and run other services inside a profile");

  addUnitDirOption(addVerboseOption(systemd.command("install")))
    .description("write the vpnns@.service template, which runs this vpnns, into the unit folder")
    .option("--vpnns-path <file>", "absolute path of the vpnns executable that the unit runs (default: this Node.js with this vpnns script)")
    .addOption(
      new Option("--retry-for <seconds>", "how long the unit's `vpnns up` retries an unreachable endpoint, in seconds")
        .argParser(parseSeconds)
        .default(DEFAULT_RETRY_FOR_SECONDS * 1000, String(DEFAULT_RETRY_FOR_SECONDS)),
    )
    .action(async (flags: UnitDirFlags & { vpnnsPath?: string; retryFor: number }) => {
      await install(unitDir(flags.unitDir), flags);
    });

  addUnitDirOption(addVerboseOption(systemd.command("enable")))
    .description(`start a profile at boot: link ${instanceName("PROFILE")} into multi-user.target.wants, as systemctl enable does`)
    .argument("<profile>", "profile name")
    .action(async (profile: string, flags: UnitDirFlags) => {
      await loadProfile(profile);
      const unit = instanceName(profile);
      const result = await enableProfile(unitDir(flags.unitDir), profile);
      if (result.outcome === "unchanged") info(`${unit} is already enabled (${result.link}); nothing changed`);
      else info(`enabled ${unit}: ${result.link} -> ${result.target}`);
      info(`to start it now, run: systemctl daemon-reload && systemctl start ${unit}`);
    });

  addUnitDirOption(addVerboseOption(systemd.command("disable")))
    .description(`stop starting a profile at boot: remove the link that enable made (a running ${instanceName("PROFILE")} keeps running)`)
    .argument("<profile>", "profile name")
    .action(async (profile: string, flags: UnitDirFlags) => {
      validateProfileName(profile);
      const unit = instanceName(profile);
      const result = await disableProfile(unitDir(flags.unitDir), profile);
      if (!result.removed) {
        info(`${unit} is not enabled (${result.link} does not exist); nothing to remove`);
        return;
      }
      info(`disabled ${unit}: removed ${result.link}; run: systemctl daemon-reload`);
    });

  addUnitDirOption(addVerboseOption(systemd.command("attach")))
    .description("run an existing service inside a profile: write a drop-in that starts the profile first and joins its namespace and DNS")
    .argument("<service>", "the service's unit name, such as transmission-daemon or transmission-daemon.service")
    .argument("<profile>", "profile name")
    .action(async (serviceName: string, profile: string, flags: UnitDirFlags) => {
      const service = normalizeServiceName(serviceName);
      await loadProfile(profile);
      const result = await attachService(unitDir(flags.unitDir), service, profile);
      if (result.outcome === "unchanged") info(`${service} already runs inside profile ${profile} (${result.path}); nothing changed`);
      else if (result.previousProfile !== undefined) info(`${service} moved from profile ${result.previousProfile} to profile ${profile}: wrote ${result.path}`);
      else info(`${service} runs inside profile ${profile} from its next start: wrote ${result.path}`);
      info(`to apply it, run: systemctl daemon-reload && systemctl restart ${service}`);
    });

  addUnitDirOption(addVerboseOption(systemd.command("detach")))
    .description("run a service outside vpnns again: remove the drop-in that attach wrote")
    .argument("<service>", "the service's unit name")
    .action(async (serviceName: string, flags: UnitDirFlags) => {
      const service = normalizeServiceName(serviceName);
      const result = await detachService(unitDir(flags.unitDir), service);
      if (!result.removed) {
        info(`${service} is not attached to a profile (${result.path} does not exist); nothing to remove`);
        return;
      }
      const from = result.profile !== undefined ? ` from profile ${result.profile}` : "";
      info(`detached ${service}${from}: removed ${result.path}; run: systemctl daemon-reload && systemctl restart ${service}`);
    });
}

async function install(dir: string, flags: { vpnnsPath?: string; retryFor: number }): Promise<void> {
  const command = await vpnnsCommand(flags.vpnnsPath);
  const environment: Record<string, string> = {};
  for (const name of FOLDER_VARIABLES) {
    const value = process.env[name];
    if (value) environment[name] = value;
  }
  const text = renderTemplate({
    command,
    documentation: await documentationUrls(),
    environment,
    retryForSeconds: flags.retryFor / 1000,
    origin: ["Written by `vpnns systemd install` with the paths of the vpnns that ran it."],
  });
  const result = await installTemplate(dir, text);
  const runs = `it runs ${command.join(" ")}`;
  const set = Object.keys(environment).length > 0 ? ` with ${Object.entries(environment).map(([name, value]) => `${name}=${value}`).join(" ")}` : "";
  if (result.outcome === "unchanged") {
    info(`${result.path} is already installed and current (${runs}${set}); nothing changed`);
    return;
  }
  info(`${result.outcome === "created" ? "installed" : "updated"} ${result.path}: ${runs}${set}`);
  if (result.outcome === "updated") info("run: systemctl daemon-reload");
  info("start a profile at boot with: vpnns systemd enable PROFILE");
}

/** The command that the unit runs: --vpnns-path, else this Node.js with the main.js next to this file. */
async function vpnnsCommand(vpnnsPath: string | undefined): Promise<string[]> {
  if (vpnnsPath === undefined) return [process.execPath, fileURLToPath(new URL("../cli/main.js", import.meta.url))];
  if (!isAbsolute(vpnnsPath)) {
    throw new UsageError(`invalid --vpnns-path ${JSON.stringify(vpnnsPath)}: give an absolute path, such as /usr/bin/vpnns`);
  }
  try {
    await access(vpnnsPath, constants.X_OK);
  } catch {
    // A package build may write the unit before vpnns sits at its final path, so this is no error.
    warn(`${vpnnsPath} is not an executable file here; the unit fails to start until it is`);
  }
  return [vpnnsPath];
}

/** file: URLs of the docs that this copy of vpnns has: docs/systemd.md in a repository checkout, and the README. */
async function documentationUrls(): Promise<string[]> {
  const urls: string[] = [];
  for (const relative of ["docs/systemd.md", "README.md"]) {
    const path = fileURLToPath(new URL(relative, PACKAGE_ROOT));
    try {
      await access(path, constants.R_OK);
      urls.push(pathToFileURL(path).href);
    } catch {
      // npm packages contain the README but not docs/.
    }
  }
  return urls;
}
