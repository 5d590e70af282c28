/**
 * What Redis costs (`--redis`): the same load against one `chat serve` in
 * memory, one node on Redis, two nodes on one Redis (clients split between
 * them), and two nodes sharing one port (`--reuse-port`). Configurations
 * alternate, round after round, and each figure is the median of the rounds
 * with its spread, and its ratio to one node in memory measured in the same
 * run.
 *
 * - latency: 40 clients in one room, 8 of them sending 40 messages a second
 *   each for 3 s; each message carries its send time; p50 and p99 of the
 *   delay to every receiver.
 * - throughput: 8 senders pipe 3,000 messages each as fast as the server
 *   takes them; messages a second, from the first send to the last delivery
 *   at every one of 40 clients.
 *
 * Run: `deno task bench:cluster [--rounds N]` (default 3), or as the `cluster`
 * scenario of `deno task bench` (1 round with `--quick`). It starts its own
 * `redis-server` (Debian's package) on a free loopback port, without
 * persistence. Bounded: every phase stops after 60 s whatever happens.
 *
 * @module
 */

import { LineDecoder } from "../protocol.ts";
import { shippedFlags } from "./servers.ts";

/** Every node runs as `chat` ships: the compile task's permissions and V8 flags. */
const CHAT_FLAGS = await shippedFlags();

const CLIENTS = 40;
const SENDERS = 8;
const LATENCY_RATE = 40;
const LATENCY_MS = 3000;
const PER_SENDER = 3000;
const TIME_LIMIT_MS = 60_000;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** What runs: one node, one on Redis, two on Redis, two sharing one port. */
export type Config =
  | "one node, in memory"
  | "one node on Redis"
  | "two nodes on Redis"
  | "two nodes, one port";

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

function startNode(port: number, extra: string[]): Deno.ChildProcess {
  const args = [
    "run",
    ...CHAT_FLAGS,
    new URL("../main.ts", import.meta.url).pathname,
    "serve",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
    "--quiet",
    "--rate",
    "1000000000",
    "--burst",
    "1000000000",
    "--max-queue-bytes",
    "1073741824",
    "--max-per-address",
    "1000000",
    "--rate-bytes",
    "1073741824",
    ...extra,
  ];
  return new Deno.Command(Deno.execPath(), { args, stdout: "null", stderr: "null" }).spawn();
}

/** Starts the nodes of a configuration; returns the ports clients use, in turn, and a stop. */
async function startConfig(config: Config, redisUrl: string) {
  const children: Deno.ChildProcess[] = [];
  let ports: number[];
  if (config === "one node, in memory") {
    ports = [freePort()];
    children.push(startNode(ports[0], []));
  } else if (config === "one node on Redis") {
    ports = [freePort()];
    children.push(startNode(ports[0], ["--redis", redisUrl]));
  } else if (config === "two nodes on Redis") {
    ports = [freePort(), freePort()];
    for (const port of ports) children.push(startNode(port, ["--redis", redisUrl]));
  } else {
    ports = [freePort()];
    for (let i = 0; i < 2; i++) {
      children.push(startNode(ports[0], ["--redis", redisUrl, "--reuse-port"]));
    }
  }
  for (const port of ports) await waitForPort(port);
  if (config === "two nodes, one port") await new Promise((resolve) => setTimeout(resolve, 500));
  return {
    ports,
    async stop() {
      for (const child of children) child.kill("SIGTERM");
      await Promise.all(children.map((child) => child.status));
    },
  };
}

interface Client {
  conn: Deno.TcpConn;
  received: number;
  latencies: number[];
  reading: Promise<void>;
}

async function connect(port: number, name: string): Promise<Client> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  await conn.write(
    encoder.encode(JSON.stringify({ type: "hello", version: 1, name, history: 0 }) + "\n"),
  );
  const lines = new LineDecoder({ maxLineBytes: 1 << 20 });
  const client: Client = { conn, received: 0, latencies: [], reading: Promise.resolve() };
  client.reading = (async () => {
    try {
      for await (const chunk of conn.readable) {
        const now = performance.timeOrigin + performance.now();
        for (const line of lines.push(chunk)) {
          if (!(line instanceof Uint8Array) || line[9] !== 0x6d || line[10] !== 0x73) continue;
          client.received++;
          const text = decoder.decode(line);
          const sent = /"text":"t(\d+(?:\.\d+)?) /.exec(text)?.[1];
          if (sent !== undefined) client.latencies.push(now - Number(sent));
        }
      }
    } catch {
      // Closed at the end.
    }
  })();
  return client;
}

