/**
 * The benchmark scenarios. Each one starts a fresh server (so one scenario's
 * garbage, stalls or dropped clients cannot skew the next), connects clients
 * through the Generator, runs one or more measurement phases and returns flat
 * figures (see report.ts for the rows they fill).
 *
 * A phase = every sender sends `rate` msg/s for `durationMs` (count fixed in
 * advance), then the runner tells every receiver how many messages each
 * sender actually sent and waits, bounded, until all have arrived. A message
 * not in by then is lost. Each phase has its own epoch number in the marker,
 * so stragglers from an earlier phase never count in a later one.
 */
import {
  type CollectReply,
  type DeliveryCounts,
  type Generator,
  type Mode,
  type PhaseReply,
  type SlowReply,
} from "./gen.ts";
import { Histogram } from "./histogram.ts";
import { runLoadgen } from "./loadgen.ts";
import { buildNative } from "./native.ts";
import {
  CpuMeter,
  rssKiB,
  RssSampler,
  type RunningServer,
  type ServerSpec,
  startServer,
} from "./servers.ts";
import { echoes, nowMicros } from "./wire.ts";

export type Figures = Record<string, number | string | null>;

export interface RampStep {
  offeredDps: number;
  achievedDps: number;
  p99Ms: number;
  lossPct: number;
  lagP99Ms: number;
  ok: boolean;
  genCpu: number;
  serverCpu: number;
  /** CPU used by unrelated processes during the step (cores). */
  otherCpu: number;
  /** Error lines the receivers got (e.g. slow_consumer:154). */
  errors: string;
  disconnected: number;
}

export interface Sizes {
  fanoutMs: number;
  satStepMs: number;
  satSteps: number[];
  satBudgetMs: number;
  idleN: number;
  idleSettleMs: number;
  /** How long the idle connections stay before memory is read as settled. */
  idleRestMs: number;
  burstN: number;
  burstTimeoutMs: number;
  slowMs: number;
  /** How long to drain the slow client afterwards, looking for EOF. */
  slowCheckMs: number;
  soakMs: number;
  /** Scenario 9: deliveries a second offered, far above what a server relays, and for how long. */
  overloadDps: number;
  overloadMs: number;
  /** How long a phase waits for stragglers before counting them lost. */
  collectMs: number;
}

export const QUICK: Sizes = {
  fanoutMs: 1000,
  satStepMs: 400,
  satSteps: [50e3, 100e3, 200e3, 400e3, 800e3, 1.6e6, 3.2e6, 6.4e6],
  satBudgetMs: 6000,
  idleN: 500,
  idleSettleMs: 4000,
  idleRestMs: 1000,
  burstN: 1000,
  burstTimeoutMs: 3000,
  slowMs: 1500,
  slowCheckMs: 1000,
  soakMs: 3000,
  overloadDps: 5.12e6,
  overloadMs: 1000,
  collectMs: 1000,
};

export const FULL: Sizes = {
  fanoutMs: 10_000,
  satStepMs: 3000,
  satSteps: [
    25e3,
    50e3,
    100e3,
    200e3,
    300e3,
    400e3,
    600e3,
    800e3,
    1e6,
    1.5e6,
    2e6,
    2.5e6,
    3e6,
    4e6,
    5e6,
    6.4e6,
    8e6,
  ],
  satBudgetMs: 100_000,
  idleN: 10_000,
  idleSettleMs: 60_000,
  idleRestMs: 15_000,
  burstN: 1000,
  burstTimeoutMs: 10_000,
  slowMs: 5000,
  slowCheckMs: 3000,
  soakMs: 60_000,
  overloadDps: 5.12e6,
  overloadMs: 5000,
  collectMs: 3000,
};

/** Small text message size (bytes of marker + padding, before framing). */
const SMALL = 64;
const LARGE = 4096;

