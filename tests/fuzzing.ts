/**
 * Settings shared by the property and fuzz tests: the seed and how many
 * cases to run. A CI run uses a new random seed each time and a number of
 * cases that keeps it quick; `deno task fuzz` runs many more. Every failure
 * names its seed, and `FUZZ_SEED=<seed>` (with `--allow-env`) replays it.
 *
 * The environment is read only where the test has permission to read it
 * (`deno task fuzz` gives it); otherwise the defaults apply.
 *
 * @module
 */

import fc, { type IAsyncProperty, type IProperty, type Parameters } from "fast-check";

function fromEnv(name: string): string | undefined {
  const allowed = Deno.permissions.querySync({ name: "env", variable: name }).state === "granted";
  return allowed ? Deno.env.get(name) : undefined;
}

function positiveInteger(name: string): number | undefined {
  const text = fromEnv(name);
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${name} must be a whole number, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** The seed of this run: `FUZZ_SEED`, or a new random one. */
export const SEED: number = positiveInteger("FUZZ_SEED") ?? Math.floor(Math.random() * 2 ** 31);

/** `FUZZ_RUNS`, when set: how many cases each property runs. */
export const FUZZ_RUNS: number | undefined = positiveInteger("FUZZ_RUNS");

/** How to replay this run, for a failure message. */
export const REPLAY = `replay with: FUZZ_SEED=${SEED} deno task fuzz`;

/**
 * fast-check's parameters for a property: this run's seed, and `FUZZ_RUNS`
 * cases, or `ciRuns` by default. fast-check names the seed (and the path of
 * the shrunk case) when a property fails.
 */
export function params<T>(ciRuns: number): Parameters<T> {
  return { seed: SEED, numRuns: FUZZ_RUNS ?? ciRuns };
}

/** Runs a property; a failure also says how to replay it. */
export function check<T>(property: IProperty<T>, ciRuns: number): void {
  try {
    fc.assert(property, params<T>(ciRuns));
  } catch (error) {
    if (error instanceof Error) error.message += `\n${REPLAY}`;
    throw error;
  }
}

/**
 * Runs an asynchronous property (against a live server: no shrinking). A
 * failure names the seed, says how to replay it, and shows the failing case
 * through `describe`, since it may be megabytes of bytes.
 */
export async function checkAsync<T>(
  property: IAsyncProperty<[T]>,
  numRuns: number,
  describe: (counterexample: T) => string,
): Promise<void> {
  const details = await fc.check(property, { seed: SEED, numRuns, endOnFailure: true });
  if (!details.failed) return;
  const error = details.errorInstance;
  const why = error instanceof Error ? error.message : String(error);
  const found = details.counterexample as [T] | null | undefined;
  const example = found ? `\n${describe(found[0])}` : "";
  throw new Error(
    `failed on run ${details.numRuns} of ${numRuns} (seed ${details.seed}): ${why}${example}\n${REPLAY}`,
    { cause: error },
  );
}
