import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';

/**
 * Where a check may not go:
 * - 'internal' (the hub's checks, unless its operator allows it): loopback, link-local, a
 *   cloud's metadata service (169.254.169.254, fd00:ec2::254) and the hub's own addresses. A
 *   monitor is not a way into the hub's host or its link.
 * - 'link-local' (an agent's checks): link-local and metadata only. An agent is there to check
 *   what is inside its network, loopback included, but a monitor sent by the hub is not a way to
 *   read the host's cloud credentials.
 * Checked on the address a name resolves to, each time it is resolved (redirects too), so a
 * name that points at a refused address is refused like the address.
 */
export type Guard = false | 'internal' | 'link-local';

const LINK_LOCAL = new BlockList();
LINK_LOCAL.addSubnet('169.254.0.0', 16, 'ipv4');
LINK_LOCAL.addSubnet('fe80::', 10, 'ipv6');
LINK_LOCAL.addAddress('fd00:ec2::254', 'ipv6');
LINK_LOCAL.addSubnet('::ffff:169.254.0.0', 112, 'ipv6');

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addSubnet('0.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addAddress('::', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** Why this address is refused under `guard`, or null. */
export function refusedAddress(address: string, guard: Guard): string | null {
  if (guard === false) return null;
  const family = isIP(address);
  if (family === 0) return null;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  if (LINK_LOCAL.check(address, type)) return `${address} is a link-local or metadata address`;
  if (guard === 'link-local') return null;
  if (LOOPBACK.check(address, type)) return `${address} is a loopback address`;
  for (const addrs of Object.values(networkInterfaces())) {
    if (addrs?.some((a) => a.address === address)) return `${address} is one of the hub's own addresses`;
  }
  return null;
}

/** Why this address is refused to a hub-run check, or null. */
export const internalAddress = (address: string): string | null => refusedAddress(address, 'internal');

export class RefusedAddress extends Error {
  constructor(reason: string, guard: Guard = 'internal') {
    super(
      guard === 'link-local'
        ? `refused: ${reason} (an agent's monitor may reach it only with monitors.allow_link_local in the agent's config)`
        : `refused: ${reason} (a hub-run monitor may reach it only with OPSPILOT_MONITOR_ALLOW_INTERNAL=true)`,
    );
    this.name = 'RefusedAddress';
  }
}

/** A `lookup` for sockets that refuses, after resolving, what `guard` refuses. */
export function guardedLookupFor(guard: Exclude<Guard, false>): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      const refused = addresses.map((a) => refusedAddress(a.address, guard)).find(Boolean);
      if (refused) return callback(new RefusedAddress(refused, guard), '', 0);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}

/** The hub's guard as a `lookup`. */
export const guardedLookup: LookupFunction = guardedLookupFor('internal');
