/**
 * The terminal client as a person sees it: `chat join` runs in a real
 * terminal (tmux), keys are typed into it and the screen is read back.
 * Needs tmux (`.ci/run` installs it).
 */
import assert from "node:assert/strict";
import { deadline, startServer, TestClient } from "./helpers.ts";
import type { ChatServer, ServeOptions } from "../server.ts";
import type { HelloFrame } from "../protocol.ts";
import { root, SHIPPED_FLAGS } from "./subprocess.ts";

/**
 * Runs tmux on the server at `socket` alone: every terminal has a tmux
 * server of its own, in the test's temporary folder, so that one ending
 * never races the next test's start on a shared server ("server exited
 * unexpectedly"), and nothing is left behind.
 */
async function tmux(socket: string, ...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("tmux", {
    args: ["-S", socket, ...args],
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(stdout);
  if (code !== 0) throw new Error(`tmux ${args[0]}: ${new TextDecoder().decode(stderr)}`);
  return text;
}

/** Polls the screen until `test` holds; the screen is all there is to wait on. */
async function screenUntil(session: string, test: (screen: string) => boolean, what: string) {
  let screen = "";
  await deadline(
    (async () => {
      for (;;) {
        screen = await tmux(session, "capture-pane", "-p", "-t", SESSION);
        if (test(screen)) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })(),
    10_000,
    `${what}; the screen:\n${screen}`,
  ).catch((error) => {
    throw new Error(`${error.message}\n${screen}`);
  });
  return screen;
}

/** `chat join` with these arguments, as one shell command line for tmux. */
function joinCommand(port: number, ...args: string[]): string {
  return [Deno.execPath(), "run", "--quiet", ...SHIPPED_FLAGS, new URL("main.ts", root).pathname]
    .concat(["join", `127.0.0.1:${port}`, ...args])
    .map((word) => `'${word}'`).join(" ");
}

/** Starts `command` in a detached tmux session of 100 x 20, on a tmux server at `socket`. */
async function startTerminal(socket: string, command: string): Promise<void> {
  await tmux(
    socket,
    "new-session",
    "-d",
    "-s",
    SESSION,
    "-x",
    "100",
    "-y",
    "20",
    `${command}; sleep 30`,
  );
}

/** The tmux session in each terminal's own tmux server. */
const SESSION = "chat";

const hasTmux = await new Deno.Command("tmux", { args: ["-V"] }).output().then((o) => o.success)
  .catch(() => false);

/** A `chat join` running in a terminal of its own. */
interface Terminal {
  /** The socket of this terminal's own tmux server, whose one session is `SESSION`. */
  session: string;
  /** Types `text` as it is. */
  type(text: string): Promise<void>;
  /** Presses keys by tmux's names for them (`Enter`, `Tab`, `C-c`). */
  keys(...keys: string[]): Promise<void>;
  /** Waits until the screen passes `test`; returns it. */
  screenUntil(test: (screen: string) => boolean, what: string): Promise<string>;
  /** Everything the client wrote to the terminal so far, escapes and bells included. */
  output(): Promise<string>;
}

/** What a terminal test is handed: a server, bob in it, and terminals to open. */
interface TerminalTest {
  server: ChatServer;
  bob: TestClient;
  /** Opens `chat join 127.0.0.1:PORT ARGS` (after `before`, e.g. an env setting), recorded. */
  open(args: string[], options?: { before?: string; after?: string; port?: number }): Promise<
    Terminal
  >;
}

/**
 * A test of the terminal client: starts a server (with `options.server`)
 * and bob, a protocol client in it (with `options.bob` in his hello), and
 * closes every terminal, bob and the server afterwards, whatever happened.
 */
function terminalTest(
  name: string,
  options: { server?: ServeOptions; bob?: Partial<HelloFrame> },
  body: (t: TerminalTest) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: !hasTmux,
    async fn() {
      const server = startServer(options.server);
      const bob = await TestClient.join(server, "bob", options.bob);
      const dir = await Deno.makeTempDir();
      const sessions: string[] = [];
      const open: TerminalTest["open"] = async (args, { before, after, port } = {}) => {
        const session = `${dir}/terminal-${sessions.length}`;
        sessions.push(session);
        const command = joinCommand(port ?? server.addr.port, ...args);
        await startTerminal(
          session,
          [before, command].filter(Boolean).join(" ") + (after ? `; ${after}` : ""),
        );
        const recording = `${session}.out`;
        await tmux(session, "pipe-pane", "-o", "-t", SESSION, `cat >> '${recording}'`);
        return {
          session,
          type: async (text) => void await tmux(session, "send-keys", "-t", SESSION, "-l", text),
          keys: async (...keys) => void await tmux(session, "send-keys", "-t", SESSION, ...keys),
          screenUntil: (test, what) => screenUntil(session, test, what),
          output: () => Deno.readTextFile(recording),
        };
      };
      try {
        await body({ server, bob, open });
      } finally {
        for (const session of sessions) {
          await tmux(session, "kill-session", "-t", SESSION).catch(() => {});
        }
        await Deno.remove(dir, { recursive: true });
        await bob.close();
        await server.shutdown();
      }
    },
  });
}

const lastLine = (screen: string) => screen.trimEnd().split("\n").at(-1);

terminalTest(
  "terminal: messages appear above the line being typed, escapes are defused, Ctrl-C leaves",
  {},
  async ({ bob, open }) => {
    const ada = await open(["--name", "ada"]);
    await ada.screenUntil((s) => s.includes("connected to chat as ada"), "welcome");
    await ada.screenUntil((s) => s.includes("ada@lobby>"), "prompt");

    await ada.type("half typed");
    await ada.screenUntil((s) => s.includes("ada@lobby> half typed"), "typing");
    await bob.send({ type: "msg", text: "hi \x1b[2J\x1b]0;pwned\x07 there" });
    // The screen is read while it is being redrawn: wait for the redraw to finish.
    const screen = await ada.screenUntil(
      (s) => s.includes("bob: hi") && lastLine(s) === "ada@lobby> half typed",
      "bob's message, and what was typed kept below it",
    );
    const lines = screen.trimEnd().split("\n");
    assert.match(lines.at(-2)!, /^\[\d\d:\d\d\] bob: hi \uFFFD\[2J\uFFFD\]0;pwned\uFFFD there$/);
    assert.equal(lines.at(-1), "ada@lobby> half typed", "what was typed is kept below");

    await ada.keys(" and sent", "Enter");
    await bob.frames.waitFor(
      (f) => f.type === "msg" && f.text === "half typed and sent",
      "ada's line",
    );
    const after = await ada.screenUntil(
      (s) => s.includes("ada: half typed and sent") && lastLine(s) === "ada@lobby>",
      "echo",
    );
    assert.ok(
      !after.includes("ada@lobby> half typed and sent"),
      "the entered line is replaced by the echo",
    );

    await ada.keys("/me waves", "Enter");
    const action = await bob.frames.waitFor((f) => f.type === "msg" && f.action === true, "/me");
    assert.equal(action.type === "msg" && action.text, "waves");
    await ada.screenUntil((s) => /\* ada waves/.test(s), "the action shown as * ada waves");

    await ada.keys("C-c");
    const leave = await bob.waitForEvent("leave", "ada");
    assert.equal(leave.type === "event" && leave.reason, "quit");
  },
);

terminalTest(
  "terminal: chat join asks for the password without showing it, and asks again if wrong",
  { server: { password: "s3cret-pass" }, bob: { password: "s3cret-pass" } },
  async ({ bob, open }) => {
    const ada = await open(["--name", "ada"]);
    await ada.screenUntil((s) => /Password for 127\.0\.0\.1:\d+:\s*$/m.test(s), "the prompt");
    await ada.type("wrong-guess");
    await ada.keys("Enter");
    await ada.screenUntil((s) => s.includes("wrong password"), "told it was wrong");
    // Asked again once the server's wait for this address is over.
    await ada.screenUntil(
      (s) => /wrong password[\s\S]*\nPassword for [^\n]*:\s*$/.test(s.trimEnd() + " "),
      "asked again",
    );
    await ada.type("s3cret-pass");
    await ada.keys("Enter");
    const screen = await ada.screenUntil(
      (s) => s.includes("connected to chat as ada"),
      "in with the right password",
    );
    assert.ok(!screen.includes("s3cret-pass") && !screen.includes("wrong-guess"), screen);
    await bob.waitForEvent("join", "ada");
    await ada.keys("C-c");
    await bob.waitForEvent("leave", "ada");
  },
);

terminalTest(
  "terminal: a mention of your name rings the bell once; --no-bell keeps it quiet",
  {},
  async ({ bob, open }) => {
    const rings: number[] = [];
    for (const [name, flags] of [["ada", []], ["bea", ["--no-bell"]]] as const) {
      const terminal = await open(["--name", name, ...flags]);
      await terminal.screenUntil((s) => s.includes(`${name}@lobby>`), "prompt");
      await bob.send({ type: "msg", text: `hey ${name.toUpperCase()}, look` });
      await bob.send({ type: "msg", text: `for nobody ${rings.length}` });
      await terminal.screenUntil((s) => s.includes(`for nobody ${rings.length}`), "both messages");
      rings.push((await terminal.output()).split("\x07").length - 1);
    }
    assert.deepEqual(rings, [1, 0], "one ring for the mention, none with --no-bell");
  },
);

terminalTest(
  "terminal: while the server is gone, one status line counts the attempts in place",
  {},
  async ({ server, open }) => {
    const ada = await open(["--name", "ada"]);
    await ada.screenUntil((s) => s.includes("ada@lobby>"), "prompt");
    await server.shutdown();
    const screen = await ada.screenUntil((s) => /attempt [4-9]/.test(s), "four attempts");
    assert.match(screen, /the server is shutting down/);
    const statusLines = screen.split("\n").filter((line) => line.includes("reconnecting in"));
    assert.equal(statusLines.length, 1, screen);
  },
);

terminalTest(
  "terminal: Tab completes a command, a name and a room; a second Tab cycles",
  { bob: { room: "team2" } },
  async ({ server, open }) => {
    const piperina = await TestClient.join(server, "piperina");
    const pippa = await TestClient.join(server, "pippa");
    try {
      const prompt = "ada@lobby> ";
      const ada = await open(["--name", "ada"]);
      await ada.screenUntil((s) => s.includes(prompt.trimEnd()), "prompt");
      const completes = async (typed: string, expected: string) => {
        await ada.keys("C-u");
        await ada.type(typed);
        await ada.keys("Tab");
        await ada.screenUntil(
          (s) => lastLine(s) === (prompt + expected).trimEnd(),
          `"${typed}" + Tab gives "${expected}"`,
        );
      };
      await completes("/jo", "/join ");
      await completes("/join te", "/join team2");
      await completes("/msg pipe", "/msg piperina ");
      await completes("pip", "piperina: ");
      await ada.keys("Tab");
      await ada.screenUntil((s) => lastLine(s) === prompt + "pippa:", "a second Tab: the next");
    } finally {
      await Promise.all([piperina.close(), pippa.close()]);
    }
  },
);

terminalTest(
  "terminal: a line of wide characters that wraps is replaced whole by its echo",
  {},
  async ({ bob, open }) => {
    const ada = await open(["--name", "ada"]);
    await ada.screenUntil((s) => s.includes("ada@lobby>"), "prompt");
    const text = "李".repeat(60) + "👍"; // 122 columns: two rows of the 100-column terminal
    await ada.type(text);
    await ada.keys("Enter");
    await bob.frames.waitFor((f) => f.type === "msg" && f.text === text, "the message");
    const screen = await ada.screenUntil(
      (s) => s.includes("ada: 李") && lastLine(s) === "ada@lobby>",
      "the echo, and a clean prompt below it",
    );
    // The echo "[hh:mm] ada: 李…👍" takes two rows; nothing of the typed line is left.
    const rows = screen.split("\n").filter((row) => row.includes("李") || row.includes("👍"));
    assert.equal(rows.length, 2, screen);
  },
);

terminalTest(
  "terminal: pasted lines go as messages in order; a long paste is sent only once confirmed",
  {},
  async ({ bob, open }) => {
    const ada = await open(["--name", "ada"]);
    const paste = async (lines: string[]) => {
      await tmux(ada.session, "set-buffer", "-b", "chat-paste", lines.join("\n") + "\n");
      await tmux(ada.session, "paste-buffer", "-b", "chat-paste", "-t", SESSION);
    };
    const texts = () => bob.messages().map((m) => m.text);
    await ada.screenUntil((s) => s.includes("ada@lobby>"), "prompt");

    await paste(["p1", "p2", "p3"]);
    await bob.frames.waitFor(() => texts().includes("p3"), "a short paste");
    assert.deepEqual(texts(), ["p1", "p2", "p3"]);

    const long = Array.from({ length: 8 }, (_, i) => `q${i + 1}`);
    await paste(long);
    await ada.screenUntil((s) => s.includes("send these 8 pasted lines"), "the question");
    await ada.keys("y", "Enter");
    await bob.frames.waitFor(() => texts().includes("q8"), "the long paste, confirmed");
    assert.deepEqual(texts().slice(3), long);

    await paste(Array.from({ length: 7 }, (_, i) => `r${i + 1}`));
    await ada.screenUntil((s) => s.includes("send these 7 pasted lines"), "asked again");
    await ada.keys("n", "Enter");
    await ada.screenUntil((s) => s.includes("the 7 pasted lines were not sent"), "dropped");
    await ada.type("after");
    await ada.keys("Enter");
    await bob.frames.waitFor(() => texts().includes("after"), "the next typed line");
    assert.ok(!texts().some((t) => t.startsWith("r")), "nothing of the refused paste");
  },
);

terminalTest(
  "terminal: a half-typed line survives a reconnect",
  {},
  async ({ server, open }) => {
    const port = server.addr.port;
    const ada = await open(["--name", "ada"]);
    await ada.screenUntil((s) => s.includes("ada@lobby>"), "prompt");
    await ada.type("half typed");
    await server.shutdown();
    await ada.screenUntil((s) => s.includes("reconnecting in"), "reconnecting");
    const again = startServer({ port }); // back on the same port
    try {
      await ada.screenUntil(
        (s) => s.includes("* reconnected") && lastLine(s) === "ada@lobby> half typed",
        "reconnected, with what was typed still there",
      );
      const cy = await TestClient.join(again, "cy");
      await ada.keys(" and sent", "Enter");
      await cy.frames.waitFor((f) => f.type === "msg" && f.text === "half typed and sent", "sent");
      await cy.close();
    } finally {
      await again.shutdown();
    }
  },
);

terminalTest(
  "terminal: /quit and Ctrl-C give the terminal back as it was",
  {},
  async ({ open }) => {
    for (const [name, keys] of [["ada", ["/quit", "Enter"]], ["bea", ["C-c"]]] as const) {
      const terminal = await open(["--name", name], { after: "stty -a" });
      await terminal.screenUntil((s) => s.includes(`${name}@lobby>`), "prompt");
      await terminal.keys(...keys);
      const screen = await terminal.screenUntil((s) => /\bicanon\b/.test(s), "stty's report");
      assert.match(screen, /(^|\s)icanon(\s|$)/m, "line editing is back");
      assert.match(screen, /(^|\s)echo(\s|$)/m, "echo is back");
      assert.doesNotMatch(screen, /-icanon|(^|\s)-echo(\s|$)/m);
    }
  },
);

terminalTest(
  "terminal: --color always colours names even with NO_COLOR; never and auto with NO_COLOR do not",
  {},
  async ({ bob, open }) => {
    const coloured: boolean[] = [];
    for (
      const [name, flags] of [["ada", ["--color", "always"]], ["bea", ["--color=never"]], [
        "cy",
        [],
      ]] as const
    ) {
      const terminal = await open(["--name", name, ...flags], { before: "NO_COLOR=1" });
      await terminal.screenUntil((s) => s.includes(`${name}@lobby>`), "prompt");
      await bob.send({ type: "msg", text: `hello ${name}` });
      await terminal.screenUntil((s) => s.includes(`bob: hello ${name}`), "message");
      // A colour or style (ESC [ … m), not the cursor movement readline also writes.
      const style = new RegExp(String.fromCharCode(27) + "\\[(\\d+;)*\\d+m");
      coloured.push(style.test(await terminal.output()));
    }
    assert.deepEqual(coloured, [true, false, false]);
  },
);
