/**
 * Turns per-server figures into the outputs: a Markdown table (one row per
 * figure, one column per server, each the median of the rounds with their
 * range, then ratios to the C epoll and naive references, taken within each
 * round), a table of the saturation ramp, and a hand-written SVG chart of
 * p99 latency against offered load (log-log, one polyline per server).
 */
import type { RampStep } from "./scenarios.ts";
import type { Spread, Summary } from "./rounds.ts";

interface Row {
  key: string;
  label: string;
  target?: string;
  /** Shown only when some server has a non-zero / non-empty value. */
  optional?: boolean;
}

const ROWS: Row[] = [
  {
    key: "startup_ms",
    label: "8 startup: spawn to first TCP accept, median (ms)",
    target: "< 200",
  },
  { key: "startup_max_ms", label: "8 startup: slowest of all starts (ms)" },
  { key: "a_generator", label: "1 fanout A (100 cl, 10x10 msg/s): generator (C or workers)" },
  { key: "a_p50_ms", label: "1 fanout A: p50 (ms)" },
  { key: "a_p99_ms", label: "1 fanout A: p99 (ms)", target: "<= 1.5x epoll" },
  { key: "a_max_ms", label: "1 fanout A: max (ms)" },
  { key: "a_delivered_pct", label: "1 fanout A: delivered (%)", target: "100" },
  { key: "a_dups", label: "1 fanout A: duplicates", optional: true },
  { key: "a_reorders", label: "1 fanout A: reordered", optional: true },
  { key: "a_rate_limited", label: "1 fanout A: rate_limited errors", optional: true },
  { key: "a_errors", label: "1 fanout A: error lines", optional: true },
  { key: "a_server_cpu", label: "1 fanout A: server CPU (cores)" },
  { key: "a_gen_cpu", label: "1 fanout A: generator CPU (cores)" },
  { key: "a_other_cpu", label: "1 fanout A: CPU used outside server and generator (cores)" },
  { key: "b_generator", label: "2 fanout B (500 cl, 5x20 msg/s): generator (C or workers)" },
  { key: "b_offered_dps", label: "2 fanout B: offered deliveries/s" },
  { key: "b_p50_ms", label: "2 fanout B: p50 (ms)" },
  { key: "b_p99_ms", label: "2 fanout B: p99 (ms)", target: "<= 1.5x epoll, <= naive" },
  { key: "b_max_ms", label: "2 fanout B: max (ms)" },
  { key: "b_delivered_pct", label: "2 fanout B: delivered (%)", target: "100" },
  { key: "b_dups", label: "2 fanout B: duplicates", optional: true },
  { key: "b_reorders", label: "2 fanout B: reordered", optional: true },
  { key: "b_rate_limited", label: "2 fanout B: rate_limited errors", optional: true },
  { key: "b_disconnected", label: "2 fanout B: clients disconnected", optional: true },
  { key: "b_errors", label: "2 fanout B: error lines", optional: true },
  { key: "b_server_cpu", label: "2 fanout B: server CPU (cores)" },
  { key: "b_gen_cpu", label: "2 fanout B: generator CPU (cores)" },
  { key: "b_other_cpu", label: "2 fanout B: CPU used outside server and generator (cores)" },
  {
    key: "sat_max_dps",
    label: "3 saturation (200 cl, 20 senders): max sustainable deliveries/s",
    target: ">= 0.5x epoll",
  },
  { key: "sat_p99_at_max_ms", label: "3 saturation: p99 at that load (ms)" },
  { key: "sat_server_cpu_at_max", label: "3 saturation: server CPU at that load (cores)" },
  { key: "sat_gen_cpu_at_max", label: "3 saturation: generator CPU at that load (cores)" },
  { key: "sat_stop_reason", label: "3 saturation: ramp stopped because" },
  { key: "idle_n", label: "4 idle: connections attempted" },
  { key: "idle_joined", label: "4 idle: connections joined" },
  {
    key: "idle_kb_per_conn",
    label: "4 idle: server RSS per idle connection, settled (KiB)",
    target: "<= 8",
  },
  {
    key: "idle_kb_per_conn_peak",
    label: "4 idle: server RSS per idle connection, at peak (KiB)",
    target: "<= 10",
  },
  { key: "idle_rss_before_mb", label: "4 idle: server RSS before (MiB)" },
  { key: "idle_rss_after_mb", label: "4 idle: server RSS with all connected, settled (MiB)" },
  { key: "idle_rss_peak_mb", label: "4 idle: server RSS peak (MiB)" },
  { key: "idle_connect_s", label: "4 idle: time to connect all (s)" },
  { key: "idle_rx_mb", label: "4 idle: bytes pushed to the idle clients (MB)" },
  {
    key: "idle_still_sending",
    label: "4 idle: server still sending at measurement",
    optional: true,
  },
  { key: "idle_errors", label: "4 idle: connect failures", optional: true },
  { key: "burst_n", label: "5 connect burst: clients" },
  {
    key: "burst_all_in_ms",
    label: "5 connect burst: time until all joined (ms)",
    target: "< 2000",
  },
  { key: "burst_p50_ms", label: "5 connect burst: median join time (ms)" },
  { key: "burst_failed", label: "5 connect burst: failed", target: "0" },
  {
    key: "burst_listen_overflows",
    label: "5 connect burst: SYNs dropped on full accept queue (each waits 1 s)",
  },
  { key: "burst_errors", label: "5 connect burst: failure kinds", optional: true },
  { key: "slow_disconnected", label: "6 slow consumer: slow client disconnected", target: "yes" },
  { key: "slow_got_error_line", label: "6 slow consumer: slow_consumer error line received" },
  { key: "slow_drained_mb", label: "6 slow consumer: bytes buffered for the slow client (MB)" },
  { key: "slow_others_lost", label: "6 slow consumer: messages lost by the others", target: "0" },
  {
    key: "slow_others_disconnected",
    label: "6 slow consumer: other clients disconnected",
    optional: true,
  },
  { key: "slow_base_p99_ms", label: "6 slow consumer: others' p99 without slow client (ms)" },
  { key: "slow_with_p99_ms", label: "6 slow consumer: others' p99 with slow client (ms)" },
  { key: "slow_p99_ratio", label: "6 slow consumer: p99 ratio with/without", target: "<= 2" },
  { key: "slow_base_rss_peak_mb", label: "6 slow consumer: server RSS peak without (MiB)" },
  { key: "slow_rss_peak_mb", label: "6 slow consumer: server RSS peak with (MiB)" },
  { key: "soak_s", label: "7 soak (100 cl, 10x20 msg/s): duration (s)" },
  { key: "soak_delivered_pct", label: "7 soak: delivered (%)", target: "100" },
  { key: "soak_lost", label: "7 soak: lost", target: "0" },
  { key: "soak_dups", label: "7 soak: duplicates", target: "0" },
  { key: "soak_reorders", label: "7 soak: reordered", target: "0" },
  { key: "soak_p99_ms", label: "7 soak: p99 (ms)" },
  { key: "soak_server_cpu", label: "7 soak: server CPU (cores)" },
  { key: "soak_gen_cpu", label: "7 soak: generator CPU (cores)" },
  { key: "soak_other_cpu", label: "7 soak: CPU used outside server and generator (cores)" },
  { key: "soak_rss_start_mb", label: "7 soak: server RSS after warm-up (MiB)" },
  { key: "soak_rss_end_mb", label: "7 soak: server RSS at end (MiB)" },
  { key: "soak_rss_drift_mb", label: "7 soak: RSS drift (MiB)" },
  { key: "soak_rss_series_mb", label: "7 soak: RSS every 5 s (MiB)" },
  {
    key: "over_offered_dps",
    label: "9 overload (200 cl, 20 senders): offered deliveries/s",
  },
  { key: "over_achieved_dps", label: "9 overload: achieved deliveries/s" },
  { key: "over_disconnected", label: "9 overload: readers cut off", target: "0" },
  { key: "over_lost", label: "9 overload: messages lost", target: "0" },
  { key: "over_sent_pct", label: "9 overload: what the senders could send (% of planned)" },
  { key: "over_lag_p99_ms", label: "9 overload: send lag p99 (ms), the senders slowed" },
  { key: "over_rss_peak_mb", label: "9 overload: server RSS peak (MiB)" },
  { key: "over_errors", label: "9 overload: error lines", optional: true },
];

