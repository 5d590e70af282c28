/// <reference lib="deno.worker" />
/**
 * Load-generator Web Worker: owns a slice of the benchmark's TCP clients.
 *
 * The runner (main.ts) sends it RPC requests ({id, cmd, ...}) and gets one
 * reply per request ({id, ok, result | error}). Commands:
 *  - connect:   open clients (optionally all at one instant), say hello, wait
 *               until each has joined; reports per-client join times.
 *  - phase:     start a measurement epoch: reset receive stats, then run the
 *               local senders at their rates until their count or deadline.
 *  - collect:   given how many messages each sender sent, wait (bounded) until
 *               every local receiver has them, then report latency histogram,
 *               delivered/lost/duplicated/reordered counts.
 *  - slowCheck: start reading the "noread" clients and see whether the server
 *               disconnected them (EOF / reset / slow_consumer error).
 *  - stats / close.
 *
 * Receiving is a byte scan (no string decoding) for the `~M|` marker of
 * wire.ts; only the rare lines without a marker (welcome, events, errors) are
 * decoded. Every client reads into its own fixed buffer, one pending read at
 * a time. Duplicates are found with a per-(receiver, sender) bitset of seqs.
 */
import { Histogram } from "./histogram.ts";
import {
  clientName,
  type ConnectRequest,
  helloLine,
  markerText,
  messageLine,
  type Mode,
  nowMicros,
  type Proto,
} from "./wire.ts";

/** "drain": a noread client read again at the end, to see how it was cut off. */
type ClientMode = Mode | "drain";

interface Track {
  max: number;
  uniq: number;
  bits: Uint8Array;
}

interface Client {
  idx: number;
  mode: ClientMode;
  conn: Deno.TcpConn | null;
  joined: boolean;
  joinMicros: number;
  onJoin: ((ok: boolean) => void) | null;
  closed: boolean;
  eof: boolean;
  error: string;
  leftover: Uint8Array | null;
  tracks: Map<number, Track>;
  bytes: number;
  rateLimited: number;
  slowConsumer: boolean;
  errorCodes: Map<string, number>;
  loop: Promise<void> | null;
}

const clients = new Map<number, Client>();
let proto: Proto = "chat";
let epoch = -1;
const latency = new Histogram();
let dups = 0;
let reorders = 0;
let stale = 0;
let garbled = 0;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

/** Resolves with the promise's value, or with `fallback` after `ms`. */
function within<T>(p: Promise<T>, ms: number, fallback: T): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((r) => {
      timer = setTimeout(() => r(fallback), Math.max(0, ms));
    }),
  ]);
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

function markJoined(c: Client, ok: boolean): void {
  if (c.joined) return;
  if (ok) {
    c.joined = true;
    c.joinMicros = nowMicros();
  }
  const cb = c.onJoin;
  c.onJoin = null;
  cb?.(ok);
}

// ---- receiving -------------------------------------------------------------

/** Marker parse cursor (module-level to avoid allocating per line). */
let cur = 0;
function readNum(d: Uint8Array, end: number): number {
  let n = 0;
  let digits = 0;
  while (cur < end) {
    const ch = d[cur++];
    if (ch === 0x7c) return digits > 0 ? n : -1;
    if (ch < 48 || ch > 57) return -1;
    n = n * 10 + (ch - 48);
    digits++;
  }
  return -1;
}

function onMarker(c: Client, d: Uint8Array, start: number, end: number, now: number): void {
  cur = start;
  const ep = readNum(d, end);
  const sid = readNum(d, end);
  const seq = readNum(d, end);
  const ts = readNum(d, end);
  if (ep < 0 || sid < 0 || seq < 0 || ts < 0) {
    garbled++;
    return;
  }
  if (ep !== epoch || c.mode !== "active") {
    stale++;
    return;
  }
  let t = c.tracks.get(sid);
  if (t === undefined) {
    t = { max: -1, uniq: 0, bits: new Uint8Array(256) };
    c.tracks.set(sid, t);
  }
  const byte = seq >>> 3;
  if (byte >= t.bits.length) {
    const grown = new Uint8Array(Math.max(byte + 1, t.bits.length * 2));
    grown.set(t.bits);
    t.bits = grown;
  }
  const bit = 1 << (seq & 7);
  if (t.bits[byte] & bit) {
    dups++;
    return;
  }
  t.bits[byte] |= bit;
  t.uniq++;
  if (seq < t.max) reorders++;
  else t.max = seq;
  latency.record(now - ts);
}

