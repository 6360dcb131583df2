/**
 * commander's classes, loaded with require(). commander is a CommonJS package, and an ESM
 * `import` of it first scans its source for the names it exports (cjs-module-lexer), which cost
 * about 25 ms per vpnns process (Node.js 20, 2-core AMD EPYC, median of 6 runs under load).
 */
import { createRequire } from "node:module";
import type * as Commander from "commander";

const commander = createRequire(import.meta.url)("commander") as typeof Commander;

export const { Command, CommanderError, InvalidArgumentError, Option } = commander;
export type Command = Commander.Command;
export type CommanderError = Commander.CommanderError;
export type Option = Commander.Option;
