/**
 * What `chat join` reads besides its arguments: a CA certificate file, and
 * the password and operator token from the environment variables its flags
 * name, or the password typed at a hidden prompt.
 *
 * @module
 */

import { ExitCode, Failure, UsageError } from "../common/cli.ts";

/** What `chat join` reads from files and the environment, named by its flags. */
export interface JoinSecrets {
  caCerts?: string[];
  password?: string;
  opToken?: string;
}

/**
 * Reads the files and variables the options name; throws a `UsageError` for
 * an unset variable and a `Failure` for an unreadable file.
 *
 * @example
 * ```ts
 * import { readJoinSecrets } from "./secrets.ts";
 * const secrets = readJoinSecrets({ passwordEnv: "CHAT_PASSWORD" });
 * ```
 */
export function readJoinSecrets(
  options: { tls?: { caFile?: string }; passwordEnv?: string; opTokenEnv?: string },
): JoinSecrets {
  const env = (flag: string, name: string) => {
    const value = Deno.env.get(name);
    if (!value) {
      throw new UsageError(
        `${flag} ${name}: the environment variable ${name} is not set`,
        "Set it first, or leave out the flag to be asked in the terminal.",
      );
    }
    return value;
  };
  const secrets: JoinSecrets = {};
  if (options.tls?.caFile !== undefined) {
    try {
      secrets.caCerts = [Deno.readTextFileSync(options.tls.caFile)];
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new Failure(`cannot read --ca ${options.tls.caFile}: ${reason}`, ExitCode.unavailable);
    }
  }
  if (options.passwordEnv !== undefined) {
    secrets.password = env("--password-env", options.passwordEnv);
  }
  if (options.opTokenEnv !== undefined) secrets.opToken = env("--op-token-env", options.opTokenEnv);
  return secrets;
}

/**
 * Asks for a secret on the terminal without showing what is typed; Ctrl-C
 * or Ctrl-D gives up (a `Failure`, exit code 7).
 *
 * @example
 * ```ts ignore
 * import { promptHidden } from "./secrets.ts";
 * const password = await promptHidden("Password: ");
 * ```
 */
export async function promptHidden(question: string): Promise<string> {
  const encoder = new TextEncoder();
  await Deno.stderr.write(encoder.encode(question));
  const bytes: number[] = [];
  const buffer = new Uint8Array(256);
  Deno.stdin.setRaw(true);
  try {
    reading: for (;;) {
      const n = await Deno.stdin.read(buffer);
      if (n === null) break;
      for (const byte of buffer.subarray(0, n)) {
        if (byte === 13 || byte === 10) break reading;
        if (byte === 3 || byte === 4) {
          throw new Failure("no password given", ExitCode.authFailed); // Ctrl-C, Ctrl-D
        }
        if (byte === 127 || byte === 8) {
          // Backspace: drop one whole UTF-8 character.
          while (bytes.length > 0 && (bytes[bytes.length - 1] & 0xc0) === 0x80) bytes.pop();
          bytes.pop();
        } else if (byte >= 0x20) {
          bytes.push(byte);
        }
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(encoder.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