export interface PhaseStats {
  planned: number;
  sent: number;
  expected: number;
  delivered: number;
  lost: number;
  deliveredPct: number;
  dups: number;
  reorders: number;
  rateLimited: number;
  disconnected: number;
  slowConsumer: number;
  errorCodes: Record<string, number>;
  sendErrors: string[];
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  lagP99Ms: number;
  offeredDps: number;
  achievedDps: number;
  sendWindowMs: number;
  serverCpu: number;
  genCpu: number;
  otherCpu: number;
  collectMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);
const ms = (micros: number) => Math.round(micros) / 1000;
const mb = (kib: number) => Math.round(kib / 102.4) / 10; // KiB -> MiB, 1 decimal

/** One server under test plus the generator, for one scenario at a time. */
export class Context {
  server: RunningServer | null = null;
  startups: number[] = [];
  #epoch = 0;

  constructor(
    readonly spec: ServerSpec,
    readonly gen: Generator,
    readonly sizes: Sizes,
    readonly progress: (msg: string) => void,
    /** Shared by every server of a round: the fan-out senders' phases (see loadgen.c). */
    readonly seed?: number,
  ) {}

  get echo(): boolean {
    return echoes(this.spec.proto);
  }

  /** Stop whatever runs and start a fresh server; records its startup time. */
  async fresh(): Promise<RunningServer> {
    await this.end();
    this.server = await startServer(this.spec);
    this.startups.push(this.server.startupMs);
    return this.server;
  }

  /** Close all clients and stop the server (safe to call twice). */
  async end(): Promise<void> {
    try {
      await this.gen.close();
    } finally {
      const s = this.server;
      this.server = null;
      if (s) await s.stop();
    }
  }

  srv(): RunningServer {
    if (this.server === null || this.server.exited) {
      throw new Error(
        `${this.spec.name} server is not running${
          this.server?.stderrTail ? ": " + this.server.stderrTail.slice(-300) : ""
        }`,
      );
    }
    return this.server;
  }

  async connect(
    idxs: number[],
    mode: Mode,
    opts: { concurrency?: number; startAtMicros?: number; timeoutMs?: number } = {},
  ) {
    const s = this.srv();
    return await this.gen.connect({
      host: "127.0.0.1",
      port: s.port,
      proto: this.spec.proto,
      idxs,
      mode,
      concurrency: opts.concurrency ?? this.spec.connectConcurrency ?? 256,
      startAtMicros: opts.startAtMicros ?? 0,
      timeoutMs: opts.timeoutMs ?? 20_000,
    });
  }