/** A line without a marker: join confirmation, event or error. */
function onOtherLine(c: Client, d: Uint8Array, s: number, e: number): void {
  if (proto === "ncat") {
    // ncat greets every new client with an "<announce> ..." line.
    if (!c.joined) markJoined(c, true);
    return;
  }
  if (proto !== "chat") return;
  if (c.joined && c.mode === "idle") return; // idle clients only drain
  const line = decoder.decode(d.subarray(s, e));
  if (!c.joined && line.includes("welcome")) {
    try {
      if (JSON.parse(line).type === "welcome") markJoined(c, true);
    } catch { /* not JSON: ignore */ }
    return;
  }
  if (!line.includes('"error"')) return; // events etc.
  let code = "unknown";
  try {
    const obj = JSON.parse(line);
    if (obj.type !== "error") return;
    code = String(obj.code ?? "unknown");
  } catch {
    return;
  }
  if (code === "rate_limited") c.rateLimited++;
  else if (code === "slow_consumer") c.slowConsumer = true;
  c.errorCodes.set(code, (c.errorCodes.get(code) ?? 0) + 1);
  if (!c.joined) markJoined(c, false);
}

function onChunk(c: Client, chunk: Uint8Array, now: number): void {
  let d = chunk;
  if (c.leftover !== null) {
    d = new Uint8Array(c.leftover.length + chunk.length);
    d.set(c.leftover);
    d.set(chunk, c.leftover.length);
    c.leftover = null;
  }
  const len = d.length;
  let pos = 0;
  let m = -2; // index of next '~' at or after pos; -1 = none left
  while (pos < len) {
    const nl = d.indexOf(10, pos);
    if (nl < 0) break;
    if (m !== -1 && m < pos) m = d.indexOf(0x7e, pos);
    if (m !== -1 && m < nl && d[m + 1] === 0x4d && d[m + 2] === 0x7c) {
      onMarker(c, d, m + 3, nl, now);
    } else {
      onOtherLine(c, d, pos, nl);
    }
    pos = nl + 1;
  }
  // Keep a partial line for the next chunk (copy: the read buffer is reused).
  if (pos < len) c.leftover = d.slice(pos);
}

async function readLoop(c: Client): Promise<void> {
  const conn = c.conn!;
  // Idle clients only drain, so a small buffer keeps 10k of them cheap.
  const buf = new Uint8Array(c.mode === "idle" ? 4096 : 65536);
  try {
    // Bounded by the connection's life: ends on EOF, error or close().
    while (true) {
      if (c.mode === "noread" && c.joined) return; // stop reading for good
      const n = await conn.read(buf);
      if (n === null) {
        c.eof = true;
        break;
      }
      c.bytes += n;
      if (c.mode === "idle" && c.joined) continue;
      onChunk(c, buf.subarray(0, n), nowMicros());
    }
  } catch (e) {
    if (!c.closed) c.error = e instanceof Error ? e.name : String(e);
  }
  c.closed = true;
  markJoined(c, false);
}

// ---- commands --------------------------------------------------------------

async function connectOne(req: ConnectRequest, idx: number, deadline: number): Promise<number> {
  const c: Client = {
    idx,
    mode: req.mode,
    conn: null,
    joined: false,
    joinMicros: 0,
    onJoin: null,
    closed: false,
    eof: false,
    error: "",
    leftover: null,
    tracks: new Map(),
    bytes: 0,
    rateLimited: 0,
    slowConsumer: false,
    errorCodes: new Map(),
    loop: null,
  };
  const left = () => deadline - performance.now();
  const p = Deno.connect({ hostname: req.host, port: req.port });
  const conn = await within(p.catch(() => null), left(), null);
  if (conn === null) {
    // A connect that completes after the deadline must not leak.
    p.then((late) => late.close(), () => {});
    return -1;
  }
  conn.setNoDelay(true);
  c.conn = conn;
  clients.set(idx, c);
  const joined = new Promise<boolean>((r) => (c.onJoin = r));
  if (proto === "line") markJoined(c, true); // no handshake: TCP connect is "in"
  if (!(c.mode === "noread" && c.joined)) c.loop = readLoop(c);
  const hello = helloLine(proto, clientName(idx));
  if (hello !== null) {
    try {
      await within(writeAll(conn, encoder.encode(hello)), left(), undefined);
    } catch {
      return -1;
    }
  }
  const ok = await within(joined, left(), false);
  return ok ? c.joinMicros : -1;
}

