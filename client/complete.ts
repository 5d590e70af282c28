/**
 * Tab completion for `chat join`: commands, the names of people in the room
 * and room names, with a second Tab cycling through the candidates.
 *
 * @module
 */

/** What there is to complete from. */
export interface Known {
  commands: readonly string[];
  /** People in the room, ourselves left out. */
  names: readonly string[];
  rooms: readonly string[];
}

/** Commands that take a name first. */
const NAME_COMMANDS = new Set(["msg", "kick", "mute", "ban", "unban"]);

/**
 * The completions of `line` (typed up to the cursor): each candidate is the
 * whole line it would become.
 *
 * @example
 * ```ts
 * import { complete } from "./complete.ts";
 * const known = { commands: ["/join", "/msg"], names: ["piperina"], rooms: ["team2"] };
 * complete("/jo", known); // ["/join "]
 * complete("pip", known); // ["piperina: "]
 * complete("/join te", known); // ["/join team2"]
 * complete("/msg p", known); // ["/msg piperina "]
 * ```
 */
export function complete(line: string, known: Known): string[] {
  const starts = (word: string) => (candidate: string) =>
    candidate.toLowerCase().startsWith(word.toLowerCase());
  const command = /^(\/\S*)$/.exec(line);
  if (command) return known.commands.filter(starts(command[1])).map((c) => `${c} `);
  const room = /^(\/join\s+)#?(\S*)$/i.exec(line);
  if (room) return known.rooms.filter(starts(room[2])).map((r) => room[1] + r);
  const target = /^(\/(\S+)\s+)(\S*)$/.exec(line);
  if (target && NAME_COMMANDS.has(target[2].toLowerCase())) {
    return known.names.filter(starts(target[3])).map((n) => `${target[1]}${n} `);
  }
  const first = /^([^\s/]\S*)$/.exec(line);
  if (first) return known.names.filter(starts(first[1])).map((n) => `${n}: `);
  return [];
}

/**
 * A completer for `node:readline` that cycles: the first Tab gives the
 * first candidate, each further Tab on the line it gave the next one.
 *
 * @example
 * ```ts
 * import { Completer } from "./complete.ts";
 * const completer = new Completer(() => ({ commands: [], names: ["ada", "adam"], rooms: [] }));
 * completer.complete("ad")[0]; // ["ada: "]
 * completer.complete("ada: ")[0]; // ["adam: "]
 * ```
 */
export class Completer {
  readonly #known: () => Known;
  #cycle: { candidates: string[]; index: number } | undefined;

  constructor(known: () => Known) {
    this.#known = known;
  }

  /** What readline asks for: the line to put in place of the whole typed `line`. */
  complete(line: string): [string[], string] {
    const cycle = this.#cycle;
    if (cycle && line === cycle.candidates[cycle.index]) {
      cycle.index = (cycle.index + 1) % cycle.candidates.length;
      return [[cycle.candidates[cycle.index]], line];
    }
    const candidates = complete(line, this.#known());
    this.#cycle = candidates.length > 0 ? { candidates, index: 0 } : undefined;
    return [candidates.slice(0, 1), line];
  }
}