async function waitUntil(test: () => boolean, what: string): Promise<void> {
  const started = performance.now();
  while (!test()) {
    if (performance.now() - started > TIME_LIMIT_MS) throw new Error(`timed out: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** One round of one configuration: latency, then throughput. */
async function measure(config: Config, redisUrl: string, round: number) {
  const nodes = await startConfig(config, redisUrl);
  const clients: Client[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const name = `r${round}${config.replace(/\W/g, "")}c${i}`.slice(0, 32);
      clients.push(await connect(nodes.ports[i % nodes.ports.length], name));
    }
    await new Promise((resolve) => setTimeout(resolve, 500)); // joins settle on every node
    const senders = clients.filter((_, i) => i < SENDERS * 2 && i % 2 === 0); // both nodes

    // Latency at a steady, modest rate.
    const count = Math.floor(LATENCY_RATE * LATENCY_MS / 1000);
    await Promise.all(senders.map(async ({ conn }, s) => {
      for (let n = 0; n < count; n++) {
        const sent = performance.timeOrigin + performance.now();
        await conn.write(encoder.encode(
          JSON.stringify({ type: "msg", text: `t${sent} s${s} ${n}` }) + "\n",
        ));
        await new Promise((resolve) => setTimeout(resolve, 1000 / LATENCY_RATE));
      }
    }));
    const expected = senders.length * count;
    await waitUntil(() => clients.every((c) => c.received >= expected), "latency phase");
    const latencies = clients.flatMap((c) => c.latencies).sort((a, b) => a - b);
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);

    // Throughput: pipe as fast as the server takes it.
    for (const client of clients) client.received = 0;
    const started = performance.now();
    await Promise.all(senders.map(async ({ conn }, s) => {
      let batch = "";
      for (let n = 0; n < PER_SENDER; n++) {
        batch += JSON.stringify({ type: "msg", text: `s${s} message ${n} `.padEnd(64, "x") }) +
          "\n";
        if (n % 100 === 99) {
          await conn.write(encoder.encode(batch));
          batch = "";
        }
      }
    }));
    const total = senders.length * PER_SENDER;
    await waitUntil(() => clients.every((c) => c.received >= total), "throughput phase");
    const rate = total / ((performance.now() - started) / 1000);
    return { p50, p99, rate };
  } finally {
    for (const { conn } of clients) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await Promise.all(clients.map((c) => c.reading));
    await nodes.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** One configuration's median and spread over the rounds, and its ratios to `one`. */
export interface ClusterRow {
  config: Config;
  p50: number[];
  p99: number[];
  rate: number[];
  ratio: { p50: number; p99: number; rate: number };
}

/**
 * Runs every configuration `rounds` times, alternating, against a
 * redis-server of its own; returns the rows and a Markdown table.
 */
export async function runCluster(
  rounds: number,
  progress: (line: string) => void = (line) => console.error(line),
): Promise<{ rows: ClusterRow[]; table: string }> {
  const port = freePort();
  const redis = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const configs: Config[] = [
    "one node, in memory",
    "one node on Redis",
    "two nodes on Redis",
    "two nodes, one port",
  ];
  const results = new Map<Config, { p50: number; p99: number; rate: number }[]>();
  try {
    await waitForPort(port);
    const url = `redis://127.0.0.1:${port}`;
    for (let round = 1; round <= rounds; round++) {
      for (const config of round % 2 ? configs : [...configs].reverse()) {
        const result = await measure(config, url, round);
        results.set(config, [...(results.get(config) ?? []), result]);
        progress(
          `cluster round ${round} ${config}: p50 ${result.p50.toFixed(2)} ms, p99 ${
            result.p99.toFixed(2)
          } ms, ${Math.round(result.rate).toLocaleString("en")} messages/s`,
        );
      }
    }
  } finally {
    redis.kill("SIGTERM");
    await redis.status;
  }
  const base = results.get("one node, in memory")!;
  const med = (r: { p50: number; p99: number; rate: number }[], key: "p50" | "p99" | "rate") =>
    median(r.map((x) => x[key]));
  const rows = configs.map((config): ClusterRow => {
    const r = results.get(config)!;
    return {
      config,
      p50: r.map((x) => x.p50),
      p99: r.map((x) => x.p99),
      rate: r.map((x) => x.rate),
      ratio: {
        p50: med(r, "p50") / med(base, "p50"),
        p99: med(r, "p99") / med(base, "p99"),
        rate: med(r, "rate") / med(base, "rate"),
      },
    };
  });
  const fig = (values: number[], digits: number) =>
    `${median(values).toFixed(digits)} (${Math.min(...values).toFixed(digits)}–${
      Math.max(...values).toFixed(digits)
    })`;
  const lines = [
    `| configuration | p50 ms | p99 ms | messages/s | p50 / one | p99 / one | rate / one |`,
    `|---|---|---|---|---|---|---|`,
    ...rows.map((row) =>
      `| ${row.config} | ${fig(row.p50, 2)} | ${fig(row.p99, 2)} | ${fig(row.rate, 0)} | ${
        row.ratio.p50.toFixed(2)
      }x | ${row.ratio.p99.toFixed(2)}x | ${row.ratio.rate.toFixed(2)}x |`
    ),
    "",
    `${rounds} round(s), alternating; median (min–max).`,
  ];
  return { rows, table: lines.join("\n") };
}

if (import.meta.main) {
  const roundsAt = Deno.args.indexOf("--rounds");
  const rounds = roundsAt >= 0 ? Number(Deno.args[roundsAt + 1]) : 3;
  console.log((await runCluster(rounds)).table);
}
