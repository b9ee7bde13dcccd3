// Two Node tiers: `unit` (pure TypeScript) and `gpu` (real WebGPU through Dawn, one process, files in sequence).
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['src/**/*.test.ts', 'cli/**/*.test.ts', 'workers/**/*.test.ts'],
          exclude: ['**/*.gpu.test.ts', 'node_modules/**'],
          environment: 'node',
          setupFiles: ['scripts/yield-to-browser.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'gpu',
          include: ['src/**/*.gpu.test.ts', 'cli/**/*.gpu.test.ts'],
          environment: 'node',
          // Both Node tiers yield the CPU to the browser the e2e tier measures (see the file).
          setupFiles: ['scripts/yield-to-browser.ts'],
          // One Dawn device at a time: software Vulkan on 2 cores gains nothing from parallel files.
          fileParallelism: false,
          pool: 'forks',
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        test: {
          name: 'e2e',
          // A group of its own, so it never runs beside the other tiers: vitest runs group 0 (unit), then this
          // group, then the gpu tier (one worker, isolated files: vitest's sequential group, always last). Its
          // long-task checks time the page's main thread, and on two cores lavapipe beside it stretched 10 ms
          // chart redraws to 150-370 ms.
          sequence: { groupOrder: 1 },
          include: ['e2e/**/*.e2e.test.ts'],
          environment: 'node',
          globalSetup: ['e2e/support/global-setup.ts'],
          fileParallelism: false,
          pool: 'forks',
          // SwiftShader has no GPU watchdog: a runaway shader hangs the page, so every test has a timeout.
          testTimeout: 180_000,
          hookTimeout: 180_000,
          // expect.poll's default 1 s is shorter than a sessions refresh (it reads every stored value for the
          // sizes) takes on two busy cores; polls that need longer still say so.
          expect: { poll: { timeout: 10_000 } },
        },
      },
    ],
  },
});
