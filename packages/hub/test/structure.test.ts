// One owner per concept (issue 12), kept by a test: SQL is written in storage/ only, and incident
// rows are changed only there, by the functions the lifecycle calls.
import t from 'tap';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const src = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory() ? files(full) : full.endsWith('.ts') ? [full] : [];
  });
}

const all = files(src).map((file) => ({ file: path.relative(src, file), text: readFileSync(file, 'utf8') }));

t.test('the scan sees the hub', async (t) => {
  t.ok(all.length > 40, `${all.length} files`);
  t.ok(all.some((f) => f.file === path.join('storage', 'incidents.ts')));
});

t.test('SQL is written in storage/ only', async (t) => {
  const query = /\.(selectFrom|updateTable|insertInto|deleteFrom)\(|\bsql`/;
  const outside = all.filter((f) => !f.file.startsWith(`storage${path.sep}`) && query.test(f.text)).map((f) => f.file);
  t.same(outside, [], 'no query outside storage/');
});

t.test('incident rows are changed by storage/incidents.ts, storage/external-alerts.ts and storage/analysis.ts only', async (t) => {
  const writes = /updateTable\('incidents'\)|insertInto\('incidents'\)|UPDATE incidents\b|INSERT INTO incidents\b/;
  const writers = all.filter((f) => writes.test(f.text)).map((f) => f.file).sort();
  t.same(writers, [path.join('storage', 'analysis.ts'), path.join('storage', 'external-alerts.ts'), path.join('storage', 'incidents.ts')]);
});

t.test('no two modules import each other', async (t) => {
  const imports = new Map<string, Set<string>>();
  for (const f of all) {
    const targets = new Set<string>();
    for (const m of f.text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) targets.add(path.normalize(path.join(path.dirname(f.file), m[1]!)));
    imports.set(f.file, targets);
  }
  const pairs = [...imports].flatMap(([a, targets]) => [...targets].filter((b) => a < b && imports.get(b)?.has(a)).map((b) => `${a} <-> ${b}`));
  t.same(pairs, []);
});

t.test('storage/ calls nothing above it', async (t) => {
  const upward = all.filter((f) => f.file.startsWith(`storage${path.sep}`) && /from '\.\.\//.test(f.text)).map((f) => f.file);
  t.same(upward, [], 'storage/ imports only storage/ and libraries');
});

t.test("tests import other packages by name and never another suite's file", async (t) => {
  const packages = path.resolve(src, '../..');
  const bad: string[] = [];
  for (const pkg of readdirSync(packages)) {
    const dir = path.join(packages, pkg, 'test');
    for (const file of statSync(dir, { throwIfNoEntry: false })?.isDirectory() ? files(dir) : []) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/from '([^']+)'/g)) {
        const target = m[1]!;
        const where = path.relative(packages, file);
        const resolved = path.resolve(path.dirname(file), target);
        // scripts/ (the repository's own tools: the hub process, the guest builder) may be shared.
        const otherPackage = resolved.startsWith(packages + path.sep) && !resolved.startsWith(path.join(packages, pkg) + path.sep);
        if (target.startsWith('.') && otherPackage) bad.push(`${where} -> ${target}`);
        if (/\.test\.ts$/.test(target)) bad.push(`${where} -> ${target}`);
      }
    }
  }
  t.same(bad, []);
});