async function cmdConnect(req: ConnectRequest) {
  proto = req.proto;
  if (req.startAtMicros > 0) await sleep((req.startAtMicros - nowMicros()) / 1000);
  const deadline = performance.now() + req.timeoutMs;
  const joinMicros: number[] = new Array(req.idxs.length).fill(-1);
  let next = 0;
  // A pool of `concurrency` lanes, each taking the next index until done.
  const lane = async () => {
    while (next < req.idxs.length) {
      const i = next++;
      joinMicros[i] = await connectOne(req, req.idxs[i], deadline);
    }
  };
  const lanes = Math.max(1, Math.min(req.concurrency, req.idxs.length));
  await Promise.all(Array.from({ length: lanes }, lane));
  const errors: Record<string, number> = {};
  for (const idx of req.idxs) {
    const c = clients.get(idx);
    if (c === undefined) errors["connect"] = (errors["connect"] ?? 0) + 1;
    else if (!c.joined) {
      const why = c.errorCodes.size ? [...c.errorCodes.keys()][0] : c.error || "timeout";
      errors[why] = (errors[why] ?? 0) + 1;
    }
  }
  return { joinMicros, errors };
}

interface SenderSpec {
  idx: number;
  rate: number; // messages per second
  count: number;
}

interface PhaseReq {
  epoch: number;
  senders: SenderSpec[];
  startAtMicros: number;
  payloadBytes: number;
  deadlineMs: number; // stop sending this long after startAt, whatever is left
}

/** Time of the last write of the current phase (µs), for the real send window. */
let lastSendMicros = 0;

async function senderLoop(
  s: SenderSpec,
  req: PhaseReq,
  lag: Histogram,
): Promise<{ sent: number; error: string }> {
  const c = clients.get(s.idx);
  if (c === undefined || c.conn === null || c.closed) return { sent: 0, error: "not connected" };
  const conn = c.conn;
  const interval = 1e6 / s.rate;
  // Random phase so that senders do not all fire in the same millisecond.
  const t0 = req.startAtMicros + Math.random() * interval;
  const deadline = req.startAtMicros + req.deadlineMs * 1000;
  let k = 0;
  // Bounded by s.count messages and by the deadline.
  while (k < s.count) {
    const now = nowMicros();
    if (now >= deadline) break;
    const due = Math.min(s.count, Math.floor((now - t0) / interval) + 1);
    if (due > k) {
      lag.record(Math.max(0, now - (t0 + k * interval)));
      let batch = "";
      for (; k < due; k++) {
        batch += messageLine(proto, markerText(req.epoch, s.idx, k, now, req.payloadBytes));
      }
      try {
        // A server that stops reading blocks this write; give up at the deadline.
        const left = (deadline - nowMicros()) / 1000;
        const done = await within(
          writeAll(conn, encoder.encode(batch)).then(() => true),
          left,
          false,
        );
        if (!done) return { sent: k, error: "write blocked" };
        lastSendMicros = Math.max(lastSendMicros, nowMicros());
      } catch (e) {
        return { sent: k, error: e instanceof Error ? e.name : String(e) };
      }
    }
    const wait = (t0 + k * interval - nowMicros()) / 1000;
    await sleep(Math.floor(wait));
  }
  return { sent: k, error: "" };
}

async function cmdPhase(req: PhaseReq) {
  epoch = req.epoch;
  latency.reset();
  dups =
    reorders =
    stale =
    garbled =
      0;
  for (const c of clients.values()) {
    c.tracks.clear();
    c.rateLimited = 0;
  }
  await sleep((req.startAtMicros - nowMicros()) / 1000);
  lastSendMicros = 0;
  const lag = new Histogram();
  const results = await Promise.all(req.senders.map((s) => senderLoop(s, req, lag)));
  return {
    sent: req.senders.map((s, i) => [s.idx, results[i].sent] as [number, number]),
    errors: results.map((r) => r.error).filter((e) => e !== ""),
    lag: lag.toData(),
    lastSendMicros,
  };
}

