import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Addresses a check run by the hub must not reach unless its operator allows it: a monitor is
 * not a way into the hub's own host (loopback), its link (link-local) or a cloud's metadata
 * service (169.254.169.254, fd00:ec2::254). Checked on the address a name resolves to, each time
 * it is resolved (redirects too), so a name that points at 127.0.0.1 is refused like the address.
 */
const INTERNAL = new BlockList();
INTERNAL.addSubnet('127.0.0.0', 8, 'ipv4');
INTERNAL.addSubnet('169.254.0.0', 16, 'ipv4');
INTERNAL.addSubnet('0.0.0.0', 8, 'ipv4');
INTERNAL.addAddress('::1', 'ipv6');
INTERNAL.addAddress('::', 'ipv6');
INTERNAL.addSubnet('fe80::', 10, 'ipv6');
INTERNAL.addAddress('fd00:ec2::254', 'ipv6');
INTERNAL.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');
INTERNAL.addSubnet('::ffff:169.254.0.0', 112, 'ipv6');

/** Why this address is refused to a hub-run check, or null. The hub's own interface addresses are refused too. */
export function internalAddress(address: string): string | null {
  const family = isIP(address);
  if (family === 0) return null;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (INTERNAL.check(address, type)) return `${address} is a loopback, link-local or metadata address`;
  for (const addrs of Object.values(networkInterfaces())) {
    if (addrs?.some((a) => a.address === address)) return `${address} is one of the hub's own addresses`;
  }
  return null;
}

export class RefusedAddress extends Error {
  constructor(reason: string) {
    super(`refused: ${reason} (a hub-run monitor may reach it only with OPSPILOT_MONITOR_ALLOW_INTERNAL=true)`);
    this.name = 'RefusedAddress';
  }
}

/** A `lookup` for sockets that refuses internal addresses after resolving. */
export const guardedLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0);
    const refused = addresses.map((a) => internalAddress(a.address)).find(Boolean);
    if (refused) return callback(new RefusedAddress(refused), '', 0);
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
    const first = addresses[0]!;
    callback(null, first.address, first.family);
  });
};