  /**
   * Make sure every connected receiver is registered for broadcasts (the
   * naive server and ncat give no "joined" signal we can trust for that):
   * send one message at a time until all receivers have one, bounded.
   */
  async barrier(sender = 0): Promise<boolean> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const r = await this.phase([{ idx: sender, rate: 1000 }], 1, SMALL, 500);
      if (r.expected > 0 && r.lost === 0) return true;
    }
    return false;
  }

  async phase(
    senders: { idx: number; rate: number }[],
    durationMs: number,
    payloadBytes: number,
    collectTimeoutMs: number,
  ): Promise<PhaseStats> {
    const srv = this.srv();
    const epoch = ++this.#epoch;
    const cpu = new CpuMeter(srv.pid);
    const specs = senders.map((s) => ({
      ...s,
      count: Math.max(1, Math.round((s.rate * durationMs) / 1000)),
    }));
    const planned = specs.reduce((a, s) => a + s.count, 0);
    const bySender = this.gen.split(specs.map((s) => s.idx));
    const deadlineMs = Math.round(durationMs * 1.2) + 500;
    const startAtMicros = nowMicros() + 30_000; // time for every worker to get the command
    const replies = await this.gen.all<PhaseReply>("phase", (w) => ({
      epoch,
      senders: specs.filter((s) => bySender[w].includes(s.idx)),
      startAtMicros,
      payloadBytes,
      deadlineMs,
    }), deadlineMs + 10_000);
    const sentBy = replies.flatMap((r) => r.sent);
    const sent = sentBy.reduce((a, [, n]) => a + n, 0);
    const lag = new Histogram();
    for (const r of replies) lag.merge(r.lag);
    // A generator (or server) that falls behind stretches the send window:
    // rates are computed over the real window, never the nominal one.
    const lastSend = Math.max(...replies.map((r) => r.lastSendMicros));
    const windowS = Math.max(durationMs, (lastSend - startAtMicros) / 1000) / 1000;
    const collects = await this.gen.all<CollectReply>("collect", () => ({
      expected: sentBy,
      echo: this.echo,
      timeoutMs: collectTimeoutMs,
    }), collectTimeoutMs + 10_000);
    const c = cpu.read();
    const latency = new Histogram();
    const sum = (f: (r: CollectReply) => number) => collects.reduce((a, r) => a + f(r), 0);
    const errorCodes: Record<string, number> = {};
    for (const r of collects) {
      latency.merge(r.latency);
      for (const [k, v] of Object.entries(r.errorCodes)) errorCodes[k] = (errorCodes[k] ?? 0) + v;
    }
    return phaseStats({
      planned,
      sent,
      counts: {
        receivers: sum((r) => r.receivers),
        expected: sum((r) => r.expected),
        delivered: sum((r) => r.delivered),
        dups: sum((r) => r.dups),
        reorders: sum((r) => r.reorders),
        stale: sum((r) => r.stale),
        garbled: sum((r) => r.garbled),
        rateLimited: sum((r) => r.rateLimited),
        disconnected: sum((r) => r.disconnected),
        slowConsumer: sum((r) => r.slowConsumer),
      },
      errorCodes,
      sendErrors: [...new Set(replies.flatMap((r) => r.errors))],
      latency,
      lag,
      durationMs,
      windowS,
      cpu: c,
      collectMs: sum((r) => r.waitedMs) / collects.length,
      echo: this.echo,
    });
  }
}

/** Everything one phase measured, whichever generator ran it. */
interface PhaseMeasurements {
  planned: number;
  sent: number;
  counts: DeliveryCounts;
  errorCodes: Record<string, number>;
  sendErrors: string[];
  latency: Histogram;
  lag: Histogram;
  /** The nominal send duration. */
  durationMs: number;
  /** The real send window, never shorter than the nominal one. */
  windowS: number;
  cpu: { server: number; gen: number; other: number };
  collectMs: number;
  echo: boolean;
}

function phaseStats(m: PhaseMeasurements): PhaseStats {
  const { expected, delivered } = m.counts;
  const perMsg = m.counts.receivers - (m.echo ? 0 : 1);
  return {
    planned: m.planned,
    sent: m.sent,
    expected,
    delivered,
    lost: expected - delivered,
    deliveredPct: expected > 0 ? (100 * delivered) / expected : 0,
    dups: m.counts.dups,
    reorders: m.counts.reorders,
    rateLimited: m.counts.rateLimited,
    disconnected: m.counts.disconnected,
    slowConsumer: m.counts.slowConsumer,
    errorCodes: m.errorCodes,
    sendErrors: m.sendErrors,
    p50Ms: ms(m.latency.quantile(0.5)),
    p99Ms: ms(m.latency.quantile(0.99)),
    maxMs: ms(m.latency.max),
    lagP99Ms: ms(m.lag.quantile(0.99)),
    offeredDps: Math.round((m.planned * perMsg) / (m.durationMs / 1000)),
    achievedDps: Math.round(delivered / m.windowS),
    sendWindowMs: Math.round(m.windowS * 1000),
    serverCpu: round2(m.cpu.server),
    genCpu: round2(m.cpu.gen),
    otherCpu: round2(m.cpu.other),
    collectMs: Math.round(m.collectMs),
  };
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)] : 0;
}

