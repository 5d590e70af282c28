/**
 * REFERENCE FOR BENCHMARKING ONLY - NOT PART OF THE PRODUCT. DO NOT USE.
 *
 * The classic lab-exercise chat server, ported literally to Deno so the
 * benchmark has a naive baseline to compare the real server against:
 * `for await` over the listener, `for await` over each connection's lines
 * (TextDecoderStream, split on "\n"), and for every line a sequential
 * `await conn.write(...)` to every client in a Set, the sender included.
 * No TCP_NODELAY, no per-client queues, no backpressure handling: one client
 * that stops reading stalls every broadcast. Those flaws are the point.
 *
 * Usage: deno run --allow-net bench/naive_server.ts --port P
 */

const portArg = Deno.args.indexOf("--port");
const port = portArg >= 0 ? Number(Deno.args[portArg + 1]) : 9000;
const clients = new Set<Deno.Conn>();
const encoder = new TextEncoder();

async function handle(conn: Deno.Conn): Promise<void> {
  clients.add(conn);
  let pending = "";
  try {
    for await (const chunk of conn.readable.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        for (const client of clients) {
          try {
            await client.write(encoder.encode(line + "\n"));
          } catch {
            clients.delete(client);
          }
        }
      }
    }
  } catch {
    // connection reset: fall through to cleanup
  } finally {
    clients.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed by the readable stream
    }
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
for await (const conn of listener) {
  handle(conn);
}
