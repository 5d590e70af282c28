/**
 * REFERENCE FOR BENCHMARKING ONLY - NOT PART OF THE PRODUCT.
 *
 * The least a Deno broadcaster can do: TCP_NODELAY, one 512-byte read buffer
 * per connection, and every complete line written to every client at once
 * with no await, no queue, no framing beyond finding "\n", no limits. It is
 * not correct (a slow reader makes its writes pile up without bound, partial
 * writes are not resumed) and is not meant to be: it shows the runtime's own
 * floor for latency, throughput and memory per connection, so that the
 * distance between `chat` and what Deno itself allows can be read off the
 * benchmark.
 *
 * Usage: deno run --allow-net bench/floor_server.ts --port P
 */

const portArg = Deno.args.indexOf("--port");
const port = portArg >= 0 ? Number(Deno.args[portArg + 1]) : 9000;
const clients = new Set<Deno.TcpConn>();

async function handle(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  clients.add(conn);
  const buffer = new Uint8Array(512);
  let held = new Uint8Array(0);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      const data = new Uint8Array(held.length + n);
      data.set(held);
      data.set(buffer.subarray(0, n), held.length);
      const end = data.lastIndexOf(10) + 1;
      held = data.slice(end);
      if (end === 0) continue;
      const lines = data.slice(0, end);
      for (const client of clients) client.write(lines).catch(() => clients.delete(client));
    }
  } catch {
    // reset: clean up below
  } finally {
    clients.delete(conn);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

const listener = Deno.listen({ hostname: "127.0.0.1", port });
for await (const conn of listener) handle(conn);
