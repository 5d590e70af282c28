/**
 * The web front door (`chat serve --web`): serves the chat page and upgrades
 * `/ws` to a WebSocket that the server then runs as a session.
 *
 * Each connection carries one request and is closed after the answer
 * (`Connection: close`); the page is four small files, so keep-alive would
 * buy nothing worth its state. A request head is read within a time limit
 * and at most 8 KiB, so a slow or endless request costs one small buffer.
 *
 * Everything the page needs is in `web/` inside the program, served with a
 * strict Content-Security-Policy (nothing runs but the page's own script;
 * no inline code, no other origin). A browser's `Origin` must be the page's
 * own, on a host that is an IP address, `localhost` or this machine's name,
 * or one the operator allowed with `--web-origin`: so a page on another site
 * (even one whose DNS name was pointed at the lab machine) cannot open a
 * chat socket in a student's name.
 *
 * @module
 */

import type { Connection } from "./session.ts";
import { acceptKey, WebSocketConn } from "./websocket.ts";
import { TIMED_OUT, within } from "../common/timeout.ts";

/** One file of the page. */
export interface Asset {
  type: string;
  body: Uint8Array;
}

/** The page's files by URL path. */
export type Assets = Map<string, Asset>;

const PAGE_FILES: Record<string, [file: string, type: string]> = {
  "/": ["index.html", "text/html; charset=utf-8"],
  "/app.js": ["app.js", "text/javascript; charset=utf-8"],
  "/names.js": ["names.js", "text/javascript; charset=utf-8"],
  "/style.css": ["style.css", "text/css; charset=utf-8"],
  "/icon.svg": ["icon.svg", "image/svg+xml"],
};

/**
 * Reads the page's files from `web/` (inside the compiled program, or beside
 * the source). Throws if one is missing.
 *
 * @example
 * ```ts
 * import { readAssets } from "./web.ts";
 * const assets = readAssets();
 * assets.get("/")?.type; // "text/html; charset=utf-8"
 * ```
 */
export function readAssets(): Assets {
  const assets: Assets = new Map();
  for (const [path, [file, type]] of Object.entries(PAGE_FILES)) {
    const body = Deno.readFileSync(new URL(`../web/${file}`, import.meta.url));
    assets.set(path, { type, body });
  }
  return assets;
}

/** Options for {@linkcode handleHttp}. */
export interface WebOptions {
  assets: Assets;
  /** Origins allowed besides the page's own, such as `https://chat.lab.example.edu`. */
  origins: readonly string[];
  /** Names this machine answers to, besides IP addresses and `localhost`. */
  hostNames: readonly string[];
  /** Time to send the request head. */
  timeoutMs: number;
}

const MAX_HEAD_BYTES = 8 * 1024;

const SECURITY_HEADERS = [
  "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; " +
  "img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "X-Content-Type-Options: nosniff",
  "Referrer-Policy: no-referrer",
  "Cache-Control: no-cache",
];

/**
 * Answers one HTTP request on `conn`. Returns the WebSocket when it was an
 * accepted upgrade to `/ws` (the caller runs the session and closes it);
 * otherwise answers, closes `conn` and returns undefined.
 *
 * @example
 * ```ts ignore
 * import { handleHttp, readAssets } from "./web.ts";
 * declare const tcp: Deno.TcpConn;
 * const options = { assets: readAssets(), origins: [], hostNames: [], timeoutMs: 10_000 };
 * const ws = await handleHttp(tcp, options);
 * if (ws) console.log("a browser joins");
 * ```
 */
