/**
 * The baseline of `pnpm bench monitors`: the same checks as the hub's monitors, run by
 * packages/checks alone in a process of its own (no database, no decisions): N HTTP checks of
 * one URL, each every `interval` seconds, spread evenly, for `seconds`. Prints the count as JSON.
 */
import { runCheck } from '@opspilot/checks';

const [url, n, intervalS, seconds] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
let done = 0;
let failed = 0;
const timers: NodeJS.Timeout[] = [];
for (let i = 0; i < n; i++) {
  const run = () =>
    void runCheck({ kind: 'http', target: url, timeout_ms: 10_000, conditions: ['[STATUS] == 200', '[BODY].status == "ok"'] }).then((r) => {
      done++;
      if (!r.ok) failed++;
    });
  timers.push(
    setTimeout(() => {
      run();
      timers.push(setInterval(run, intervalS * 1000));
    }, (i * intervalS * 1000) / n),
  );
}
setTimeout(() => {
  for (const t of timers) clearTimeout(t);
  process.stdout.write(JSON.stringify({ done, failed }) + '\n');
  process.exit(0);
}, seconds * 1000);
