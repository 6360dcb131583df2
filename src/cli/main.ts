#!/usr/bin/env node
/** The vpnns command line: parses arguments, runs one command and maps failures to exit codes. */
import { Command, CommanderError } from "commander";
import { createRequire } from "node:module";
import { EXIT_FAILURE, EXIT_USAGE, VpnnsError } from "../core/errors.js";
import { setVerbose } from "../core/log.js";
import { ensureRoot } from "./privilege.js";
import { registerProfileCommands } from "./profile-commands.js";
import { registerLifecycleCommands } from "./lifecycle-commands.js";
import { registerDemoCommand } from "./demo-command.js";
import { registerSettingsCommands } from "./settings-commands.js";
import { registerAppCommands } from "./app-commands.js";
import { registerSystemdCommands } from "./systemd-commands.js";
import { registerPublishCommands } from "./publish-commands.js";
import { registerCheckCommand } from "./check-command.js";
import { addVerboseOption } from "./options.js";
import { describeSystemError } from "./system-error.js";
import { checkFolderVariables } from "../core/paths.js";

const { version } = createRequire(import.meta.url)("../../package.json") as { version: string };

function buildProgram(): Command {
  const program = new Command("vpnns")
    .description("Give each Linux application its own VPN: WireGuard profiles in isolated network namespaces with a kill-switch")
    .version(version, "--version", "print the version")
    .enablePositionalOptions()
    .showHelpAfterError("(add --help for usage)")
    .exitOverride();
  addVerboseOption(program);
  registerProfileCommands(program);
  registerLifecycleCommands(program);
  registerAppCommands(program);
  registerSettingsCommands(program);
  registerSystemdCommands(program);
  registerPublishCommands(program);
  registerCheckCommand(program);
  registerDemoCommand(program);

  program.hook("preAction", async (_program, action) => {
    setVerbose(Boolean(action.optsWithGlobals().verbose));
    checkFolderVariables();
    await ensureRoot(action.name());
  });
  for (const command of allCommands(program)) command.exitOverride();
  return program;
}

function allCommands(command: Command): Command[] {
  return command.commands.flatMap((child) => [child, ...allCommands(child)]);
}

async function main(): Promise<void> {
  try {
    await buildProgram().parseAsync(process.argv);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
  }
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    // Commander has already printed its message; help and --version end with exit code 0.
    return error.exitCode === 0 ? 0 : EXIT_USAGE;
  }
  const systemError = describeSystemError(error);
  if (systemError !== undefined) return exitCodeFor(systemError);
  if (error instanceof VpnnsError) {
    process.stderr.write(`vpnns: ${error.message}\n`);
    return error.exitCode;
  }
  process.stderr.write(`vpnns: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return EXIT_FAILURE;
}

await main();
