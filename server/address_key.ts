/**
 * What counts as one address for per-address limits and bans.
 *
 * An IPv4 address is itself, also when it arrives IPv4-mapped
 * (`::ffff:10.0.0.7`, as a server listening on `::` sees it). An IPv6 host
 * can pick a new address in its /64 at will (privacy addresses), so for
 * IPv6 the /64 is the address.
 *
 * @module
 */

/**
 * The key that per-address limits and bans count by.
 *
 * @example
 * ```ts
 * import { addressKey } from "./address_key.ts";
 * addressKey("10.0.0.7"); // "10.0.0.7"
 * addressKey("::ffff:10.0.0.7"); // "10.0.0.7"
 * addressKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd"); // "2001:db8:1:2::/64"
 * ```
 */
export function addressKey(hostname: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(hostname);
  if (mapped) return mapped[1];
  if (!hostname.includes(":") || hostname === "::1") return hostname;
  const groups = expand(hostname.split("%")[0]);
  return groups ? `${groups.slice(0, 4).join(":")}::/64` : hostname;
}

/** The eight groups of an IPv6 address, without leading zeros, or undefined if malformed. */
function expand(address: string): string[] | undefined {
  const halves = address.split("::");
  if (halves.length > 2) return undefined;
  const head = halves[0] === "" ? [] : halves[0].split(":");
  const tail = halves.length === 2 && halves[1] !== "" ? halves[1].split(":") : [];
  const missing = 8 - head.length - tail.length;
  if (missing < 0 || (halves.length === 1 && missing !== 0)) return undefined;
  const groups = [...head, ...Array(missing).fill("0"), ...tail];
  if (!groups.every((g) => /^[0-9a-f]{1,4}$/i.test(g))) return undefined;
  return groups.map((g) => g.toLowerCase().replace(/^0+(?=.)/, ""));
}
