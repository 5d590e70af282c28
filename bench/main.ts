/**
 * Benchmark runner: `deno run -A bench/main.ts [--quick] [--servers chat,naive,floor,epoll,ncat]
 * [--rounds N] [--out bench/results] [--scenarios a,b] [--workers N] [--chat-flags "..."]`.
 *
 * In each round, for each server in turn (the order alternating between
 * rounds; see rounds.ts), it runs every scenario (scenarios.ts) against a
 * freshly started instance on a free loopback port, with the clients spread
 * over a pool of Web Workers (gen.ts / worker.ts), or driven by the C
 * generator (loadgen.ts) in the fan-out scenarios. Then it prints machine
 * info, a Markdown table (each figure's median over the rounds and its
 * range, ratios to the epoll and naive references within each round) and
 * the saturation ramp on stdout, and writes JSON results and
 * an SVG latency chart. Progress goes to stderr. Every child process is
 * killed on the way out, on error, on SIGINT/SIGTERM, and by a watchdog that
 * bounds the whole run.
 */
import { Generator } from "./gen.ts";
import { markdown, rampTable, svgChart } from "./report.ts";
import { killAll, SERVERS, setChatFlags } from "./servers.ts";
import { Context, FULL, QUICK, runAll, SCENARIOS, type ServerResult } from "./scenarios.ts";
import { roundOrder, summarize } from "./rounds.ts";
import { type ClusterRow, runCluster } from "./cluster.ts";

interface Args {
  quick: boolean;
  servers: string[];
  out: string;
  scenarios: string[];
  workers: number;
  chatFlags: string[] | null;
  rounds: number;
}

function usage(msg: string): never {
  console.error(
    `${
      msg ? msg + "\n" : ""
    }usage: deno run -A bench/main.ts [--quick] [--servers chat,naive,floor,epoll,ncat] [--rounds N]
                                 [--out bench/results] [--scenarios ${
      [...SCENARIOS, "cluster"].join(",")
    }]
                                 [--workers N] [--chat-flags "deno run flags for chat"]
--servers defaults to all five, or to chat,naive with --quick; --rounds to 3, or 1 with --quick.`,
  );
  Deno.exit(msg ? 2 : 0);
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    quick: false,
    servers: [],
    out: "bench/results",
    scenarios: [...SCENARIOS, "cluster"],
    workers: 2,
    chatFlags: null,
    rounds: 0,
  };
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split("=", 2);
    const val = () => inline ?? argv[++i] ?? usage(`${flag} needs a value`);
    if (flag === "--quick") a.quick = true;
    else if (flag === "--servers") a.servers = val().split(",").filter(Boolean);
    else if (flag === "--out") a.out = val();
    else if (flag === "--scenarios") a.scenarios = val().split(",").filter(Boolean);
    else if (flag === "--workers") a.workers = Number(val());
    else if (flag === "--rounds") a.rounds = Number(val());
    else if (flag === "--chat-flags") a.chatFlags = val().split(/\s+/).filter(Boolean);
    else if (flag === "--help" || flag === "-h") usage("");
    else usage(`unknown argument ${argv[i]}`);
  }
  // Quick runs compare with the naive reference only, to stay under a minute.
  if (a.servers.length === 0) {
    a.servers = a.quick ? ["chat", "naive"] : ["chat", "naive", "floor", "epoll", "ncat"];
  }
  for (const s of a.servers) if (!(s in SERVERS)) usage(`unknown server ${s}`);
  for (const s of a.scenarios) {
    if (!SCENARIOS.includes(s) && s !== "cluster") usage(`unknown scenario ${s}`);
  }
  if (!(a.workers >= 1 && a.workers <= 16)) usage("--workers must be 1..16");
  if (a.rounds === 0) a.rounds = a.quick ? 1 : 3;
  if (!(Number.isInteger(a.rounds) && a.rounds >= 1 && a.rounds <= 9)) {
    usage("--rounds must be 1..9");
  }
  return a;
}

function machineInfo() {
  const cpuinfo = Deno.readTextFileSync("/proc/cpuinfo");
  const meminfo = Deno.readTextFileSync("/proc/meminfo");
  const memKiB = Number(meminfo.match(/MemTotal:\s+(\d+)/)?.[1] ?? 0);
  let nofile = "?";
  try {
    nofile = Deno.readTextFileSync("/proc/self/limits").match(/Max open files\s+(\d+)/)?.[1] ?? "?";
  } catch { /* not Linux */ }
  return {
    cpu: cpuinfo.match(/model name\s*:\s*(.*)/)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memGiB: Math.round(memKiB / 1024 / 1024 * 10) / 10,
    kernel: Deno.osRelease(),
    deno: Deno.version.deno,
    nofile,
  };
}

const isTTY = Deno.stderr.isTerminal();
const enc = new TextEncoder();
function progress(msg: string): void {
  // One rewritten line on a terminal, plain lines otherwise (logs, CI).
  Deno.stderr.writeSync(enc.encode(isTTY ? `\r\x1b[K${msg}` : `${msg}\n`));
}

