// docs/ARCHITECTURE.md is where a newcomer finds where behaviour lives: every path it names exists,
// and the layering it states is the code's.
import t from 'tap';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const doc = readFileSync(path.join(root, 'docs/ARCHITECTURE.md'), 'utf8');

t.test('every path docs/ARCHITECTURE.md names exists', async (t) => {
  const named = [...doc.matchAll(/`((?:packages\/|scripts\/|migrations\/|schema\.sql)[^`\s]*)`/g)].map((m) => m[1]!);
  t.ok(named.length > 30, `${named.length} paths`);
  for (const p of named) t.ok(existsSync(path.join(root, p)), p);
  // Short names in a section are files in the folder that section is about.
  for (const m of doc.matchAll(/`((?:storage|incidents|ingest|exec|remediation|slack|auth|rest)\/[a-z-]+\.ts)`/g)) {
    t.ok(existsSync(path.join(root, 'packages/hub/src', m[1]!)) || existsSync(path.join(root, 'packages/agent/src', m[1]!)), m[1]!);
  }
});

// The hub's folders, bottom to top: each imports only folders before it (and the root modules).
const LAYERS = ['storage', 'auth', 'exec', 'incidents', 'ingest', 'intake', 'heartbeats', 'monitors', 'remediation', 'slack', 'rest', 'observability'];

t.test("the hub's folders import only the ones below them", async (t) => {
  const src = path.join(root, 'packages/hub/src');
  for (const layer of LAYERS) t.match(doc, new RegExp('`packages/hub/src/' + layer + '`|`' + layer + '/'), `${layer} is in the document`);
  const bad: string[] = [];
  for (const layer of LAYERS) {
    const dir = path.join(src, layer);
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.ts') && statSync(path.join(dir, f)).isFile())) {
      const text = readFileSync(path.join(dir, file), 'utf8');
      for (const m of text.matchAll(/from '\.\.\/([a-z-]+)\//g)) {
        if (LAYERS.indexOf(m[1]!) > LAYERS.indexOf(layer)) bad.push(`${layer}/${file} imports ${m[1]}/`);
      }
    }
  }
  t.same(bad, []);
});

t.test('nothing in the repository points outside it (the spec is in docs/)', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const files = execFileSync('git', ['ls-files'], { cwd: root, encoding: 'utf8' }).split('\n').filter((f) => /\.(ts|md|json|sh|yml|sql|mjs)$/.test(f));
  t.ok(files.length > 50);
  const outside = files.filter((f) => /\.\.\/shared\b/.test(readFileSync(path.join(root, f), 'utf8')) && !f.endsWith('architecture.test.ts'));
  t.same(outside, []);
});