export function fmt(v: unknown): string {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") {
    if (!Number.isFinite(v)) return String(v);
    if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
    return String(Number(v.toPrecision(4)));
  }
  return String(v).replaceAll("|", "\\|");
}

/** Ratio columns: a server against a reference, each present in the run. */
const RATIO_COLUMNS: [string, string][] = [
  ["chat", "epoll"],
  ["floor", "epoll"],
  ["naive", "epoll"],
  ["chat", "naive"],
];

/** A figure as "median (min–max)" over the rounds; just the median when they agree. */
function spreadCell(value: unknown, s: Spread | undefined, suffix = ""): string {
  if (s === undefined) return fmt(value);
  const median = `${fmt(s.median)}${suffix}`;
  return s.n > 1 && s.min !== s.max ? `${median} (${fmt(s.min)}–${fmt(s.max)})` : median;
}

export function markdown(
  results: Record<string, Summary>,
  skipped: Record<string, string>,
): string {
  const names = Object.keys(results);
  const ratioColumns = RATIO_COLUMNS.filter(([n, ref]) => n in results && ref in results);
  const head = [
    "figure",
    "target (chat)",
    ...names,
    ...ratioColumns.map(([n, ref]) => `${n} / ${ref}`),
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const row of ROWS) {
    const vals = names.map((n) => results[n].figures[row.key]);
    if (vals.every((v) => v === undefined)) continue;
    if (row.optional && vals.every((v) => v === undefined || v === null || v === 0 || v === "no")) {
      continue;
    }
    const cells = [
      row.label,
      row.target ?? "",
      ...names.map((n) => spreadCell(results[n].figures[row.key], results[n].spread[row.key])),
    ];
    for (const [n, ref] of ratioColumns) {
      const r = results[n].ratios[ref]?.[row.key];
      cells.push(r ? spreadCell(r.median, roundRatio(r), "x") : "");
    }
    lines.push(`| ${cells.join(" | ")} |`);
  }
  const notes: string[] = [];
  for (const [n, why] of Object.entries(skipped)) notes.push(`- ${n}: skipped: ${why}`);
  for (const n of names) {
    for (const [s, e] of Object.entries(results[n].errors)) {
      notes.push(`- ${n}: scenario ${s} failed: ${e}`);
    }
  }
  return lines.join("\n") + (notes.length ? "\n\n" + notes.join("\n") : "") + "\n";
}

