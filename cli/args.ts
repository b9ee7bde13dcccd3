// Command-line parsing for the CLIs: node:util's parseArgs plus `--help` (a usage text listing every option
// with its default) and one-line errors for unknown or malformed options instead of a stack trace.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { WEIGHT_STORAGES, type WeightStorage } from '../src/models/unet';

export interface CliOption {
  type: 'string' | 'boolean';
  default?: string | boolean;
  /** One line for --help; `VALUE` in the text names the argument. */
  help: string;
}

export type CliOptions = Record<string, CliOption>;

type Values<O extends CliOptions> = {
  [K in keyof O]: O[K]['type'] extends 'boolean'
    ? boolean
    : O[K]['default'] extends string
      ? string
      : string | undefined;
};

/** A command line the CLI cannot run: the message says what to change. */
export class CliUsageError extends Error {}

/** The --help text: the summary, then one line per option with its default. */
export function cliHelp(command: string, summary: string, options: CliOptions): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = o.type === 'boolean' ? `--${name}` : `--${name} VALUE`;
    const def =
      o.type === 'string' && o.default !== undefined && o.default !== '' ? ` (default: ${o.default})` : '';
    return [flag, `${o.help}${def}`] as const;
  });
  const width = Math.max(...rows.map(([f]) => f.length)) + 2;
  return [
    `usage: npm run ${command} -- [options]`,
    '',
    summary,
    '',
    'options:',
    ...rows.map(([f, h]) => `  ${f.padEnd(width)}${h}`),
    `  ${'--help'.padEnd(width)}this text`,
  ].join('\n');
}

/** Parses `argv`; 'help' when it asks for --help or -h; throws CliUsageError on a bad command line. */
export function parseCli<O extends CliOptions>(argv: string[], options: O): Values<O> | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  const config: ParseArgsConfig['options'] = Object.fromEntries(
    Object.entries(options).map(([k, o]) => [
      k,
      o.default === undefined ? { type: o.type } : { type: o.type, default: o.default },
    ]),
  );
  try {
    return parseArgs({ args: argv, options: config, allowPositionals: false }).values as Values<O>;
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (!code.startsWith('ERR_PARSE_ARGS')) throw e;
    throw new CliUsageError((e as Error).message);
  }
}

/** A command line the CLI cannot run: prints what to change and where the options are, and exits 2. */
export function exitUsage(command: string, message: string): never {
  console.error(`${message}\nrun \`npm run ${command} -- --help\` for the options`);
  process.exit(2);
}

/** parseCli on the process's arguments: prints --help and exits 0, or the error and exits 2. */
export function cliArgs<O extends CliOptions>(command: string, summary: string, options: O): Values<O> {
  let parsed: Values<O> | 'help';
  try {
    parsed = parseCli(process.argv.slice(2), options);
  } catch (e) {
    if (!(e instanceof CliUsageError)) throw e;
    exitUsage(command, e.message);
  }
  if (parsed === 'help') {
    console.log(cliHelp(command, summary, options));
    process.exit(0);
  }
  return parsed;
}

/** The --weights option of the CLIs that load a model folder: how its frozen UNet weights are stored. */
export const WEIGHTS_OPTION: CliOption = {
  type: 'string',
  default: 'f16',
  help:
    'GPU storage of the frozen linear/conv weights: f16 (as the studio; F32 files rounded, half the memory), ' +
    'auto (f16 only when the file has 16-bit weights), f32',
};

/** --weights' value, or a usage error naming the choices. */
export function weightStorage(command: string, value: string | undefined): WeightStorage {
  const v = value ?? 'f16';
  if (!(WEIGHT_STORAGES as readonly string[]).includes(v)) {
    exitUsage(command, `--weights: one of ${WEIGHT_STORAGES.join(', ')} (got "${v}")`);
  }
  return v as WeightStorage;
}
