/**
 * Rounds of the benchmark. This machine is shared and noisy, so one run of
 * each server says little: every server runs once per round, in an order
 * that alternates from round to round (so that neither always goes first
 * on a fresh or a tired machine), and each figure is reported as the median
 * of its rounds with their spread. A ratio to a reference server (the C
 * epoll broadcaster, the naive port) is taken within each round, where both
 * ran minutes apart, and then summarised the same way.
 *
 * @module
 */

import type { Figures, RampStep, ServerResult } from "./scenarios.ts";

/** A figure over the rounds: its median, and the least and most it was. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  /** How many rounds had it. */
  n: number;
}

/** Every server's figures summarised over the rounds. */
export interface Summary {
  /** The median of each numeric figure; for a text figure, the median round's. */
  figures: Figures;
  /** Each numeric figure's spread over the rounds. */
  spread: Record<string, Spread>;
  /** Per reference server: each figure's ratio to it, taken within a round. */
  ratios: Record<string, Record<string, Spread>>;
  /** The saturation ramp of the round with the median sustainable load. */
  steps: RampStep[];
  errors: Record<string, string>;
}

/**
 * The order servers run in during round `round` (from 0): as given, then
 * reversed, and so on.
 *
 * @example
 * ```ts
 * import { roundOrder } from "./rounds.ts";
 * roundOrder(["chat", "epoll"], 1); // ["epoll", "chat"]
 * ```
 */
export function roundOrder(servers: string[], round: number): string[] {
  return round % 2 === 0 ? [...servers] : [...servers].reverse();
}

/**
 * The median (the lower middle one of an even count, so that it is a value
 * that was measured) and the range of some numbers; undefined for none.
 *
 * @example
 * ```ts
 * import { spread } from "./rounds.ts";
 * spread([3, 1, 2]); // { median: 2, min: 1, max: 3, n: 3 }
 * ```
 */
export function spread(values: number[]): Spread | undefined {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  return {
    median: sorted[Math.floor((sorted.length - 1) / 2)],
    min: sorted[0],
    max: sorted[sorted.length - 1],
    n: sorted.length,
  };
}

/**
 * Summarises rounds of results (one record of servers per round), with
 * ratios to each of `references` that ran.
 *
 * @example
 * ```ts
 * import { summarize } from "./rounds.ts";
 * const round = (chat: number, epoll: number) => ({
 *   chat: { figures: { a_p99_ms: chat }, steps: [], errors: {} },
 *   epoll: { figures: { a_p99_ms: epoll }, steps: [], errors: {} },
 * });
 * const summary = summarize([round(2, 1), round(3, 2), round(4, 2)], ["epoll"]);
 * summary.chat.ratios.epoll.a_p99_ms.median; // 2
 * ```
 */
export function summarize(
  rounds: Record<string, ServerResult>[],
  references: string[],
): Record<string, Summary> {
  const names = [...new Set(rounds.flatMap((round) => Object.keys(round)))];
  const summary: Record<string, Summary> = {};
  for (const name of names) {
    const runs = rounds.flatMap((round) => (round[name] ? [round[name]] : []));
    const keys = [...new Set(runs.flatMap((run) => Object.keys(run.figures)))];
    const figures: Figures = {};
    const spreads: Record<string, Spread> = {};
    // The round whose sustainable load is the median stands for the ramp and the text figures.
    const bySaturation = [...runs].sort((a, b) =>
      Number(a.figures.sat_max_dps ?? 0) - Number(b.figures.sat_max_dps ?? 0)
    );
    const middle = bySaturation[Math.floor((bySaturation.length - 1) / 2)];
    for (const key of keys) {
      const numbers = runs.map((run) => run.figures[key]).filter((v) => typeof v === "number");
      const s = numbers.length > 0 ? spread(numbers as number[]) : undefined;
      if (s) {
        spreads[key] = s;
        figures[key] = s.median;
      } else {
        figures[key] = middle.figures[key] ?? runs.find((run) => run.figures[key] != null)
          ?.figures[key] ??
          null;
      }
    }
    const errors: Record<string, string> = {};
    runs.forEach((run, i) => {
      for (const [scenario, error] of Object.entries(run.errors)) {
        errors[rounds.length > 1 ? `${scenario} (round ${i + 1})` : scenario] = error;
      }
    });
    summary[name] = { figures, spread: spreads, ratios: {}, steps: middle.steps, errors };
  }
  for (const reference of references) {
    if (!names.includes(reference)) continue;
    for (const name of names) {
      if (name === reference) continue;
      const perKey: Record<string, number[]> = {};
      for (const round of rounds) {
        const mine = round[name]?.figures;
        const theirs = round[reference]?.figures;
        if (!mine || !theirs) continue;
        for (const [key, value] of Object.entries(mine)) {
          const base = theirs[key];
          if (typeof value !== "number" || typeof base !== "number" || base === 0) continue;
          (perKey[key] ??= []).push(value / base);
        }
      }
      const ratios: Record<string, Spread> = {};
      for (const [key, values] of Object.entries(perKey)) ratios[key] = spread(values)!;
      summary[name].ratios[reference] = ratios;
    }
  }
  return summary;
}
