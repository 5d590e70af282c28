/**
 * What `--db` costs: the same load against `chat serve` in memory and with
 * `--db`, each a subprocess on a free loopback port. 10 senders each pipe
 * 20,000 messages as fast as the server takes them to 20 clients in one room;
 * the figure is accepted messages a second, timed from the first send to the
 * last delivery at every client. With `--db`, every message is in SQLite (one
 * transaction per batch) before anyone sees it. The server runs with the
 * flags it ships with; the two alternate for `--rounds` rounds (3 by
 * default), and the figures are medians with their ranges, the ratio taken
 * within each round.
 *
 * Run: `deno task bench:db [--rounds N] [--chat-flags="deno run flags"]`. Bounded: each run stops after 60 s whatever happens.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { LineDecoder } from "../protocol.ts";
import { spread } from "./rounds.ts";
import { shippedFlags } from "./servers.ts";

const CLIENTS = 20;
const SENDERS = 10;
const PER_SENDER = 20_000;
const TIME_LIMIT_MS = 60_000;
const encoder = new TextEncoder();
/** How `chat` is run: as it ships, unless `--chat-flags` says otherwise. */
let chatFlags = await shippedFlags();

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function startServer(port: number, db?: string): Promise<Deno.ChildProcess> {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const args = ["run", ...chatFlags, main, "serve"];
  args.push("--host", "127.0.0.1", "--port", String(port), "--quiet");
  args.push("--rate", "1000000000", "--burst", "1000000000", "--max-queue-bytes", "1073741824");
  args.push("--max-per-address", "1000000", "--rate-bytes", "1073741824");
  if (db) args.push("--db", db);
  const child = new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" })
    .spawn();
  for (let i = 0; i < 100; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return child;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  child.kill();
  throw new Error("server did not start");
}

/** One client: joins, then counts the messages it receives. */
async function client(port: number, name: string, expected: number, done: () => void) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  await conn.write(
    encoder.encode(JSON.stringify({ type: "hello", version: 1, name, history: 0 }) + "\n"),
  );
  const decoder = new LineDecoder({ maxLineBytes: 1 << 20 });
  let received = 0;
  const reading = (async () => {
    for await (const chunk of conn.readable) {
      for (const line of decoder.push(chunk)) {
        // '{"type":"msg"' starts every message frame.
        if (line instanceof Uint8Array && line[9] === 0x6d && line[10] === 0x73) received++;
      }
      if (received >= expected) {
        done();
        return;
      }
    }
  })();
  return { conn, reading };
}

async function run(label: string, db?: string): Promise<number> {
  const port = freePort();
  const server = await startServer(port, db);
  const expected = SENDERS * PER_SENDER;
  let finished = 0;
  const allDone = Promise.withResolvers<void>();
  const clients = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      clients.push(
        await client(port, `c${i}`, expected, () => {
          if (++finished === CLIENTS) allDone.resolve();
        }),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200)); // let the joins settle
    const started = performance.now();
    await Promise.all(
      clients.slice(0, SENDERS).map(async ({ conn }, s) => {
        let batch = "";
        for (let n = 0; n < PER_SENDER; n++) {
          batch += JSON.stringify({ type: "msg", text: `s${s} message ${n} `.padEnd(64, "x") }) +
            "\n";
          if (n % 100 === 99) {
            await conn.write(encoder.encode(batch));
            batch = "";
          }
        }
      }),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      allDone.promise,
      new Promise((_, reject) =>
        timer = setTimeout(() => reject(new Error("timed out")), TIME_LIMIT_MS)
      ),
    ]).finally(() => clearTimeout(timer));
    const seconds = (performance.now() - started) / 1000;
    const rate = expected / seconds;
    console.log(
      `${label}: ${Math.round(rate).toLocaleString("en")} messages/s ` +
        `(${Math.round(rate * CLIENTS).toLocaleString("en")} deliveries/s) in ${
          seconds.toFixed(2)
        } s`,
    );
    return rate;
  } finally {
    for (const { conn } of clients) {
      try {
        conn.close();
      } catch {
        // Already closed when its reader finished.
      }
    }
    await Promise.all(clients.map((c) => c.reading.catch(() => {})));
    server.kill("SIGTERM");
    await server.status;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: { rounds: { type: "string", default: "3" }, "chat-flags": { type: "string" } },
  });
  if (values["chat-flags"] !== undefined) chatFlags = values["chat-flags"].split(/\s+/);
  const rounds = Number(values.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) {
    console.error("--rounds must be a whole number of at least 1");
    Deno.exit(2);
  }
  const dir = await Deno.makeTempDir();
  const memory: number[] = [];
  const stored: number[] = [];
  try {
    for (let round = 0; round < rounds; round++) {
      // Alternating which goes first, so that a drift in the machine's load favours neither.
      const inMemory = () => run("in memory").then((rate) => memory.push(rate));
      const withDb = () =>
        run("with --db ", `${dir}/bench-${round}.db`).then((r) => stored.push(r));
      if (round % 2 === 0) await inMemory().then(withDb);
      else await withDb().then(inMemory);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const show = (rates: number[]) => {
    const { median, min, max } = spread(rates)!;
    const k = (n: number) => `${Math.round(n / 1000)}k`;
    return `${k(median)} (${k(min)}–${k(max)}) messages/s`;
  };
  const ratio = spread(memory.map((m, i) => m / stored[i]))!;
  console.log(`in memory: ${show(memory)}`);
  console.log(`with --db: ${show(stored)}`);
  console.log(
    `--db is ${ratio.median.toFixed(2)}x slower (${ratio.min.toFixed(2)}–${
      ratio.max.toFixed(2)
    }x over ${rounds} rounds, each ratio within one round)`,
  );
}
