/**
 * Build the dashboard into static files: index.html, app.<hash>.js and app.<hash>.css (esbuild:
 * one fast, minified bundle; names carry a content hash so they can be cached for ever). The hub
 * serves the directory (packages/hub/src/dashboard.ts); `pnpm start` builds it when it is missing
 * or older than its sources.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { build } from 'esbuild';

export const SOURCE_DIR = path.join(import.meta.dirname, 'src');
export const DEFAULT_OUT_DIR = path.join(import.meta.dirname, 'dist');

/** Whether `out` holds a build newer than every source file. */
export function dashboardBuilt(out = DEFAULT_OUT_DIR): boolean {
  try {
    const built = statSync(path.join(out, 'index.html')).mtimeMs;
    return readdirSync(SOURCE_DIR).every((f) => statSync(path.join(SOURCE_DIR, f)).mtimeMs <= built);
  } catch {
    return false;
  }
}

export async function buildDashboard(out = DEFAULT_OUT_DIR): Promise<{ dir: string; bytes: number }> {
  const result = await build({
    entryPoints: [path.join(SOURCE_DIR, 'main.tsx')],
    bundle: true,
    minify: true,
    format: 'esm',
    target: 'es2022',
    jsx: 'automatic',
    jsxImportSource: 'preact',
    write: false,
    legalComments: 'none',
  });
  const js = result.outputFiles[0]!.contents;
  const css = readFileSync(path.join(SOURCE_DIR, 'app.css'));
  const hash = (b: Uint8Array) => createHash('sha256').update(b).digest('hex').slice(0, 12);
  const jsName = `app.${hash(js)}.js`;
  const cssName = `app.${hash(css)}.css`;
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  writeFileSync(path.join(out, jsName), js);
  writeFileSync(path.join(out, cssName), css);
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>OpsPilot</title>
<link rel="stylesheet" href="/assets/${cssName}">
</head>
<body>
<div id="app"></div>
<script type="module" src="/assets/${jsName}"></script>
</body>
</html>
`;
  writeFileSync(path.join(out, 'index.html'), html);
  return { dir: out, bytes: js.length + css.length + html.length };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { dir, bytes } = await buildDashboard(process.argv[2] ?? DEFAULT_OUT_DIR);
  process.stdout.write(`dashboard built in ${dir} (${bytes} bytes)\n`);
}
