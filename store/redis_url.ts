/**
 * What a `--redis` URL says, checked before anything connects, so that a
 * wrong one is a bad command line rather than an unreachable server.
 *
 * @module
 */

/**
 * ioredis settings from a `redis://` or `rediss://` URL; throws an Error
 * saying what is wrong with anything else.
 *
 * @example
 * ```ts
 * import { redisSettings } from "./redis_url.ts";
 * redisSettings("redis://:s3cret@10.0.0.2:6380/2");
 * // { host: "10.0.0.2", port: 6380, password: "s3cret", db: 2 }
 * ```
 */
export function redisSettings(url: string): {
  host: string;
  port: number;
  password?: string;
  username?: string;
  db?: number;
  tls?: { ca?: string[] };
} {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`"${url}" is not a URL such as redis://127.0.0.1:6379`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new Error(`"${url}" must start with redis:// (or rediss:// for TLS)`);
  }
  const db = parsed.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) throw new Error(`"${url}": the database must be a number`);
  return {
    host: parsed.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: Number(parsed.port || 6379),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(db === "" ? {} : { db: Number(db) }),
    ...(parsed.protocol === "rediss:" ? { tls: {} } : {}),
  };
}