function errorsText(e: Record<string, number>): string {
  const parts = Object.entries(e).map(([k, v]) => `${k}:${v}`);
  return parts.length ? parts.join(" ") : "";
}

/** Standard figures of one phase, prefixed. */
function phaseFigures(p: string, s: PhaseStats): Figures {
  return {
    [`${p}_p50_ms`]: s.p50Ms,
    [`${p}_p99_ms`]: s.p99Ms,
    [`${p}_max_ms`]: s.maxMs,
    [`${p}_delivered_pct`]: Math.floor(s.deliveredPct * 1000) / 1000,
    [`${p}_lost`]: s.lost,
    [`${p}_dups`]: s.dups,
    [`${p}_reorders`]: s.reorders,
    [`${p}_rate_limited`]: s.rateLimited,
    [`${p}_disconnected`]: s.disconnected,
    [`${p}_send_lag_p99_ms`]: s.lagP99Ms,
    [`${p}_server_cpu`]: s.serverCpu,
    [`${p}_gen_cpu`]: s.genCpu,
    [`${p}_other_cpu`]: s.otherCpu,
    [`${p}_errors`]: errorsText(s.errorCodes) || null,
  };
}

async function joinAll(ctx: Context, n: number, prefix: string): Promise<Figures> {
  const r = await ctx.connect(range(0, n), "active");
  const joined = r.joinMicros.filter((t) => t >= 0).length;
  if (!(await ctx.barrier())) ctx.progress(`${prefix}: barrier not reached, measuring anyway`);
  return {
    [`${prefix}_joined`]: joined,
    [`${prefix}_join_errors`]: errorsText(r.errors) || null,
  };
}

/**
 * Scenarios 1 and 2: steady fan-out, latency distribution. Measured with the
 * C generator (loadgen.ts) when it could be built: the Web Workers' cost per
 * socket read would otherwise be most of what is measured.
 */
async function fanout(
  ctx: Context,
  prefix: string,
  n: number,
  nSenders: number,
  rate: number,
): Promise<Figures> {
  const srv = await ctx.fresh();
  ctx.progress(
    `${prefix}: ${n} clients, ${nSenders} senders x ${rate} msg/s for ${ctx.sizes.fanoutMs} ms`,
  );
  const loadgen = await buildNative("loadgen");
  if (loadgen.path === undefined) {
    ctx.progress(`${prefix}: using the Web Workers: ${loadgen.why}`);
    const joinFigs = await joinAll(ctx, n, prefix);
    const senders = range(0, nSenders).map((idx) => ({ idx, rate }));
    const s = await ctx.phase(senders, ctx.sizes.fanoutMs, SMALL, ctx.sizes.collectMs);
    return {
      ...joinFigs,
      [`${prefix}_generator`]: "workers",
      [`${prefix}_offered_dps`]: s.offeredDps,
      ...phaseFigures(prefix, s),
    };
  }
  const cpu = new CpuMeter(srv.pid);
  const count = Math.max(1, Math.round((rate * ctx.sizes.fanoutMs) / 1000));
  const r = await runLoadgen({
    binary: loadgen.path,
    port: srv.port,
    proto: ctx.spec.proto,
    clients: n,
    senders: nSenders,
    rate,
    count,
    payloadBytes: SMALL,
    collectMs: ctx.sizes.collectMs,
    seed: ctx.seed,
  });
  const c = cpu.read();
  const windowS = Math.max(ctx.sizes.fanoutMs * 1000, r.sendWindowMicros) / 1e6;
  // The meter ran over connect and barrier too; the generator's CPU is its
  // own report over the send and collect windows, and not "other".
  const genCpu = r.cpuSeconds / (windowS + r.collectMicros / 1e6);
  const errorCodes: Record<string, number> = {};
  if (r.rateLimited) errorCodes.rate_limited = r.rateLimited;
  if (r.slowConsumer) errorCodes.slow_consumer = r.slowConsumer;
  if (r.otherErrors) errorCodes.other = r.otherErrors;
  const s = phaseStats({
    planned: r.planned,
    sent: r.sent,
    counts: r,
    errorCodes,
    sendErrors: [],
    latency: Histogram.from(r.latency),
    lag: Histogram.from(r.lag),
    durationMs: ctx.sizes.fanoutMs,
    windowS,
    cpu: { server: c.server, gen: genCpu, other: Math.max(0, c.other - genCpu) },
    collectMs: r.collectMicros / 1000,
    echo: ctx.echo,
  });
  return {
    [`${prefix}_joined`]: r.joined,
    [`${prefix}_join_errors`]: r.connectErrors ? `connect:${r.connectErrors}` : null,
    [`${prefix}_generator`]: "C",
    [`${prefix}_offered_dps`]: s.offeredDps,
    ...phaseFigures(prefix, s),
  };
}

