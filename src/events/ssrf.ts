import dns from "node:dns";
import net from "node:net";
import { BadUserInputError } from "../errors";

/**
 * Addresses a webhook must not reach unless private URLs are allowed:
 * loopback, private (RFC 1918, unique-local), link-local (cloud metadata at
 * 169.254.169.254), carrier-grade NAT, unspecified, multicast and reserved.
 */
const blocked = new net.BlockList();
for (const [addr, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const)
  blocked.addSubnet(addr, prefix, "ipv4");
for (const [addr, prefix] of [
  ["::", 128],
  ["::1", 128],
  ["fc00::", 7],
  ["fe80::", 10],
  ["ff00::", 8],
] as const)
  blocked.addSubnet(addr, prefix, "ipv6");

/** Whether an IP address is private, loopback, link-local or otherwise not public. */
export function isPrivateAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return blocked.check(address, "ipv4");
  if (family === 6) {
    // An IPv4-mapped IPv6 address (::ffff:10.0.0.1) is checked as the IPv4 address it is.
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return blocked.check(mapped[1], "ipv4");
    return blocked.check(address, "ipv6");
  }
  return true;
}

function isLocalhostName(host: string): boolean {
  return host === "localhost" || host.endsWith(".localhost");
}

/**
 * Checks an endpoint URL when it is created or changed: http or https only,
 * https unless private URLs are allowed (production: https only), no
 * credentials in it, and, unless allowed, no private address written as the
 * host. Names are resolved and checked again at every delivery (`safeLookup`).
 */
export function checkEndpointUrl(raw: string, allowPrivate: boolean): string {
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw new BadUserInputError("url", "must be an absolute URL such as https://example.com/webhooks");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new BadUserInputError("url", "must be an http or https URL");
  const host = url.hostname.toLowerCase().replace(/^\[|\]$/g, "");
  if (url.protocol === "http:" && !(allowPrivate && (isLocalhostName(host) || (net.isIP(host) !== 0 && isPrivateAddress(host))))) {
    throw new BadUserInputError("url", "must be https (plain http is accepted only for localhost outside production)");
  }
  if (url.username || url.password) throw new BadUserInputError("url", "must not contain credentials");
  if (!allowPrivate && (isLocalhostName(host) || (net.isIP(host) !== 0 && isPrivateAddress(host)))) {
    throw new BadUserInputError("url", "must not name a private, loopback or link-local address (WEBHOOK_ALLOW_PRIVATE_URLS allows them)");
  }
  if (url.toString().length > 2000) throw new BadUserInputError("url", "must be at most 2000 characters");
  return url.toString();
}

/**
 * A dns.lookup for the delivery's connection that refuses private addresses:
 * the address checked is the one connected to, so a name that resolves to a
 * public address at creation and a private one later is refused too.
 */
export function safeLookup(allowPrivate: boolean): net.LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "", 4);
      const list = addresses as dns.LookupAddress[];
      const usable = allowPrivate ? list : list.filter((a) => !isPrivateAddress(a.address));
      if (usable.length === 0) {
        return callback(Object.assign(new Error(`${hostname} resolves only to private addresses`), { code: "EPRIVATE" }), "", 4);
      }
      if ((options as dns.LookupOptions).all) return (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, usable);
      callback(null, usable[0].address, usable[0].family);
    });
  };
}