interface CollectReq {
  expected: [number, number][]; // [sender idx, messages sent]
  echo: boolean;
  timeoutMs: number;
}

function missingFor(c: Client, expected: [number, number][], echo: boolean): number {
  let missing = 0;
  for (const [sid, n] of expected) {
    if (!echo && sid === c.idx) continue;
    const got = c.tracks.get(sid)?.uniq ?? 0;
    if (got < n) missing += n - got;
  }
  return missing;
}

async function cmdCollect(req: CollectReq) {
  const t0 = performance.now();
  const active = [...clients.values()].filter((c) => c.mode === "active");
  // Poll until every live receiver has everything, bounded by timeoutMs.
  while (performance.now() - t0 < req.timeoutMs) {
    let missing = 0;
    for (const c of active) if (!c.closed) missing += missingFor(c, req.expected, req.echo);
    if (missing === 0) break;
    await sleep(5);
  }
  let expected = 0;
  let delivered = 0;
  let rateLimited = 0;
  let disconnected = 0;
  let slowConsumer = 0;
  const errorCodes: Record<string, number> = {};
  for (const c of active) {
    for (const [sid, n] of req.expected) {
      if (!req.echo && sid === c.idx) continue;
      expected += n;
      delivered += Math.min(n, c.tracks.get(sid)?.uniq ?? 0);
    }
    rateLimited += c.rateLimited;
    if (c.closed) disconnected++;
    if (c.slowConsumer) slowConsumer++;
    for (const [code, n] of c.errorCodes) errorCodes[code] = (errorCodes[code] ?? 0) + n;
  }
  return {
    waitedMs: performance.now() - t0,
    receivers: active.length,
    expected,
    delivered,
    dups,
    reorders,
    stale,
    garbled,
    rateLimited,
    disconnected,
    slowConsumer,
    errorCodes,
    latency: latency.toData(),
  };
}

async function cmdSlowCheck(req: { timeoutMs: number }) {
  const slow = [...clients.values()].filter((c) => c.mode === "noread");
  const out = await Promise.all(slow.map(async (c) => {
    const before = c.bytes;
    if (!c.closed && c.conn !== null) {
      c.mode = "drain"; // read and look for error lines, count no markers
      const loop = readLoop(c);
      const ended = await within(loop.then(() => true), req.timeoutMs, false);
      if (!ended) {
        // Still connected and still being fed: the server never cut it off.
        c.closed = true;
        try {
          c.conn.close();
        } catch { /* already closed */ }
      }
      return {
        idx: c.idx,
        disconnected: ended,
        slowConsumerError: c.slowConsumer,
        bytesDrained: c.bytes - before,
        how: ended ? (c.eof ? "eof" : c.error) : "still open",
      };
    }
    return {
      idx: c.idx,
      disconnected: true,
      slowConsumerError: c.slowConsumer,
      bytesDrained: 0,
      how: c.eof ? "eof" : c.error,
    };
  }));
  return out;
}

function cmdStats() {
  let open = 0;
  let joined = 0;
  let bytes = 0;
  for (const c of clients.values()) {
    if (!c.closed) open++;
    if (c.joined) joined++;
    bytes += c.bytes;
  }
  return { clients: clients.size, open, joined, bytes };
}

async function cmdClose() {
  const loops: Promise<void>[] = [];
  for (const c of clients.values()) {
    c.closed = true;
    try {
      c.conn?.close();
    } catch { /* already closed */ }
    if (c.loop) loops.push(c.loop);
  }
  await within(Promise.all(loops), 2000, []);
  clients.clear();
  return { ok: true };
}

// deno-lint-ignore no-explicit-any
const handlers: Record<string, (req: any) => unknown> = {
  connect: cmdConnect,
  phase: cmdPhase,
  collect: cmdCollect,
  slowCheck: cmdSlowCheck,
  stats: cmdStats,
  close: cmdClose,
};

self.onmessage = async (ev: MessageEvent) => {
  const { id, cmd, ...req } = ev.data;
  try {
    const h = handlers[cmd];
    if (h === undefined) throw new Error(`unknown command ${cmd}`);
    self.postMessage({ id, ok: true, result: await h(req) });
  } catch (e) {
    self.postMessage({
      id,
      ok: false,
      error: e instanceof Error ? e.stack ?? e.message : String(e),
    });
  }
};
