// Starts a command inside cgroups of its own: writes its own pid into each `--cgroup DIR`, then
// runs the command (which inherits them) and passes SIGTERM/SIGINT on. systemd-nspawn with
// --keep-unit takes the cgroup it is started in as the container's. No shell is involved.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';

const args = process.argv.slice(2);
const split = args.indexOf('--');
if (split < 0 || split === args.length - 1) {
  process.stderr.write('usage: systemd-guest-launch.mjs --cgroup DIR [--cgroup DIR] -- COMMAND [ARGS]\n');
  process.exit(2);
}
for (let i = 0; i < split; i += 2) {
  if (args[i] !== '--cgroup' || !args[i + 1]) throw new Error(`unexpected ${args[i]}`);
  writeFileSync(`${args[i + 1]}/cgroup.procs`, String(process.pid));
}
const [cmd, ...rest] = args.slice(split + 1);
const child = spawn(cmd, rest, { stdio: 'inherit' });
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
child.on('error', (err) => {
  process.stderr.write(`${cmd}: ${err.message}\n`);
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
