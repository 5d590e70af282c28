/**
 * Servers under test: how to start each one on a free loopback port, how long
 * it took to accept its first connection, how to read its RSS / CPU from
 * /proc, and how to make sure it is gone afterwards.
 *
 * Every spawned child is tracked in `children` so that the runner can kill
 * them all on error, SIGINT or SIGTERM (see killAll); stop() escalates from
 * SIGTERM to SIGKILL with bounded waits.
 */
import { buildNative, nativeBinary } from "./native.ts";
import type { Proto } from "./wire.ts";

export interface ServerSpec {
  name: string;
  proto: Proto;
  /** Why it cannot run here, or null. */
  unavailable: () => Promise<string | null>;
  command: (port: number) => { cmd: string; args: string[]; cwd: string };
  /** Connections the server can hold, if it has a hard cap below ours. */
  maxConns?: number;
  /**
   * Greets every connection and must not see it closed before it has
   * accepted it (ncat quits on getpeername() failure): the startup probe
   * then waits for the greeting before closing.
   */
  greets?: boolean;
  /** Parallel connects when setting up a scenario (listen backlog). */
  connectConcurrency?: number;
  note?: string;
}

const benchDir = new URL(".", import.meta.url).pathname;
export const repoDir = new URL("..", import.meta.url).pathname;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function which(cmd: string): Promise<string | null> {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await exists(`${dir}/${cmd}`)) return `${dir}/${cmd}`;
  }
  return null;
}

/**
 * The runtime flags `chat` ships with: the `--allow-*` and `--v8-flags` of
 * the compile task in deno.json, so the benchmark runs the server as users do.
 */
