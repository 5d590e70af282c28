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

let store: SqliteStore | undefined;
let openError: string | undefined;

function handle(request: WorkerRequest): void {
  switch (request.kind) {
    case "open":
      try {
        store = SqliteStore.open(request.path, { busyTimeoutMs: BUSY_TIMEOUT_MS });
      } catch (error) {
        openError = error instanceof Error ? error.message : String(error);
      }
      return;
    case "write":
      if (!store) throw new Error(openError ?? "the database is not open");
      return store.write(request.messages, request.rooms);
    case "reserve":
      if (!store) throw new Error(openError ?? "the database is not open");
      return store.reserveIdsUntil(request.until);
    case "ban":
      if (!store) throw new Error(openError ?? "the database is not open");
      return store.saveBan(request.ban);
    case "unban":
      if (!store) throw new Error(openError ?? "the database is not open");
      return store.removeBan(request.key);
    case "close":
      store?.close();
      store = undefined;
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