/** A ratio's spread to three figures. */
function roundRatio(r: Spread): Spread {
  const three = (v: number) => (v >= 100 ? Math.round(v) : Number(v.toPrecision(3)));
  return { median: three(r.median), min: three(r.min), max: three(r.max), n: r.n };
}

export function rampTable(results: Record<string, { steps: RampStep[] }>): string {
  const names = Object.keys(results).filter((n) => results[n].steps.length > 0);
  if (!names.length) return "";
  const offered = [...new Set(names.flatMap((n) => results[n].steps.map((s) => s.offeredDps)))]
    .sort((a, b) => a - b);
  const head = [
    "offered deliveries/s",
    ...names.map((n) => `${n}: p99 ms (loss %, send lag p99 ms, CPU srv/gen/other)`),
  ];
  const lines = [`| ${head.join(" | ")} |`, `|${head.map(() => "---").join("|")}|`];
  for (const o of offered) {
    const cells = names.map((n) => {
      const s = results[n].steps.find((x) => x.offeredDps === o);
      return s
        ? `${fmt(s.p99Ms)} (${s.lossPct}%, ${
          fmt(s.lagP99Ms)
        }, ${s.serverCpu}/${s.genCpu}/${s.otherCpu})${s.ok ? "" : " FAIL"}`
        : "";
    });
    lines.push(`| ${fmt(o)} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n") + "\n";
}

const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];

function siLabel(v: number): string {
  if (v >= 1e6) return `${v / 1e6}M`;
  if (v >= 1e3) return `${v / 1e3}k`;
  return String(v);
}

function esc(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;");
}

/** p99 against offered load, log-log; hollow markers are failed steps. */
export function svgChart(series: { name: string; steps: RampStep[] }[], title: string): string {
  const W = 800, H = 460, L = 80, R = 170, T = 50, B = 60;
  const pts = series.flatMap((s) => s.steps);
  const minY = 0.01;
  const xs = pts.map((p) => p.offeredDps);
  const ys = pts.map((p) => Math.max(minY, p.p99Ms)).concat([100]);
  const x0 = Math.floor(Math.log10(Math.min(...xs, 1e4)));
  const x1 = Math.ceil(Math.log10(Math.max(...xs, 1e5)));
  const y0 = Math.floor(Math.log10(Math.min(...ys)));
  const y1 = Math.max(y0 + 1, Math.ceil(Math.log10(Math.max(...ys))));
  const px = (v: number) => L + ((Math.log10(v) - x0) / (x1 - x0)) * (W - L - R);
  const py = (v: number) =>
    H - B - ((Math.log10(Math.max(minY, v)) - y0) / (y1 - y0)) * (H - T - B);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - R / 2 + L / 2}" y="24" text-anchor="middle" font-size="15">${
      esc(title)
    }</text>`,
  ];
  for (let e = x0; e <= x1; e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (Math.log10(v) > x1) continue;
      const x = px(v).toFixed(1);
      out.push(
        `<line x1="${x}" y1="${T}" x2="${x}" y2="${H - B}" stroke="${m === 1 ? "#ccc" : "#eee"}"/>`,
      );
      out.push(`<text x="${x}" y="${H - B + 16}" text-anchor="middle">${siLabel(v)}</text>`);
    }
  }
  for (let e = y0; e <= y1; e++) {
    const y = py(10 ** e).toFixed(1);
    out.push(`<line x1="${L}" y1="${y}" x2="${W - R}" y2="${y}" stroke="#ccc"/>`);
    out.push(
      `<text x="${L - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${
        fmt(10 ** e)
      } ms</text>`,
    );
  }
  const yLimit = py(100).toFixed(1);
  out.push(
    `<line x1="${L}" y1="${yLimit}" x2="${
      W - R
    }" y2="${yLimit}" stroke="#888" stroke-dasharray="6 4"/>`,
  );
  out.push(
    `<text x="${W - R - 4}" y="${
      Number(yLimit) - 5
    }" text-anchor="end" fill="#666">p99 limit 100 ms</text>`,
  );
  out.push(
    `<rect x="${L}" y="${T}" width="${W - L - R}" height="${
      H - T - B
    }" fill="none" stroke="#333"/>`,
  );
  out.push(
    `<text x="${(L + W - R) / 2}" y="${
      H - 18
    }" text-anchor="middle">offered load (deliveries/s, log)</text>`,
  );
  out.push(
    `<text x="18" y="${(T + H - B) / 2}" text-anchor="middle" transform="rotate(-90 18 ${
      (T + H - B) / 2
    })">p99 delivery latency (ms, log)</text>`,
  );
  series.forEach((s, i) => {
    const c = COLORS[i % COLORS.length];
    const p = s.steps.map((st) => `${px(st.offeredDps).toFixed(1)},${py(st.p99Ms).toFixed(1)}`);
    if (p.length > 1) {
      out.push(`<polyline points="${p.join(" ")}" fill="none" stroke="${c}" stroke-width="2"/>`);
    }
    for (const st of s.steps) {
      out.push(
        `<circle cx="${px(st.offeredDps).toFixed(1)}" cy="${
          py(st.p99Ms).toFixed(1)
        }" r="4" stroke="${c}" stroke-width="2" fill="${st.ok ? c : "white"}"/>`,
      );
    }
    const ly = T + 10 + i * 22;
    out.push(
      `<line x1="${W - R + 15}" y1="${ly}" x2="${
        W - R + 45
      }" y2="${ly}" stroke="${c}" stroke-width="3"/>`,
    );
    out.push(`<text x="${W - R + 52}" y="${ly}" dominant-baseline="middle">${esc(s.name)}</text>`);
  });
  if (pts.length === 0) {
    out.push(
      `<text x="${(L + W - R) / 2}" y="${
        (T + H - B) / 2
      }" text-anchor="middle">no saturation data in this run</text>`,
    );
  }
  const ny = T + 10 + series.length * 22 + 10;
  out.push(
    `<circle cx="${W - R + 30}" cy="${ny}" r="4" stroke="#333" stroke-width="2" fill="white"/>`,
  );
  out.push(`<text x="${W - R + 52}" y="${ny}" dominant-baseline="middle">failed step</text>`);
  out.push("</svg>");
  return out.join("\n") + "\n";
}
