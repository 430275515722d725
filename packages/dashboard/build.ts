/**
 * Build the dashboard into static files: index.html, app.<hash>.js and app.<hash>.css (esbuild:
 * one fast, minified bundle; names carry a content hash so they can be cached for ever). The hub
 * serves the directory (packages/hub/src/dashboard.ts); `pnpm start` builds it when it is missing
 * or older than its sources.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { build } from 'esbuild';

export const SOURCE_DIR = path.join(import.meta.dirname, 'src');
export const DEFAULT_OUT_DIR = path.join(import.meta.dirname, 'dist');

/** Whether `out` holds a build newer than every source file. */
export function dashboardBuilt(out = DEFAULT_OUT_DIR): boolean {
  try {
    const built = statSync(path.join(out, 'index.html')).mtimeMs;
    const sources = readdirSync(SOURCE_DIR, { recursive: true, encoding: 'utf8' });
    return sources.every((f) => statSync(path.join(SOURCE_DIR, f)).mtimeMs <= built);
  } catch {
    return false;
  }
}

export async function buildDashboard(out = DEFAULT_OUT_DIR): Promise<{ dir: string; bytes: number }> {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // Code split: the chart library (uPlot) is loaded by the agent page only, not on first load.
  const result = await build({
    entryPoints: [path.join(SOURCE_DIR, 'main.tsx')],
    bundle: true,
    splitting: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    outdir: out,
    entryNames: 'app.[hash]',
    chunkNames: 'chunk.[hash]',
    write: false,
    metafile: true,
    legalComments: 'none',
  });
  let bytes = 0;
  for (const f of result.outputFiles) {
    writeFileSync(f.path, f.contents);
    bytes += f.contents.length;
  }
  // The page loads the entry point; the chunks it imports come by themselves.
  const entry = Object.entries(result.metafile.outputs).find(([, o]) => o.entryPoint !== undefined)![0];
  const jsName = path.basename(entry);
  // uPlot's stylesheet first, then ours (which may override it).
  const uplotCss = readFileSync(createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'));
  const css = Buffer.concat([uplotCss, Buffer.from('\n'), readFileSync(path.join(SOURCE_DIR, 'app.css'))]);
  const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 12);
  const cssName = `app.${hash(css)}.css`;
  writeFileSync(path.join(out, cssName), css);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpsPilot</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/assets/${cssName}">
</head>
<body>
<div id="app"></div>
<script type="module" src="/assets/${jsName}"></script>
</body>
</html>
`;
  writeFileSync(path.join(out, 'index.html'), html);
  return { dir: out, bytes: bytes + css.length + html.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { dir, bytes } = await buildDashboard(process.argv[2] ?? DEFAULT_OUT_DIR);
  process.stdout.write(`dashboard built in ${dir} (${bytes} bytes)\n`);
}