/** Scenario 3: raise the offered load until loss or p99 > 100 ms. */
async function saturation(ctx: Context): Promise<{ figures: Figures; steps: RampStep[] }> {
  const n = 200;
  const nSenders = 20;
  await ctx.fresh();
  ctx.progress(`sat: connecting ${n} clients`);
  const joinFigs = await joinAll(ctx, n, "sat");
  const recipients = n - (ctx.echo ? 0 : 1);
  const steps: RampStep[] = [];
  const t0 = performance.now();
  let best: RampStep | null = null;
  let why = "all steps passed";
  for (const offered of ctx.sizes.satSteps) {
    if (performance.now() - t0 > ctx.sizes.satBudgetMs) {
      why = "time budget";
      break;
    }
    const rate = offered / recipients / nSenders;
    ctx.progress(`sat: offered ${offered / 1000}k deliveries/s`);
    const s = await ctx.phase(
      range(0, nSenders).map((idx) => ({ idx, rate })),
      ctx.sizes.satStepMs,
      SMALL,
      ctx.sizes.collectMs,
    );
    const step: RampStep = {
      offeredDps: offered,
      achievedDps: s.achievedDps,
      p99Ms: s.p99Ms,
      lossPct: s.expected ? Math.round((10000 * s.lost) / s.expected) / 100 : 100,
      lagP99Ms: s.lagP99Ms,
      ok: false,
      genCpu: s.genCpu,
      serverCpu: s.serverCpu,
      otherCpu: s.otherCpu,
      errors: errorsText(s.errorCodes),
      disconnected: s.disconnected,
    };
    const reasons = [];
    if (s.lost > 0) reasons.push(`lost ${s.lost}`);
    if (s.p99Ms >= 100) reasons.push(`p99 ${s.p99Ms} ms`);
    if (s.sent < 0.97 * s.planned) reasons.push(`generator sent only ${s.sent}/${s.planned}`);
    if (s.disconnected > 0) reasons.push(`${s.disconnected} clients disconnected`);
    if (s.achievedDps < 0.9 * s.offeredDps) {
      reasons.push(
        `achieved only ${s.achievedDps} deliveries/s (send window ${s.sendWindowMs} ms)`,
      );
    }
    step.ok = reasons.length === 0;
    steps.push(step);
    if (!step.ok) {
      if (step.errors) reasons.push(`error lines ${step.errors}`);
      why = `at ${offered / 1000}k: ${reasons.join(", ")}`;
      break;
    }
    best = step;
  }
  return {
    figures: {
      ...joinFigs,
      sat_max_dps: best?.achievedDps ?? 0,
      sat_p99_at_max_ms: best?.p99Ms ?? null,
      sat_gen_cpu_at_max: best?.genCpu ?? null,
      sat_server_cpu_at_max: best?.serverCpu ?? null,
      sat_stop_reason: why,
    },
    steps,
  };
}

