/**
 * Runs the C fan-out generator (bench/loadgen.c) once against a server and
 * reads its one-line JSON report. Its own deadlines (connect, barrier,
 * collect) bound it; the timeout here is the last resort.
 */
import type { DeliveryCounts } from "./gen.ts";
import type { HistogramData } from "./histogram.ts";
import type { Proto } from "./wire.ts";

export interface LoadgenOptions {
  binary: string;
  port: number;
  proto: Proto;
  clients: number;
  senders: number;
  /** Messages per second, per sender. */
  rate: number;
  /** Messages per sender. */
  count: number;
  payloadBytes: number;
  collectMs: number;
  /** Sets the senders' phases: the same seed, the same pattern of collisions. Random if absent. */
  seed?: number;
}

export interface LoadgenReport extends DeliveryCounts {
  joined: number;
  connectErrors: number;
  planned: number;
  sent: number;
  otherErrors: number;
  sendWindowMicros: number;
  collectMicros: number;
  /** The generator's own CPU time over the send and collect windows. */
  cpuSeconds: number;
  latency: HistogramData;
  lag: HistogramData;
}

/**
 * @example
 * ```ts
 * const r = await runLoadgen({ binary, port, proto: "chat", clients: 100, senders: 10,
 *   rate: 10, count: 100, payloadBytes: 64, collectMs: 3000 });
 * ```
 */
export async function runLoadgen(o: LoadgenOptions): Promise<LoadgenReport> {
  const args = [o.port, o.proto, o.clients, o.senders, o.rate, o.count, o.payloadBytes, o.collectMs]
    .concat(o.seed === undefined ? [] : [o.seed]).map(String);
  const sendMs = (1000 * o.count) / o.rate;
  const out = await new Deno.Command(o.binary, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(sendMs + o.collectMs + 60_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  if (!out.success || !text.startsWith("{")) {
    const err = new TextDecoder().decode(out.stderr).trim();
    throw new Error(`loadgen failed (exit ${out.code}): ${err || text || "no output"}`);
  }
  return JSON.parse(text);
}
