/**
 * The load generator as seen from the runner: a pool of Web Workers
 * (worker.ts), each owning the clients whose index modulo the pool size is
 * its own, driven with request/response RPC. Every call has a timeout, so a
 * wedged worker turns into an error instead of a hang.
 */
import type { HistogramData } from "./histogram.ts";
import type { ConnectRequest } from "./wire.ts";

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

export interface PhaseReply {
  sent: [number, number][];
  errors: string[];
  lag: HistogramData;
  lastSendMicros: number;
}

/** What the receivers of one phase counted, whichever generator ran it. */
export interface DeliveryCounts {
  receivers: number;
  expected: number;
  delivered: number;
  dups: number;
  reorders: number;
  stale: number;
  garbled: number;
  rateLimited: number;
  disconnected: number;
  slowConsumer: number;
}

export interface CollectReply extends DeliveryCounts {
  waitedMs: number;
  errorCodes: Record<string, number>;
  latency: HistogramData;
}

export interface SlowReply {
  idx: number;
  disconnected: boolean;
  slowConsumerError: boolean;
  bytesDrained: number;
  how: string;
}

export type { Mode } from "./wire.ts";

export class Generator {
  #workers: Worker[] = [];
  #pending = new Map<number, Pending>();
  #nextId = 1;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
      w.onmessage = (ev) => this.#onReply(ev.data);
      w.onerror = (ev) => {
        ev.preventDefault();
        this.#failAll(new Error(`generator worker ${i} crashed: ${ev.message}`));
      };
      this.#workers.push(w);
    }
  }

  #onReply(msg: { id: number; ok: boolean; result?: unknown; error?: string }): void {
    const p = this.#pending.get(msg.id);
    if (p === undefined) return; // timed out earlier
    this.#pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.ok) p.resolve(msg.result);
    else p.reject(new Error(msg.error));
  }

  #failAll(e: Error): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(e);
      this.#pending.delete(id);
    }
  }

  /** Worker that owns client idx. */
  owner(idx: number): number {
    return idx % this.size;
  }

  call<T>(worker: number, cmd: string, req: object, timeoutMs: number): Promise<T> {
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`generator worker ${worker}: '${cmd}' timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      this.#workers[worker].postMessage({ id, cmd, ...req });
    });
  }

  /** Same command to every worker, per-worker request built by `req(w)`. */
  all<T>(cmd: string, req: (w: number) => object, timeoutMs: number): Promise<T[]> {
    return Promise.all(this.#workers.map((_, w) => this.call<T>(w, cmd, req(w), timeoutMs)));
  }

  /** Split client indexes by owning worker. */
  split(idxs: number[]): number[][] {
    const out: number[][] = this.#workers.map(() => []);
    for (const i of idxs) out[this.owner(i)].push(i);
    return out;
  }

  async connect(
    opts: ConnectRequest,
  ): Promise<{ joinMicros: number[]; errors: Record<string, number> }> {
    const parts = this.split(opts.idxs);
    const replies = await this.all<{ joinMicros: number[]; errors: Record<string, number> }>(
      "connect",
      (w) => ({ ...opts, idxs: parts[w], concurrency: Math.ceil(opts.concurrency / this.size) }),
      opts.timeoutMs + 5000,
    );
    const errors: Record<string, number> = {};
    for (const r of replies) {
      for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
    }
    return { joinMicros: replies.flatMap((r) => r.joinMicros), errors };
  }

  async stats(): Promise<{ open: number; joined: number; bytes: number }> {
    const r = await this.all<{ open: number; joined: number; bytes: number }>(
      "stats",
      () => ({}),
      10_000,
    );
    return r.reduce((a, b) => ({
      open: a.open + b.open,
      joined: a.joined + b.joined,
      bytes: a.bytes + b.bytes,
    }));
  }

  async close(): Promise<void> {
    await this.all("close", () => ({}), 10_000);
  }

  terminate(): void {
    this.#failAll(new Error("generator terminated"));
    for (const w of this.#workers) w.terminate();
  }
}
