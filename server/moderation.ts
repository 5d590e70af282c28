/**
 * What operators decide, kept apart from who is online: mutes, bans and
 * the message of the day. Times are wall-clock milliseconds, so that bans
 * stored with `--db` mean the same after a restart.
 *
 * @module
 */

/** A ban: a name (by its key) and, when it was online, the address it came from. */
export interface BanRecord {
  /** The banned name's key, as `nameKey` gives it. */
  key: string;
  /** The name as it was shown. */
  name: string;
  /** The address it came from, if it was online. */
  address?: string;
  /** When the ban ends; absent: until lifted. */
  until?: number;
  reason: string;
}

/**
 * Mutes, bans and the message of the day of one server.
 *
 * @example
 * ```ts
 * import { Moderation } from "./moderation.ts";
 * const moderation = new Moderation();
 * moderation.ban({ key: "eve", name: "eve", address: "10.0.0.9", reason: "spam" });
 * moderation.bannedFor("mallory", "10.0.0.9", Date.now())?.name; // "eve": same address
 * moderation.mute("bob", "bob", Date.now() + 60_000, "10.0.0.5");
 * moderation.mutedFor("bob2", "10.0.0.5", Date.now()) > 0; // true: renamed, same address
 * ```
 */
export class Moderation {
  /** The message of the day; `""` for none. */
  motd = "";
  readonly #mutes = new Map<string, { name: string; until: number; address?: string }>();
  readonly #bans = new Map<string, BanRecord>();

  constructor(bans: BanRecord[] = []) {
    for (const ban of bans) this.#bans.set(ban.key, ban);
  }

  /**
   * Silences a name (by its key), and the address it is online from if
   * known, until `until`: everyone on that address, as with a ban.
   */
  mute(key: string, name: string, until: number, address?: string): void {
    this.#mutes.set(key, address === undefined ? { name, until } : { name, until, address });
  }

  /** The name of the mute that silences this key or address, if one does. */
  mutedBy(key: string, address: string, now: number): string | undefined {
    for (const [muted, mute] of this.#mutes) {
      if (mute.until > now && (muted === key || mute.address === address)) return mute.name;
    }
    return undefined;
  }

  /** Whether anyone is muted: a check cheaper than a name's key, for every message. */
  get anyMuted(): boolean {
    return this.#mutes.size > 0;
  }

  /**
   * How long a name's key, or its address, is still muted, in ms; 0 if
   * neither is. The address keeps a mute through a rename or a reconnect
   * under another name.
   */
  mutedFor(key: string, address: string, now: number): number {
    let longest = 0;
    for (const [muted, mute] of this.#mutes) {
      if (mute.until <= now) {
        this.#mutes.delete(muted);
      } else if (muted === key || mute.address === address) {
        longest = Math.max(longest, mute.until - now);
      }
    }
    return longest;
  }

  /** Lifts a mute on a name's key; false if there was none. */
  unmute(key: string): boolean {
    return this.#mutes.delete(key);
  }

  /** Records a ban, replacing any earlier one on that name. */
  ban(record: BanRecord): void {
    this.#bans.set(record.key, record);
  }

  /** Lifts the ban and the mute on a name's key; returns the ban there was. */
  unban(key: string): BanRecord | undefined {
    const ban = this.#bans.get(key);
    this.#bans.delete(key);
    this.#mutes.delete(key);
    return ban;
  }

  /** The ban that keeps out this name's key or this address, if one is in force. */
  bannedFor(key: string, address: string, now: number): BanRecord | undefined {
    for (const ban of this.#bans.values()) {
      if (ban.until !== undefined && ban.until <= now) {
        this.#bans.delete(ban.key);
        continue;
      }
      if (ban.key === key || (ban.address !== undefined && ban.address === address)) return ban;
    }
    return undefined;
  }
}
