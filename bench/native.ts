/**
 * The benchmark's C helpers (bench/*.c): built with `cc -O2` into
 * bench/.build/ (ignored by git) the first time a run needs them. Without a C
 * compiler the run goes on without them and says so.
 */
const benchDir = new URL(".", import.meta.url).pathname;
const built = new Map<string, Promise<BuildResult>>();

/** The binary's path, or why there is none. */
export type BuildResult = { path: string; why?: undefined } | { path?: undefined; why: string };

/**
 * Compiles bench/NAME.c once per run.
 *
 * @example
 * ```ts
 * const loadgen = await buildNative("loadgen");
 * if (loadgen.why) console.error(`no C load generator: ${loadgen.why}`);
 * ```
 */
export function buildNative(name: string): Promise<BuildResult> {
  let result = built.get(name);
  if (result === undefined) {
    result = compile(name);
    built.set(name, result);
  }
  return result;
}

/** Where bench/NAME.c's binary is built. */
export function nativeBinary(name: string): string {
  return `${benchDir}.build/${name}`;
}

async function compile(name: string): Promise<BuildResult> {
  const path = nativeBinary(name);
  await Deno.mkdir(`${benchDir}.build`, { recursive: true });
  try {
    const out = await new Deno.Command("cc", {
      args: ["-O2", "-o", path, `${benchDir}${name}.c`],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    if (out.success) return { path };
    return { why: `cc failed: ${new TextDecoder().decode(out.stderr).trim().slice(0, 300)}` };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { why: "no C compiler (cc) on PATH" };
    return { why: `cc failed: ${e}` };
  }
}
