/**
 * The database's own thread. SQLite calls block, so they run here rather
 * than on the server's event loop: a slow disk or another process's lock
 * delays the messages being stored, never a `ping` or another room.
 *
 * Requests are handled one at a time, in the order they were posted, and
 * each is answered with its `n`; see {@linkcode StoreWriter} for the other
 * end.
 *
 * @module
 */

import { SqliteStore } from "./sqlite.ts";
import type { WorkerReply, WorkerRequest } from "./writer.ts";

/** How long a write waits for another process's lock before it fails. */
const BUSY_TIMEOUT_MS = 250;

let path: string | undefined;
let store: SqliteStore | undefined;

/**
 * The open database. An open that failed (another process held a lock at
 * that moment) is tried again by the next request, which fails with its
 * reason if it fails again.
 */
function opened(): SqliteStore {
  if (path === undefined) throw new Error("the database thread was given no path");
  return store ??= SqliteStore.open(path, { busyTimeoutMs: BUSY_TIMEOUT_MS });
}

function handle(request: WorkerRequest): void {
  switch (request.kind) {
    case "open":
      path = request.path;
      opened();
      return;
    case "write":
      return opened().write(request.messages, request.rooms);
    case "reserve":
      return opened().reserveIdsUntil(request.until);
    case "ban":
      return opened().saveBan(request.ban);
    case "unban":
      return opened().removeBan(request.key);
    case "close":
      store?.close();
      store = undefined;
      path = undefined;
      return;
  }
}

// The worker's global scope, typed without the worker lib (which clashes with the main one).
const scope = self as unknown as {
  onmessage: (event: MessageEvent<WorkerRequest>) => void;
  postMessage: (reply: WorkerReply) => void;
};

scope.onmessage = (event) => {
  let reply: WorkerReply;
  try {
    handle(event.data);
    reply = { n: event.data.n, ok: true };
  } catch (error) {
    reply = {
      n: event.data.n,
      ok: false,
      error: error instanceof Error ? error.message : `${error}`,
    };
  }
  scope.postMessage(reply);
};