/** Scenario 4: memory per idle connection. */
async function idle(ctx: Context): Promise<Figures> {
  const srv = await ctx.fresh();
  const n = Math.min(ctx.sizes.idleN, ctx.spec.maxConns ?? Infinity);
  await sleep(300);
  const before = rssKiB(srv.pid);
  ctx.progress(`idle: connecting ${n} idle clients`);
  const t0 = performance.now();
  const r = await ctx.connect(range(0, n), "idle", {
    concurrency: ctx.spec.connectConcurrency ?? 512,
    timeoutMs: 60_000,
  });
  const connectS = (performance.now() - t0) / 1000;
  const joined = r.joinMicros.filter((t) => t >= 0).length;
  // Wait until the server stops sending (join events etc.), bounded.
  ctx.progress(`idle: waiting for the server to settle`);
  const t1 = performance.now();
  let last = -1;
  let quiet = 0;
  let bytes = 0;
  while (performance.now() - t1 < ctx.sizes.idleSettleMs && quiet < 2) {
    await sleep(250);
    bytes = (await ctx.gen.stats()).bytes;
    quiet = bytes === last ? quiet + 1 : 0;
    last = bytes;
  }
  const settleS = (performance.now() - t1) / 1000;
  // Settled: what stays once the server has been left alone a while (and collected garbage).
  await sleep(ctx.sizes.idleRestMs);
  const after = rssKiB(ctx.srv().pid);
  const peak = rssKiB(ctx.srv().pid, "VmHWM");
  const stats = await ctx.gen.stats();
  const perConnection = (kib: number) =>
    joined > 0 ? Math.round((10 * (kib - before)) / joined) / 10 : null;
  return {
    idle_n: n,
    idle_joined: joined,
    idle_open_at_end: stats.open,
    idle_errors: errorsText(r.errors) || null,
    idle_connect_s: Math.round(connectS * 100) / 100,
    idle_settle_s: Math.round(settleS * 100) / 100,
    idle_still_sending: quiet < 2 ? "yes" : "no",
    idle_rx_mb: Math.round(stats.bytes / 1e5) / 10,
    idle_rss_before_mb: mb(before),
    idle_rss_after_mb: mb(after),
    idle_rss_peak_mb: mb(peak),
    idle_kb_per_conn: perConnection(after),
    idle_kb_per_conn_peak: perConnection(peak),
  };
}

/** Kernel-wide count of connections dropped on a full accept queue (-1 if unknown). */
function listenOverflows(): number {
  try {
    const lines = Deno.readTextFileSync("/proc/net/netstat").split("\n");
    const head = lines.findIndex((l) => l.startsWith("TcpExt:"));
    const names = lines[head].split(" ");
    const values = lines[head + 1].split(" ");
    const i = names.indexOf("ListenOverflows");
    return i > 0 ? Number(values[i]) : -1;
  } catch {
    return -1;
  }
}

/** Scenario 5: N clients connect at the same instant. */
async function burst(ctx: Context): Promise<Figures> {
  await ctx.fresh();
  const n = Math.min(ctx.sizes.burstN, ctx.spec.maxConns ?? Infinity);
  ctx.progress(`burst: ${n} clients at once`);
  const overflows = listenOverflows();
  const startAt = nowMicros() + 200_000;
  const r = await ctx.connect(range(0, n), "active", {
    concurrency: n,
    startAtMicros: startAt,
    timeoutMs: ctx.sizes.burstTimeoutMs,
  });
  const times = r.joinMicros.filter((t) => t >= 0).map((t) => (t - startAt) / 1000);
  const failed = n - times.length;
  return {
    burst_n: n,
    burst_all_in_ms: failed === 0 ? Math.round(Math.max(...times)) : null,
    burst_p50_ms: times.length ? Math.round(median(times) * 10) / 10 : null,
    burst_last_in_ms: times.length ? Math.round(Math.max(...times)) : null,
    burst_failed: failed,
    // SYNs dropped because the accept queue was full: each costs a 1 s retransmit.
    burst_listen_overflows: overflows < 0 ? null : listenOverflows() - overflows,
    burst_errors: errorsText(r.errors) || null,
  };
}

