/**
 * `chat`: the one entry point. It reads the command and hands over to the
 * server (`chat serve`) or the client (`chat join`), and turns failures into
 * a message and an exit code.
 *
 * @module
 */

import config from "./deno.json" with { type: "json" };
import { ExitCode, Failure, UsageError } from "./common/cli.ts";

const HELP = `chat ${config.version}: a chat server and client for computer labs

Usage:
  chat serve [options]               run a server (default port 5050)
  chat join [HOST[:PORT]] [options]  join one (default 127.0.0.1:5050)
  chat log --db FILE [options]       export what a server stored with --db
  chat help                          show this help
  chat --version                     show the version

Run 'chat serve --help', 'chat join --help' or 'chat log --help' for their options.
Plain-text clients can join too: nc HOST 5050, or telnet HOST 5050.`;

/** Runs the command line; resolves to the exit code. */
async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  // Each command loads only what it uses: a server starts without the terminal client's modules.
  switch (command) {
    case "serve":
      return await (await import("./server.ts")).runServe(rest);
    case "join":
      return await (await import("./client.ts")).runJoin(rest);
    case "log":
      return await (await import("./transcript.ts")).runLog(rest);
    case "help":
    case "--help":
    case "-h":
      console.log(HELP);
      return ExitCode.ok;
    case "--version":
    case "-V":
      console.log(`chat ${config.version}`);
      return ExitCode.ok;
    case undefined:
      throw new UsageError("no command given", "Run 'chat help' for the commands.");
    default:
      throw new UsageError(`unknown command "${command}"`, "Run 'chat help' for the commands.");
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`chat: ${error.message}\n${error.help}`);
      code = ExitCode.usage;
    } else if (error instanceof Failure) {
      console.error(`chat: ${error.message}`);
      code = error.exitCode;
    } else {
      console.error("chat: unexpected error (please report it):", error);
      code = ExitCode.internal;
    }
  }
  Deno.exit(code);
}