export async function shippedFlags(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${repoDir}deno.json`));
  return (config.tasks.compile as string).split(/\s+/)
    .filter((word) =>
      word.startsWith("--allow-") || word.startsWith("--unstable-") ||
      word.startsWith("--v8-flags")
    );
}

let CHAT_FLAGS = await shippedFlags();

/**
 * Runs `chat` with other runtime flags than it ships with, for experiments
 * and profiles (`--chat-flags "--allow-all --cpu-prof"`).
 */
export function setChatFlags(flags: string[]): void {
  CHAT_FLAGS = flags;
}

/** A reference line server written for the benchmark, run with Deno. */
function denoReference(name: string, file: string, note?: string): ServerSpec {
  return {
    name,
    proto: "line",
    note,
    unavailable: () => Promise.resolve(null),
    command: (port) => ({
      cmd: Deno.execPath(),
      args: ["run", "--allow-net", `${benchDir}${file}`, "--port", String(port)],
      cwd: repoDir,
    }),
  };
}

/** ncat --chat uses select(): it cannot go past FD_SETSIZE (1024) descriptors. */
const NCAT_MAX_CONNS = 1000;

/**
 * `chat` as it ships, or (with `v8Flags`) with other V8 flags in place of
 * the shipped ones, for the study of what each costs and buys.
 */
function chatServer(name: string, v8Flags?: string[], note?: string): ServerSpec {
  const flags = () =>
    v8Flags === undefined
      ? CHAT_FLAGS
      : [...CHAT_FLAGS.filter((flag) => !flag.startsWith("--v8-flags")), ...v8Flags];
  return {
    name,
    note,
    proto: "chat",
    unavailable: async () => {
      if (!await exists(`${repoDir}main.ts`)) return "main.ts does not exist yet";
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", ...flags(), "main.ts", "serve", "--help"],
        cwd: repoDir,
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(20_000),
      }).output().catch((e) => ({ success: false, stderr: new TextEncoder().encode(String(e)) }));
      if (!out.success) {
        const err = new TextDecoder().decode(out.stderr).trim().split("\n").slice(-3).join(" | ");
        return `'main.ts serve --help' failed: ${err}`;
      }
      return null;
    },
    command: (port) => ({
      cmd: Deno.execPath(),
      args: [
        "run",
        ...flags(),
        "main.ts",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--quiet",
        "--rate",
        "1000000",
        "--burst",
        "1000000",
        // The byte rate too: every load client comes from one address, whose byte allowance
        // would otherwise be what the saturation ramp measures.
        "--rate-bytes",
        "1073741824",
        "--max-clients",
        "20000",
        "--max-per-address", // every load client comes from 127.0.0.1
        "20000",
        "--idle-timeout", // load clients that only listen do not answer pings
        "86400",
        "--max-queue-bytes",
        "262144",
      ],
      cwd: repoDir,
    }),
  };
}

export const SERVERS: Record<string, ServerSpec> = {
  chat: chatServer("chat"),
  "chat-v8-none": chatServer("chat-v8-none", [], "chat-v8-none: chat without any V8 flag"),
  "chat-v8-ofs": chatServer(
    "chat-v8-ofs",
    ["--v8-flags=--optimize-for-size"],
    "chat-v8-ofs: chat with --optimize-for-size (shipped until 2026-11-28) instead",
  ),
  "chat-v8-semi": chatServer(
    "chat-v8-semi",
    ["--v8-flags=--max-semi-space-size=1"],
    "chat-v8-semi: chat with --max-semi-space-size=1 alone (shipped until 2026-11-28 03:00)",
  ),
  "chat-v8-semi1": chatServer(
    "chat-v8-semi1",
    [
      "--v8-flags=--max-semi-space-size=1,--memory-reducer-delay-ms=2000,--gc-memory-reducer-start-delay-ms=2000",
    ],
    "chat-v8-semi1: chat with a young generation of 1 MiB a half (shipped until 2026-11-28 07:00)",
  ),
  "chat-v8-gc": chatServer(
    "chat-v8-gc",
    [
      "--v8-flags=--max-semi-space-size=4,--memory-reducer-delay-ms=2000,--gc-memory-reducer-start-delay-ms=2000,--single-threaded-gc,--no-allocation-site-pretenuring",
    ],
    "chat-v8-gc: chat with the garbage collector on the main thread only and no pretenuring, besides the shipped flags",
  ),
  naive: denoReference("naive", "naive_server.ts"),
  floor: denoReference(
    "floor",
    "floor_server.ts",
    "floor: the least a Deno broadcaster can do (bench/floor_server.ts), not a correct server",
  ),
  epoll: {
    name: "epoll",
    proto: "line",
    note: "epoll: a C epoll broadcaster (bench/epoll_server.c), the generator's own floor",
    unavailable: async () => (await buildNative("epoll_server")).why ?? null,
    command: (port) => ({
      cmd: nativeBinary("epoll_server"),
      args: [String(port)],
      cwd: repoDir,
    }),
  },
  ncat: {
    name: "ncat",
    proto: "ncat",
    maxConns: NCAT_MAX_CONNS,
    // listen() backlog of 10: more parallel connects overflow the accept
    // queue and those clients wait for SYN-ACK retransmits (1 s, 3 s, ...).
    connectConcurrency: 8,
    greets: true,
    note: `ncat runs with --max-conns ${NCAT_MAX_CONNS} (select()-based, FD_SETSIZE 1024)`,
    unavailable: async () => (await which("ncat")) ? null : "ncat is not installed",
    command: (port) => ({
      cmd: "ncat",
      args: [
        "--chat",
        "--listen",
        "--max-conns",
        String(NCAT_MAX_CONNS),
        "127.0.0.1",
        String(port),
      ],
      cwd: repoDir,
    }),
  },
};

/** A free loopback port: bind port 0, read the port, release it. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

const children = new Set<Deno.ChildProcess>();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export class RunningServer {
  exited = false;
  stderrTail = "";
  constructor(
    readonly spec: ServerSpec,
    readonly child: Deno.ChildProcess,
    readonly port: number,
    public startupMs = 0,
  ) {
    child.status.then(() => (this.exited = true));
    this.#drainStderr();
  }

  get pid(): number {
    return this.child.pid;
  }

  /** Keep the last few KB of stderr for error messages; never block the child. */
  async #drainStderr(): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of this.child.stderr) {
        this.stderrTail = (this.stderrTail + dec.decode(chunk)).slice(-4000);
      }
    } catch { /* child gone */ }
  }

  async stop(): Promise<void> {
    await killChild(this.child);
  }
}

async function killChild(child: Deno.ChildProcess): Promise<void> {
  for (const [sig, waitMs] of [["SIGTERM", 2000], ["SIGKILL", 3000]] as const) {
    try {
      child.kill(sig);
    } catch { /* already exited */ }
    const done = await Promise.race([
      child.status.then(() => true),
      sleep(waitMs).then(() => false),
    ]);
    if (done) break;
  }
  children.delete(child);
}

/** Kill every child still running (error, SIGINT, end of run). */
export async function killAll(): Promise<void> {
  await Promise.all([...children].map(killChild));
}

/**
 * Spawn the server and poll-connect every 2 ms until it accepts; startupMs is
 * spawn-to-first-successful-connect. Throws (after killing it) if it exits or
 * does not accept within timeoutMs.
 */
export async function startServer(spec: ServerSpec, timeoutMs = 10_000): Promise<RunningServer> {
  const port = freePort();
  const { cmd, args, cwd } = spec.command(port);
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, cwd, stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  children.add(child);
  const srv = new RunningServer(spec, child, port);
  while (performance.now() - t0 < timeoutMs) {
    if (srv.exited) break;
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      srv.startupMs = performance.now() - t0;
      if (spec.greets) {
        const read = c.read(new Uint8Array(4096)).catch(() => null);
        await Promise.race([read, sleep(1000)]);
      }
      c.close();
      return srv;
    } catch {
      await sleep(2);
    }
  }
  await srv.stop();
  throw new Error(
    `${spec.name} did not accept on port ${port} within ${timeoutMs} ms` +
      (srv.stderrTail ? `: ${srv.stderrTail.trim().split("\n").slice(-3).join(" | ")}` : ""),
  );
}

/** VmRSS of a process in KiB (0 if gone). */
export function rssKiB(pid: number, field: "VmRSS" | "VmHWM" = "VmRSS"): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = status.match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, "m"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

const TICKS_PER_SEC = 100; // USER_HZ on Linux

/** utime + stime of a process (or "self"), in seconds. */
export function cpuSeconds(pid: number | "self"): number {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // Fields after the ")" closing the command name; utime/stime are 14/15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SEC;
  } catch {
    return 0;
  }
}

/** Busy CPU seconds of the whole machine (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  try {
    const f = Deno.readTextFileSync("/proc/stat").split("\n")[0].trim().split(/\s+/).slice(1)
      .map(Number);
    // user nice system idle iowait irq softirq steal (guest is inside user)
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
    return busy / TICKS_PER_SEC;
  } catch {
    return 0;
  }
}

/**
 * CPU use (in cores) over an interval of the server, of this generator and
 * of everything else on the machine: "other" well above zero means the
 * figures were disturbed by an unrelated load.
 */
export class CpuMeter {
  #t = performance.now();
  #srv: number;
  #gen = cpuSeconds("self");
  #all = machineBusySeconds();
  constructor(private pid: number) {
    this.#srv = cpuSeconds(pid);
  }
  read(): { server: number; gen: number; other: number } {
    const dt = (performance.now() - this.#t) / 1000;
    if (dt <= 0) return { server: 0, gen: 0, other: 0 };
    const server = (cpuSeconds(this.pid) - this.#srv) / dt;
    const gen = (cpuSeconds("self") - this.#gen) / dt;
    const all = (machineBusySeconds() - this.#all) / dt;
    return { server, gen, other: Math.max(0, all - server - gen) };
  }
}

/** Samples a process's RSS every intervalMs until stopped; bounded by maxSamples. */
export class RssSampler {
  samples: number[] = [];
  #timer: ReturnType<typeof setInterval>;
  constructor(pid: number, intervalMs = 50, maxSamples = 20_000) {
    this.samples.push(rssKiB(pid));
    this.#timer = setInterval(() => {
      if (this.samples.length >= maxSamples) return this.stop();
      this.samples.push(rssKiB(pid));
    }, intervalMs);
  }
  stop(): void {
    clearInterval(this.#timer);
  }
  get peak(): number {
    return Math.max(0, ...this.samples);
  }
}
