// Every npm script names files and Vitest projects that exist (`npm run test:e2e` once pointed at a file that never did).
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const scripts = Object.entries(
  (JSON.parse(readFileSync('package.json', 'utf8')) as { scripts: Record<string, string> }).scripts,
);
const projects = [...readFileSync('vitest.config.ts', 'utf8').matchAll(/name: '([^']+)'/g)].map((m) => m[1]);

describe('package.json scripts', () => {
  it('name script files that exist', () => {
    const missing = scripts.flatMap(([name, command]) =>
      command
        .split(/\s+/)
        .filter((w) => /^[\w./-]+\.(ts|mjs|cjs|js)$/.test(w) && !existsSync(w))
        .map((f) => `${name}: ${f}`),
    );
    expect(scripts.length).toBeGreaterThan(5);
    expect(missing).toEqual([]);
  });

  it('run Vitest projects that are configured', () => {
    expect(projects).toEqual(expect.arrayContaining(['unit', 'gpu', 'e2e']));
    const unknown = scripts.flatMap(([name, command]) =>
      [...command.matchAll(/--project (\S+)/g)]
        .filter((m) => !projects.includes(m[1]))
        .map((m) => `${name}: ${m[1]}`),
    );
    expect(unknown).toEqual([]);
  });
});
