#!/usr/bin/env node
// `tessera` CLI: a thin entry point. Each subcommand parses its flags into typed options and calls
// a pkg/ function; every failure becomes one clear line on stderr and a non-zero exit code.
import { commands } from './commands.js';
import { exitCodeFor, formatError } from './errors.js';

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name ? 0 : 2;
  }
  const cmd = commands.get(name);
  if (!cmd) {
    process.stderr.write(`tessera: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  return cmd.run(rest);
}

function usage(): string {
  const lines = [...commands.values()].map((c) => `  ${c.name.padEnd(8)} ${c.summary}`);
  return `usage: tessera <command> [flags]\n\ncommands:\n${lines.join('\n')}\n\nRun "tessera <command> --help" for a command's flags.\n`;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err: unknown) => {
    process.stderr.write(`tessera: ${formatError(err)}\n`);
    process.exitCode = exitCodeFor(err);
  },
);
