/**
 * What the load generator puts on the wire, per server protocol, and the
 * shared clock.
 *
 * Every benchmark message carries a marker `~M|epoch|sender|seq|sendMicros|`
 * followed by `x` padding. Receivers find it with a byte scan for `~M|` in
 * any received line, so the same generator drives the JSON `chat` server
 * (marker inside the "text" field), the naive line server and ncat (marker
 * after a `<userN> ` prefix). Padding never contains `|`, `"`, `~` or `\`, so
 * it needs no JSON escaping and cannot fake a marker.
 */

/** "chat": NDJSON with hello/welcome; "line": raw lines; "ncat": ncat --chat. */
export type Proto = "chat" | "line" | "ncat";

/** What a generator client does with what it receives. */
export type Mode = "active" | "idle" | "noread";

/** The runner's request to a Web Worker to open some of the clients. */
export interface ConnectRequest {
  host: string;
  port: number;
  proto: Proto;
  idxs: number[];
  mode: Mode;
  /** Connects in flight at once. */
  concurrency: number;
  /** When to start (µs on the shared clock); 0 = now. */
  startAtMicros: number;
  timeoutMs: number;
}

/** Whether the sender receives its own broadcast (ncat --chat does not echo). */
export function echoes(proto: Proto): boolean {
  return proto !== "ncat";
}

/**
 * Microseconds on a clock comparable across Web Workers of this process:
 * performance.timeOrigin is each worker's wall-clock start (sub-ms precision)
 * and performance.now() is monotonic from there.
 */
export function nowMicros(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

export function helloLine(proto: Proto, name: string): string | null {
  if (proto !== "chat") return null;
  // history:0 = no replay of earlier messages on joining: live traffic only.
  return `{"type":"hello","version":1,"name":"${name}","history":0}\n`;
}

/** Client name: letters/digits only, unique per client index. */
export function clientName(idx: number): string {
  return `b${idx}`;
}

const PAD = "x".repeat(70_000);

/** Marker text of exactly max(payloadBytes, marker length) bytes (ASCII). */
export function markerText(
  epoch: number,
  sender: number,
  seq: number,
  sendMicros: number,
  payloadBytes: number,
): string {
  const head = `~M|${epoch}|${sender}|${seq}|${sendMicros}|`;
  const pad = payloadBytes - head.length;
  return pad > 0 ? head + PAD.slice(0, pad) : head;
}

/** One complete line to send for a message text. */
export function messageLine(proto: Proto, text: string): string {
  if (proto === "chat") return `{"type":"msg","text":"${text}"}\n`;
  return text + "\n";
}
