// The CLIs' argument parsing: values with defaults, --help, and bad command lines as CliUsageError.
import { describe, expect, it } from 'vitest';
import { cliHelp, CliUsageError, parseCli, type CliOptions } from './args';

const options = {
  steps: { type: 'string', default: '200', help: 'optimizer steps' },
  'class-prompt': { type: 'string', help: 'class prompt' },
  flip: { type: 'boolean', default: false, help: 'random flips' },
} satisfies CliOptions;

describe('cli args', () => {
  it('fills defaults and reads given values', () => {
    expect(parseCli([], options)).toEqual({ steps: '200', flip: false });
    expect(parseCli(['--steps', '5', '--flip', '--class-prompt', 'robot'], options)).toEqual({
      steps: '5',
      flip: true,
      'class-prompt': 'robot',
    });
  });

  it('answers help for --help or -h anywhere on the line', () => {
    expect(parseCli(['--steps', '5', '--help'], options)).toBe('help');
    expect(parseCli(['-h'], options)).toBe('help');
  });

  it('turns unknown options, missing values and stray words into CliUsageError', () => {
    expect(() => parseCli(['--stpes', '5'], options)).toThrow(CliUsageError);
    expect(() => parseCli(['--stpes', '5'], options)).toThrow(/--stpes/);
    expect(() => parseCli(['--steps'], options)).toThrow(CliUsageError);
    expect(() => parseCli(['robot'], options)).toThrow(CliUsageError);
  });

  it('lists every option with its default in the help text', () => {
    const text = cliHelp('train', 'Trains.', options);
    expect(text).toMatch(/^usage: npm run train -- \[options\]/);
    expect(text).toMatch(/--steps VALUE\s+optimizer steps \(default: 200\)/);
    expect(text).toMatch(/--class-prompt VALUE\s+class prompt$/m);
    expect(text).toMatch(/--flip\s+random flips$/m);
    expect(text).toMatch(/--help\s+this text$/m);
  });
});