async function main(): Promise<number> {
  const args = parseArgs(Deno.args);
  const sizes = args.quick ? QUICK : FULL;
  if (args.chatFlags) setChatFlags(args.chatFlags);
  const started = new Date();
  const command = `deno run -A bench/main.ts ${Deno.args.join(" ")}`.trim();
  const machine = machineInfo();
  const header = [
    `# chat benchmark (${args.quick ? "quick" : "full"})`,
    "",
    `- command: \`${command}\``,
    `- date: ${started.toISOString()}`,
    `- machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB RAM, Linux ${machine.kernel}, deno ${machine.deno}, open files ${machine.nofile}`,
    `- generator: fan-out A and B with bench/loadgen.c (one epoll thread, when cc can build it; the senders' phases drawn once per round, the same for every server), the rest with ${args.workers} Web Workers in this process; TCP_NODELAY on; all traffic on 127.0.0.1; server and generator share the cores`,
    "",
  ].join("\n");
  console.log(header);

  const gen = new Generator(args.workers);
  const rounds: Record<string, ServerResult>[] = [];
  const seeds: number[] = [];
  const skipped: Record<string, string> = {};
  const notes: string[] = [];
  let cluster: ClusterRow[] | undefined;
  let clusterTable = "";
  try {
    const servers: string[] = [];
    for (const name of args.servers) {
      const spec = SERVERS[name];
      progress(`[${name}] checking`);
      const why = await spec.unavailable();
      if (why !== null) {
        skipped[name] = why;
        progress(`[${name}] skipped: ${why}`);
        continue;
      }
      if (spec.note) notes.push(`- ${spec.note}`);
      servers.push(name);
    }
    for (let round = 0; round < args.rounds; round++) {
      const results: Record<string, ServerResult> = {};
      // Every server of a round meets the same fan-out senders' phases (see bench/loadgen.c).
      const seed = crypto.getRandomValues(new Uint32Array(1))[0];
      seeds.push(seed);
      for (const name of roundOrder(servers, round)) {
        const tag = args.rounds > 1 ? `[${name} ${round + 1}/${args.rounds}]` : `[${name}]`;
        const ctx = new Context(SERVERS[name], gen, sizes, (m) => progress(`${tag} ${m}`), seed);
        const t0 = performance.now();
        results[name] = await runAll(ctx, args.scenarios.filter((s) => s !== "cluster"));
        progress(`${tag} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      }
      rounds.push(Object.fromEntries(servers.map((name) => [name, results[name]])));
    }
    // Several chat nodes on one Redis, against one node, in rounds of their own.
    if (args.scenarios.includes("cluster") && args.servers.includes("chat")) {
      if (await hasRedis()) {
        const run = await runCluster(args.rounds, (m) => progress(`[cluster] ${m}`));
        cluster = run.rows;
        clusterTable = run.table;
      } else {
        skipped.cluster = "redis-server is not installed";
      }
    }
  } finally {
    gen.terminate();
    await killAll();
  }
  if (isTTY) progress("");

  const results = summarize(rounds, ["epoll", "naive"]);
  console.log(
    args.rounds > 1
      ? `Each figure: the median of ${args.rounds} rounds (servers alternating), with the range.\n`
      : "",
  );
  console.log(markdown(results, skipped));
  const ramp = rampTable(results);
  if (ramp) console.log(`Saturation ramp (p99 per offered load step):\n\n${ramp}`);
  if (notes.length) console.log(notes.join("\n") + "\n");
  if (clusterTable) console.log(`Several nodes on one Redis (cluster):\n\n${clusterTable}\n`);

  await Deno.mkdir(args.out, { recursive: true });
  const json = JSON.stringify(
    {
      command,
      started: started.toISOString(),
      quick: args.quick,
      machine,
      sizes,
      rounds: args.rounds,
      seeds,
      skipped,
      results,
      perRound: rounds,
      cluster,
    },
    null,
    2,
  );
  const stamp = started.toISOString().replaceAll(":", "-").replace(/\.\d+Z$/, "Z");
  // A quick run's files are named as such, so that they never replace the full run the
  // README's Performance section is made from.
  const kind = args.quick ? "quick-" : "";
  const files = [`${stamp}${args.quick ? "-quick" : ""}.json`, `${kind}latest.json`];
  for (const file of files) await Deno.writeTextFile(`${args.out}/${file}`, json + "\n");
  // Always rewritten, so a stale chart never outlives its run.
  const series = Object.entries(results).map(([name, r]) => ({ name, steps: r.steps }));
  files.push(`${kind}latency.svg`);
  await Deno.writeTextFile(
    `${args.out}/${kind}latency.svg`,
    svgChart(series, `p99 latency vs offered load (${args.quick ? "quick" : "full"} run)`),
  );
  const elapsed = ((Date.now() - started.getTime()) / 1000).toFixed(1);
  console.log(
    `Results: ${files.map((file) => `${args.out}/${file}`).join(", ")} (run took ${elapsed} s)`,
  );
  return 0;
}

async function hasRedis(): Promise<boolean> {
  try {
    await new Deno.Command("redis-server", { args: ["--version"], stdout: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

// Ctrl-C / kill: take the servers down with us.
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    progress(`\n${sig}: stopping servers`);
    killAll().finally(() => Deno.exit(130));
  });
}

// Watchdog: the whole run is bounded whatever happens inside it.
const limitMs = (Deno.args.includes("--quick") ? 3 : 25) * 60_000 * parseArgs(Deno.args).rounds;
const watchdog = setTimeout(() => {
  progress(`\nwatchdog: run exceeded ${limitMs / 60_000} min, stopping servers`);
  killAll().finally(() => Deno.exit(3));
}, limitMs);

try {
  const code = await main();
  clearTimeout(watchdog);
  Deno.exit(code);
} catch (e) {
  console.error(e);
  await killAll();
  Deno.exit(1);
}