/** Scenario 6: one client never reads while 4 KB lines flow. */
async function slowConsumer(ctx: Context): Promise<Figures> {
  const n = 20;
  // 4 x 250 msg/s x 4 KB = 4 MB/s per reader: loopback kernel buffers
  // alone absorb ~4 MB for a reader that never reads, so the run must push
  // well past that before any server-side limit can kick in.
  const senders = range(0, 4).map((idx) => ({ idx, rate: 250 }));
  const dur = ctx.sizes.slowMs;
  // Baseline: same load, no slow client.
  await ctx.fresh();
  ctx.progress(`slow: baseline, ${n} clients, 4 KB lines`);
  await joinAll(ctx, n, "slow");
  const baseRss = new RssSampler(ctx.srv().pid);
  const base = await ctx.phase(senders, dur, LARGE, ctx.sizes.collectMs);
  baseRss.stop();
  // Same again with a client that never reads.
  const srv = await ctx.fresh();
  ctx.progress(`slow: with a client that never reads`);
  await joinAll(ctx, n, "slow");
  const sc = await ctx.connect([n], "noread");
  const rss = new RssSampler(srv.pid);
  const withSlow = await ctx.phase(senders, dur, LARGE, ctx.sizes.collectMs);
  rss.stop();
  const slow = (await ctx.gen.all<SlowReply[]>(
    "slowCheck",
    () => ({ timeoutMs: ctx.sizes.slowCheckMs }),
    10_000,
  ))
    .flat()[0];
  return {
    slow_joined: sc.joinMicros[0] >= 0 ? "yes" : "no",
    slow_disconnected: slow ? (slow.disconnected ? "yes" : "no") : null,
    slow_got_error_line: slow ? (slow.slowConsumerError ? "yes" : "no") : null,
    slow_how: slow?.how ?? null,
    slow_drained_mb: slow ? Math.round(slow.bytesDrained / 1e5) / 10 : null,
    slow_others_lost: withSlow.lost,
    slow_others_delivered_pct: Math.floor(withSlow.deliveredPct * 1000) / 1000,
    slow_others_disconnected: withSlow.disconnected,
    slow_base_p99_ms: base.p99Ms,
    slow_with_p99_ms: withSlow.p99Ms,
    slow_p99_ratio: base.p99Ms > 0 ? Math.round((100 * withSlow.p99Ms) / base.p99Ms) / 100 : null,
    slow_base_lost: base.lost,
    slow_base_rss_peak_mb: mb(baseRss.peak),
    slow_rss_peak_mb: mb(rss.peak),
    slow_send_errors: withSlow.sendErrors.join(" ") || null,
  };
}

/** How long the overload scenario waits for what is still owed before counting it lost. */
const OVERLOAD_COLLECT_MS = 15_000;

/**
 * Scenario 9: offered far more than the server can relay (by default the
 * 5.1M deliveries/s of the performance issue: 20 senders x 1280/s to 200
 * clients). A server that handles overload slows the senders (they send
 * less than planned) and cuts no reader that keeps reading.
 */
async function overload(ctx: Context): Promise<Figures> {
  const n = 200;
  const nSenders = 20;
  const srv = await ctx.fresh();
  ctx.progress(`overload: connecting ${n} clients`);
  await joinAll(ctx, n, "over");
  const offered = ctx.sizes.overloadDps;
  const rate = offered / (n - (ctx.echo ? 0 : 1)) / nSenders;
  ctx.progress(`overload: offered ${offered / 1000}k deliveries/s`);
  const rss = new RssSampler(srv.pid);
  // What is behind is owed, not lost: wait long enough for a backlog to drain.
  const s = await ctx.phase(
    range(0, nSenders).map((idx) => ({ idx, rate })),
    ctx.sizes.overloadMs,
    SMALL,
    Math.max(ctx.sizes.collectMs, OVERLOAD_COLLECT_MS),
  );
  rss.stop();
  return {
    over_offered_dps: offered,
    over_achieved_dps: s.achievedDps,
    over_disconnected: s.disconnected,
    over_lost: s.lost,
    over_sent_pct: s.planned ? Math.round((1000 * s.sent) / s.planned) / 10 : null,
    over_lag_p99_ms: s.lagP99Ms,
    over_rss_peak_mb: mb(rss.peak),
    over_errors: errorsText(s.errorCodes) || null,
  };
}

