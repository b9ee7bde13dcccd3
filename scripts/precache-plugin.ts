// Vite build plugin: after the bundle is written, makes sure onnxruntime-web's WebAssembly is in the output
// (copied to /ort/ unless the bundle already emitted it), lists every output file (app shell, wasm,
// public/models/…) in precache-manifest.json, and writes dist/sw.js with that list and a content hash.
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import type { Logger, Plugin } from 'vite';

/** onnxruntime-web's runtimes: plain WASM (CPU) and JSEP (its WebGPU execution provider). */
export const ORT_FILES = [
  'ort-wasm-simd-threaded.wasm',
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.jsep.wasm',
  'ort-wasm-simd-threaded.jsep.mjs',
];
export const ORT_DIR = 'ort';
const SKIP = [/\.map$/, /^sw\.js$/, /^precache-manifest\.json$/, /(^|\/)\./];

export interface PrecacheManifest {
  version: string;
  /** Site-absolute URLs, e.g. "/index.html", "/assets/index-abc.js", "/models/emoji-tiny/config.json". */
  files: string[];
  bytes: number;
  /** The subsets people ask about: onnxruntime-web wasm and the default model's files. */
  wasm: string[];
  models: string[];
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? walk(join(dir, d.name)) : d.isFile() ? [join(dir, d.name)] : [],
  );
}

/** The manifest of everything in `outDir` a visit needs offline. */
export function buildManifest(outDir: string): PrecacheManifest {
  const hash = createHash('sha256');
  let bytes = 0;
  const files: string[] = [];
  for (const abs of walk(outDir).sort()) {
    const rel = relative(outDir, abs).split(sep).join('/');
    if (SKIP.some((r) => r.test(rel))) continue;
    const body = readFileSync(abs);
    hash.update(rel).update('\0').update(body);
    bytes += body.byteLength;
    files.push(`/${rel}`);
  }
  return {
    version: hash.digest('hex').slice(0, 16),
    files,
    bytes,
    wasm: files.filter((f) => /ort-wasm.*\.(wasm|mjs)$/.test(f)),
    models: files.filter((f) => f.startsWith('/models/')),
  };
}

export function precachePlugin(opts: { template?: string; ortDist?: string } = {}): Plugin {
  let outDir = 'dist';
  let root = process.cwd();
  let logger: Logger | undefined;
  return {
    name: 'lora2-precache',
    apply: 'build',
    configResolved(config) {
      root = config.root;
      logger = config.logger;
      outDir = resolve(config.root, config.build.outDir);
    },
    closeBundle() {
      if (!existsSync(join(outDir, 'index.html'))) return;
      const already = walk(outDir).some((f) => /ort-wasm-simd-threaded.*\.wasm$/.test(f));
      const ortDist = opts.ortDist ?? resolve(root, 'node_modules/onnxruntime-web/dist');
      if (!already && existsSync(ortDist)) {
        mkdirSync(join(outDir, ORT_DIR), { recursive: true });
        for (const f of ORT_FILES) {
          if (existsSync(join(ortDist, f))) copyFileSync(join(ortDist, f), join(outDir, ORT_DIR, f));
        }
      }
      const manifest = buildManifest(outDir);
      writeFileSync(join(outDir, 'precache-manifest.json'), JSON.stringify(manifest, null, 1));
      const template = readFileSync(opts.template ?? resolve(root, 'src/sw/sw.template.js'), 'utf8');
      const marker = 'self.__PRECACHE_MANIFEST__';
      if (!template.includes(marker)) throw new Error(`service worker template lacks ${marker}`);
      const inlined = JSON.stringify({ version: manifest.version, files: manifest.files });
      writeFileSync(join(outDir, 'sw.js'), template.replace(marker, inlined));
      const mb = (manifest.bytes / 2 ** 20).toFixed(1);
      logger?.info(`precache: ${manifest.files.length} files, ${mb} MiB (version ${manifest.version})`);
      if (manifest.models.length === 0) {
        logger?.warn(
          'precache: public/models has no files yet; the default model will not be available offline',
        );
      }
    },
  };
}
