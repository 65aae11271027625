import { bridgeCommand } from './bridge-command.js';
import { modelCommand } from './model-command.js';
import { planCommand } from './plan-command.js';
import { trainCommand } from './train-command.js';
import { upCommand } from './up-command.js';

/** A CLI subcommand: parses its own flags, returns the exit code. */
export interface Command {
  name: string;
  summary: string;
  run(argv: string[]): Promise<number>;
}

// Registered by name (STYLE 11); later commands (up, plan, bridge, ...) add one line each.
export const commands = new Map<string, Command>([modelCommand, trainCommand, planCommand, upCommand, bridgeCommand].map((c) => [c.name, c]));