/** Scenario 7: moderate steady load for a while; loss and RSS drift. */
async function soak(ctx: Context): Promise<Figures> {
  const srv = await ctx.fresh();
  const n = 100;
  ctx.progress(`soak: ${n} clients, 10 x 20 msg/s for ${ctx.sizes.soakMs / 1000} s`);
  const joinFigs = await joinAll(ctx, n, "soak");
  const rss = new RssSampler(srv.pid, 250);
  const s = await ctx.phase(
    range(0, 10).map((idx) => ({ idx, rate: 20 })),
    ctx.sizes.soakMs,
    SMALL,
    3000,
  );
  rss.stop();
  // Drift from the end of the first tenth (warm-up) to the end.
  const samples = rss.samples.filter((x) => x > 0);
  const start = samples[Math.floor(samples.length / 10)] ?? 0;
  const end = samples[samples.length - 1] ?? 0;
  return {
    ...joinFigs,
    soak_s: ctx.sizes.soakMs / 1000,
    ...phaseFigures("soak", s),
    soak_rss_start_mb: mb(start),
    soak_rss_end_mb: mb(end),
    soak_rss_drift_mb: mb(end - start),
    soak_rss_peak_mb: mb(rss.peak),
    // RSS every ~5 s (MiB), to tell steady growth from a plateau.
    soak_rss_series_mb: samples.filter((_, i) => i % 20 === 0).map(mb).join(" "),
  };
}

export interface ServerResult {
  figures: Figures;
  steps: RampStep[];
  errors: Record<string, string>;
}

export const SCENARIOS = [
  "startup",
  "fanoutA",
  "fanoutB",
  "saturation",
  "idle",
  "burst",
  "slow",
  "soak",
  "overload",
];

/** Run every scenario against one server; startup figures come from all starts. */
export async function runAll(ctx: Context, only: string[]): Promise<ServerResult> {
  const out: ServerResult = { figures: {}, steps: [], errors: {} };
  const run: Record<string, () => Promise<Figures>> = {
    // Scenario 8; every later fresh start adds a sample too.
    startup: async () => {
      for (let i = 0; i < 3; i++) await ctx.fresh();
      return {};
    },
    fanoutA: () => fanout(ctx, "a", 100, 10, 10),
    fanoutB: () => fanout(ctx, "b", 500, 5, 20),
    saturation: async () => {
      const r = await saturation(ctx);
      out.steps = r.steps;
      return r.figures;
    },
    idle: () => idle(ctx),
    burst: () => burst(ctx),
    slow: () => slowConsumer(ctx),
    soak: () => soak(ctx),
    overload: () => overload(ctx),
  };
  for (const name of SCENARIOS.filter((s) => only.includes(s))) {
    const t0 = performance.now();
    try {
      Object.assign(out.figures, await run[name]());
      ctx.progress(`${name} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      out.errors[name] = msg;
      ctx.progress(`${name} failed: ${msg}`);
    } finally {
      await ctx.end().catch(() => {});
    }
  }
  if (ctx.startups.length) {
    out.figures.startup_ms = Math.round(median(ctx.startups) * 10) / 10;
    out.figures.startup_first_ms = Math.round(ctx.startups[0] * 10) / 10;
    out.figures.startup_max_ms = Math.round(Math.max(...ctx.startups) * 10) / 10;
  }
  return out;
}