export async function handleHttp(
  conn: Connection,
  options: WebOptions,
): Promise<WebSocketConn | undefined> {
  let request: Request | undefined;
  try {
    const started = performance.now();
    if (conn.handshake && await within(conn.handshake(), options.timeoutMs) === TIMED_OUT) {
      throw new Error("TLS handshake timed out");
    }
    const left = options.timeoutMs - (performance.now() - started);
    const read = await within(readHead(conn), left);
    if (read === undefined || read === TIMED_OUT) throw new Error("no request in time");
    request = read;
  } catch {
    closeQuietly(conn); // a stalled or broken request: nothing to answer
    return undefined;
  }
  try {
    if (request.error) return await answer(conn, 400, request.error);
    const { method, path, headers } = request;
    if (path === "/ws") {
      if (method !== "GET") return await answer(conn, 405, "use GET to open a WebSocket");
      if (headers.get("upgrade")?.toLowerCase() !== "websocket") {
        return await answer(conn, 426, "this address is for a WebSocket; the page is at /", [
          "Upgrade: websocket",
        ]);
      }
      const key = headers.get("sec-websocket-key");
      if (!key || headers.get("sec-websocket-version") !== "13") {
        return await answer(conn, 400, "a WebSocket needs Sec-WebSocket-Key and version 13", [
          "Sec-WebSocket-Version: 13",
        ]);
      }
      const origin = headers.get("origin");
      if (!originAllowed(origin, headers.get("host"), options)) {
        return await answer(
          conn,
          403,
          `a page from ${origin} may not open this chat; the server's operator can allow it ` +
            "with --web-origin",
        );
      }
      const switched = head(101, "Switching Protocols", [
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Accept: ${await acceptKey(key)}`,
      ]);
      if (await within(writeAll(conn, switched), options.timeoutMs) !== TIMED_OUT) {
        return new WebSocketConn(conn, request.leftover);
      }
      throw new Error("the browser does not read");
    }
    const asset = options.assets.get(path === "/index.html" ? "/" : path);
    if (asset === undefined) return await answer(conn, 404, "no such page; the chat is at /");
    if (method !== "GET" && method !== "HEAD") {
      return await answer(conn, 405, "only GET and HEAD", ["Allow: GET, HEAD"]);
    }
    const bytes = response(200, asset.type, asset.body, [], { headOnly: method === "HEAD" });
    await within(writeAll(conn, bytes), options.timeoutMs);
  } catch {
    // The browser went away; nothing to tell it.
  }
  closeQuietly(conn);
  return undefined;
}

/**
 * Whether a browser page from `origin` may open a chat socket on a server
 * reached as `host` (the request's Host header). No origin: not a browser.
 *
 * @example
 * ```ts
 * import { originAllowed } from "./web.ts";
 * const options = { origins: [], hostNames: ["lab1"] };
 * originAllowed("http://10.0.0.5:8080", "10.0.0.5:8080", options); // true: the page's own
 * originAllowed("https://evil.example", "10.0.0.5:8080", options); // false
 * originAllowed("http://evil.example:8080", "evil.example:8080", options); // false: DNS rebinding
 * ```
 */
export function originAllowed(
  origin: string | undefined,
  host: string | undefined,
  options: Pick<WebOptions, "origins" | "hostNames">,
): boolean {
  if (origin === undefined) return true;
  if (options.origins.includes(origin)) return true;
  if (host === undefined) return false;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return false;
  if (url.host !== host.toLowerCase()) return false;
  const name = url.hostname.toLowerCase();
  return name === "localhost" || isIpLiteral(name) ||
    options.hostNames.some((known) => known.toLowerCase() === name);
}

/**
 * The names this machine goes by on a LAN: its host name and the name's
 * first label. Not `NAME.local`: anyone on the LAN can answer for that one
 * (mDNS), which would let a page's DNS trick through. Empty when not allowed
 * to ask.
 *
 * @example
 * ```ts
 * import { machineNames } from "./web.ts";
 * machineNames(); // e.g. ["lab1.example.edu", "lab1"]
 * ```
 */
export function machineNames(): string[] {
  try {
    const name = Deno.hostname().toLowerCase();
    const short = name.split(".")[0];
    return [...new Set([name, short])];
  } catch {
    return [];
  }
}

function isIpLiteral(hostname: string): boolean {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname) || hostname.startsWith("[");
}

interface Request {
  method: string;
  path: string;
  headers: Map<string, string>;
  /** Bytes read past the head: the start of a WebSocket's first frames. */
  leftover: Uint8Array;
  /** Why the request cannot be answered, if it cannot. */
  error?: string;
}

/** Reads up to the blank line that ends a request head; undefined if the peer left first. */
async function readHead(conn: Connection): Promise<Request | undefined> {
  const buffer = new Uint8Array(MAX_HEAD_BYTES);
  let length = 0;
  let scanned = 0; // each byte is looked at about once, however the head is split
  for (;;) {
    const end = headEnd(buffer, scanned, length);
    if (end !== undefined) {
      return parseHead(buffer.subarray(0, end.at), buffer.slice(end.at + end.size, length));
    }
    scanned = Math.max(0, length - 3);
    if (length === buffer.length) {
      return parseHead(buffer, new Uint8Array(), `request head over ${MAX_HEAD_BYTES} bytes`);
    }
    const n = await conn.read(buffer.subarray(length));
    if (n === null) return undefined;
    length += n;
  }
}

/** Where the blank line ending a head is (CRLF CRLF, or LF LF), searching from `from`. */
function headEnd(
  buffer: Uint8Array,
  from: number,
  length: number,
): { at: number; size: number } | undefined {
  for (let i = from; i + 1 < length; i++) {
    if (buffer[i] !== 10) continue;
    if (buffer[i + 1] === 10) return { at: i, size: 2 };
    if (buffer[i + 1] === 13 && buffer[i + 2] === 10) {
      return buffer[i - 1] === 13 ? { at: i - 1, size: 4 } : { at: i, size: 3 };
    }
  }
  return undefined;
}

function parseHead(bytes: Uint8Array, leftover: Uint8Array, error?: string): Request {
  const lines = new TextDecoder().decode(bytes).split(/\r?\n/);
  const [method = "", target = "", version = ""] = lines[0].split(" ");
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  const path = target.split("?")[0];
  if (!error && (!version.startsWith("HTTP/1.") || !path.startsWith("/"))) {
    error = "not an HTTP/1.1 request";
  }
  return { method, path, headers, leftover, error };
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
};

async function answer(
  conn: Connection,
  status: number,
  message: string,
  extra: string[] = [],
): Promise<undefined> {
  const body = new TextEncoder().encode(message + "\n");
  await within(writeAll(conn, response(status, "text/plain; charset=utf-8", body, extra)), 1000);
  closeQuietly(conn);
  return undefined;
}

function response(
  status: number,
  type: string,
  body: Uint8Array,
  extra: string[] = [],
  { headOnly = false } = {},
): Uint8Array {
  const lines = [
    `Content-Type: ${type}`,
    `Content-Length: ${body.length}`,
    "Connection: close",
    ...SECURITY_HEADERS,
    ...extra,
  ];
  const top = head(status, STATUS_TEXT[status] ?? "", lines);
  if (headOnly) return top;
  const bytes = new Uint8Array(top.length + body.length);
  bytes.set(top);
  bytes.set(body, top.length);
  return bytes;
}

function head(status: number, text: string, lines: string[]): Uint8Array {
  return new TextEncoder().encode(`HTTP/1.1 ${status} ${text}\r\n${lines.join("\r\n")}\r\n\r\n`);
}

/** Closes a connection that shutdown may have closed already. */
function closeQuietly(conn: Connection): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

async function writeAll(conn: Connection, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}
