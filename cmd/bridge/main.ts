#!/usr/bin/env node
// tessera-bridge: the bridge daemon as its own entry point; same flags as `tessera bridge run`
// (see cmd/tessera/bridge-command.ts). Stops after the current tick on SIGINT / SIGTERM.
import { bridgeCommand } from '../tessera/bridge-command.js';
import { exitCodeFor, formatError } from '../tessera/errors.js';

bridgeCommand.run(['run', ...process.argv.slice(2)]).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`tessera-bridge: ${formatError(err)}\n`);
    process.exitCode = exitCodeFor(err);
  },
);
