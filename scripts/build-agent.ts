/**
 * `pnpm build:agent`: the agent as one file, dist/opspilot-agent.mjs, so a host needs only
 * Node.js 20. Usage on the host: node opspilot-agent.mjs --config /etc/opspilot/agent.json
 */
import { build } from 'esbuild';
import { chmodSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..');
export const BUNDLE = path.join(ROOT, 'dist', 'opspilot-agent.mjs');

export async function buildAgent(outfile: string = BUNDLE): Promise<string> {
  await build({
    entryPoints: [path.join(ROOT, 'packages/agent/src/main.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    minify: false,
    legalComments: 'eof',
    // ws loads these optional native speed-ups if present and works without them.
    external: ['bufferutil', 'utf-8-validate'],
    // Runnable as a program with nothing but Node; CommonJS dependencies (systeminformation)
    // call require(), so the ESM bundle gets one.
    banner: { js: "#!/usr/bin/env node\nimport { createRequire as __opspilotRequire } from 'node:module'; const require = __opspilotRequire(import.meta.url);" },
    logLevel: 'warning',
  });
  chmodSync(outfile, 0o755);
  return outfile;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const out = await buildAgent();
  console.log(`built ${path.relative(process.cwd(), out)}`);
}
