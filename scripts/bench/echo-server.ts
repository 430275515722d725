/**
 * A TCP echo server in a process of its own (forked by `pnpm bench fleet`): the floor under every
 * hop an exec or an ack takes between processes on this machine, a byte there and back. It
 * tells the bench its port over IPC.
 */
import net from 'node:net';

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', (chunk) => socket.write(chunk));
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.send?.((server.address() as net.AddressInfo).port));
process.on('disconnect', () => process.exit(0));
