/**
 * The terminal client as a person sees it: `chat join` runs in a real
 * terminal (tmux), keys are typed into it and the screen is read back.
 * Needs tmux (`.ci/run` installs it).
 */
import assert from "node:assert/strict";
import { deadline, startServer, TestClient } from "./helpers.ts";
import { root, SHIPPED_FLAGS } from "./subprocess.ts";

async function tmux(...args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command("tmux", { args, stdin: "null" }).output();
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
        screen = await tmux("capture-pane", "-p", "-t", session);
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

/** Starts `command` in a detached tmux session of 100 x 20. */
async function startTerminal(session: string, command: string): Promise<void> {
  await tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "20", `${command}; sleep 30`);
}

const hasTmux = await new Deno.Command("tmux", { args: ["-V"] }).output().then((o) => o.success)
  .catch(() => false);

Deno.test({
  name: "terminal: messages appear above the line being typed, escapes are defused, Ctrl-C leaves",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const bob = await TestClient.join(server, "bob");
    const session = `chat-test-${Deno.pid}`;
    try {
      await startTerminal(session, joinCommand(server.addr.port, "--name", "ada"));
      await screenUntil(session, (s) => s.includes("connected to chat as ada"), "welcome");
      await screenUntil(session, (s) => s.includes("ada@lobby>"), "prompt");

      await tmux("send-keys", "-t", session, "-l", "half typed");
      await screenUntil(session, (s) => s.includes("ada@lobby> half typed"), "typing");
      await bob.send({ type: "msg", text: "hi \x1b[2J\x1b]0;pwned\x07 there" });
      // The screen is read while it is being redrawn: wait for the redraw to finish.
      const lastLine = (s: string) => s.trimEnd().split("\n").at(-1);
      const screen = await screenUntil(
        session,
        (s) => s.includes("bob: hi") && lastLine(s) === "ada@lobby> half typed",
        "bob's message, and what was typed kept below it",
      );
      const lines = screen.trimEnd().split("\n");
      assert.match(lines.at(-2)!, /^\[\d\d:\d\d\] bob: hi \uFFFD\[2J\uFFFD\]0;pwned\uFFFD there$/);
      assert.equal(lines.at(-1), "ada@lobby> half typed", "what was typed is kept below");

      await tmux("send-keys", "-t", session, " and sent", "Enter");
      await bob.frames.waitFor(
        (f) => f.type === "msg" && f.text === "half typed and sent",
        "ada's line",
      );
      const after = await screenUntil(
        session,
        (s) => s.includes("ada: half typed and sent") && lastLine(s) === "ada@lobby>",
        "echo",
      );
      assert.ok(
        !after.includes("ada@lobby> half typed and sent"),
        "the entered line is replaced by the echo",
      );

      await tmux("send-keys", "-t", session, "/me waves", "Enter");
      const action = await bob.frames.waitFor((f) => f.type === "msg" && f.action === true, "/me");
      assert.equal(action.type === "msg" && action.text, "waves");
      await screenUntil(session, (s) => /\* ada waves/.test(s), "the action shown as * ada waves");

      await tmux("send-keys", "-t", session, "C-c");
      const leave = await bob.waitForEvent("leave", "ada");
      assert.equal(leave.type === "event" && leave.reason, "quit");
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      await bob.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: chat join asks for the password without showing it, and asks again if wrong",
  ignore: !hasTmux,
  async fn() {
    const server = startServer({ password: "s3cret-pass" });
    const bob = await TestClient.join(server, "bob", { password: "s3cret-pass" });
    const session = `chat-password-${Deno.pid}`;
    try {
      await startTerminal(session, joinCommand(server.addr.port, "--name", "ada"));
      await screenUntil(
        session,
        (s) => /Password for 127\.0\.0\.1:\d+:\s*$/m.test(s),
        "the prompt",
      );
      await tmux("send-keys", "-t", session, "-l", "wrong-guess");
      await tmux("send-keys", "-t", session, "Enter");
      await screenUntil(session, (s) => s.includes("wrong password"), "told it was wrong");
      // Asked again once the server's wait for this address is over.
      await screenUntil(
        session,
        (s) => /wrong password[\s\S]*\nPassword for [^\n]*:\s*$/.test(s.trimEnd() + " "),
        "asked again",
      );
      await tmux("send-keys", "-t", session, "-l", "s3cret-pass");
      await tmux("send-keys", "-t", session, "Enter");
      const screen = await screenUntil(
        session,
        (s) => s.includes("connected to chat as ada"),
        "in with the right password",
      );
      assert.ok(!screen.includes("s3cret-pass") && !screen.includes("wrong-guess"), screen);
      await bob.waitForEvent("join", "ada");
      await tmux("send-keys", "-t", session, "C-c");
      await bob.waitForEvent("leave", "ada");
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      await bob.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: a mention of your name rings the bell once; --no-bell keeps it quiet",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const bob = await TestClient.join(server, "bob");
    const dir = await Deno.makeTempDir();
    const sessions: string[] = [];
    try {
      const rings: number[] = [];
      for (const flags of [[], ["--no-bell"]]) {
        const session = `chat-bell-${Deno.pid}-${sessions.length}`;
        sessions.push(session);
        const name = `ada${sessions.length}`;
        await startTerminal(session, joinCommand(server.addr.port, "--name", name, ...flags));
        const output = `${dir}/${session}.out`;
        await tmux("pipe-pane", "-o", "-t", session, `cat >> '${output}'`);
        await screenUntil(session, (s) => s.includes(`${name}@lobby>`), "prompt");
        await bob.send({ type: "msg", text: `hey ${name.toUpperCase()}, look` });
        await bob.send({ type: "msg", text: "not for anyone" });
        await screenUntil(session, (s) => s.includes("not for anyone"), "both messages");
        const raw = await Deno.readTextFile(output);
        rings.push(raw.split("\x07").length - 1);
      }
      assert.deepEqual(rings, [1, 0], "one ring for the mention, none with --no-bell");
    } finally {
      for (const session of sessions) await tmux("kill-session", "-t", session).catch(() => {});
      await Deno.remove(dir, { recursive: true });
      await bob.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: while the server is gone, one status line counts the attempts in place",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const session = `chat-reconnect-${Deno.pid}`;
    let stopped = false;
    try {
      await startTerminal(session, joinCommand(server.addr.port, "--name", "ada"));
      await screenUntil(session, (s) => s.includes("ada@lobby>"), "prompt");
      await server.shutdown();
      stopped = true;
      const screen = await screenUntil(
        session,
        (s) => /attempt [4-9]/.test(s),
        "four attempts to reconnect",
      );
      assert.match(screen, /the server is shutting down/);
      const statusLines = screen.split("\n").filter((line) => line.includes("reconnecting in"));
      assert.equal(statusLines.length, 1, screen);
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      if (!stopped) await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: Tab completes a command, a name and a room; a second Tab cycles",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const piperina = await TestClient.join(server, "piperina");
    const pippa = await TestClient.join(server, "pippa");
    const bob = await TestClient.join(server, "bob", { room: "team2" });
    const session = `chat-tab-${Deno.pid}`;
    const prompt = "ada@lobby> ";
    const typed = async (keys: string, expected: string) => {
      await tmux("send-keys", "-t", session, "C-u");
      await tmux("send-keys", "-t", session, "-l", keys);
      await tmux("send-keys", "-t", session, "Tab");
      const screen = await screenUntil(
        session,
        (s) => s.trimEnd().split("\n").at(-1) === (prompt + expected).trimEnd(),
        `"${keys}" + Tab gives "${expected}"`,
      );
      return screen;
    };
    try {
      await startTerminal(session, joinCommand(server.addr.port, "--name", "ada"));
      await screenUntil(session, (s) => s.includes(prompt.trimEnd()), "prompt");
      await typed("/jo", "/join ");
      await typed("/join te", "/join team2");
      await typed("/msg pipe", "/msg piperina ");
      await typed("pip", "piperina: ");
      await tmux("send-keys", "-t", session, "Tab");
      await screenUntil(
        session,
        (s) => s.trimEnd().split("\n").at(-1) === prompt + "pippa:",
        "a second Tab: the next name",
      );
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      await Promise.all([piperina.close(), pippa.close(), bob.close()]);
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: a line of wide characters that wraps is replaced whole by its echo",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const bob = await TestClient.join(server, "bob");
    const session = `chat-wide-${Deno.pid}`;
    try {
      await startTerminal(session, joinCommand(server.addr.port, "--name", "ada"));
      await screenUntil(session, (s) => s.includes("ada@lobby>"), "prompt");
      const text = "李".repeat(60) + "👍"; // 122 columns: two rows of the 100-column terminal
      await tmux("send-keys", "-t", session, "-l", text);
      await tmux("send-keys", "-t", session, "Enter");
      await bob.frames.waitFor((f) => f.type === "msg" && f.text === text, "the message");
      const screen = await screenUntil(
        session,
        (s) => s.includes("ada: 李") && s.trimEnd().split("\n").at(-1) === "ada@lobby>",
        "the echo, and a clean prompt below it",
      );
      // The echo "[hh:mm] ada: 李…👍" takes two rows; nothing of the typed line is left.
      const rows = screen.split("\n").filter((row) => row.includes("李") || row.includes("👍"));
      assert.equal(rows.length, 2, screen);
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      await bob.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: pasted lines go as messages in order; a long paste is sent only once confirmed",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const bob = await TestClient.join(server, "bob");
    const session = `chat-paste-${Deno.pid}`;
    const paste = async (lines: string[]) => {
      await tmux("set-buffer", "-b", "chat-paste", lines.join("\n") + "\n");
      await tmux("paste-buffer", "-b", "chat-paste", "-t", session);
    };
    const texts = () => bob.messages().map((m) => m.text);
    try {
      await startTerminal(session, joinCommand(server.addr.port, "--name", "ada"));
      await screenUntil(session, (s) => s.includes("ada@lobby>"), "prompt");

      await paste(["p1", "p2", "p3"]);
      await bob.frames.waitFor(() => texts().includes("p3"), "a short paste");
      assert.deepEqual(texts(), ["p1", "p2", "p3"]);

      const long = Array.from({ length: 8 }, (_, i) => `q${i + 1}`);
      await paste(long);
      await screenUntil(session, (s) => s.includes("send these 8 pasted lines"), "the question");
      await tmux("send-keys", "-t", session, "y", "Enter");
      await bob.frames.waitFor(() => texts().includes("q8"), "the long paste, confirmed");
      assert.deepEqual(texts().slice(3), long);

      await paste(Array.from({ length: 7 }, (_, i) => `r${i + 1}`));
      await screenUntil(session, (s) => s.includes("send these 7 pasted lines"), "asked again");
      await tmux("send-keys", "-t", session, "n", "Enter");
      await screenUntil(session, (s) => s.includes("the 7 pasted lines were not sent"), "dropped");
      await tmux("send-keys", "-t", session, "-l", "after");
      await tmux("send-keys", "-t", session, "Enter");
      await bob.frames.waitFor(() => texts().includes("after"), "the next typed line");
      assert.ok(!texts().some((t) => t.startsWith("r")), "nothing of the refused paste");
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      await bob.close();
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: a half-typed line survives a reconnect",
  ignore: !hasTmux,
  async fn() {
    let server = startServer();
    const port = server.addr.port;
    const session = `chat-keep-${Deno.pid}`;
    try {
      await startTerminal(session, joinCommand(port, "--name", "ada"));
      await screenUntil(session, (s) => s.includes("ada@lobby>"), "prompt");
      await tmux("send-keys", "-t", session, "-l", "half typed");
      await server.shutdown();
      await screenUntil(session, (s) => s.includes("reconnecting in"), "reconnecting");
      server = startServer({ port }); // back on the same port
      const lastLine = (s: string) => s.trimEnd().split("\n").at(-1);
      await screenUntil(
        session,
        (s) => s.includes("* reconnected") && lastLine(s) === "ada@lobby> half typed",
        "reconnected, with what was typed still there",
      );
      const bob = await TestClient.join(server, "bob");
      await tmux("send-keys", "-t", session, " and sent", "Enter");
      await bob.frames.waitFor((f) => f.type === "msg" && f.text === "half typed and sent", "sent");
      await bob.close();
    } finally {
      await tmux("kill-session", "-t", session).catch(() => {});
      await server.shutdown();
    }
  },
});

Deno.test({
  name: "terminal: /quit and Ctrl-C give the terminal back as it was",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const sessions: string[] = [];
    try {
      for (const [name, keys] of [["ada", ["/quit", "Enter"]], ["bea", ["C-c"]]] as const) {
        const session = `chat-restore-${Deno.pid}-${name}`;
        sessions.push(session);
        const command = `${joinCommand(server.addr.port, "--name", name)}; stty -a`;
        await startTerminal(session, command);
        await screenUntil(session, (s) => s.includes(`${name}@lobby>`), "prompt");
        if (keys.length === 2) await tmux("send-keys", "-t", session, "-l", keys[0]);
        await tmux("send-keys", "-t", session, keys.at(-1)!);
        const screen = await screenUntil(session, (s) => /\bicanon\b/.test(s), "stty's report");
        assert.match(screen, /(^|\s)icanon(\s|$)/m, "line editing is back");
        assert.match(screen, /(^|\s)echo(\s|$)/m, "echo is back");
        assert.doesNotMatch(screen, /-icanon|(^|\s)-echo(\s|$)/m);
      }
    } finally {
      for (const session of sessions) await tmux("kill-session", "-t", session).catch(() => {});
      await server.shutdown();
    }
  },
});

Deno.test({
  name:
    "terminal: --color always colours names even with NO_COLOR; never and auto with NO_COLOR do not",
  ignore: !hasTmux,
  async fn() {
    const server = startServer();
    const bob = await TestClient.join(server, "bob");
    const dir = await Deno.makeTempDir();
    const sessions: string[] = [];
    try {
      const coloured: boolean[] = [];
      for (const flags of [["--color", "always"], ["--color=never"], []]) {
        const session = `chat-color-${Deno.pid}-${sessions.length}`;
        sessions.push(session);
        const name = `ada${sessions.length}`;
        const command = joinCommand(server.addr.port, "--name", name, ...flags);
        await startTerminal(session, `NO_COLOR=1 ${command}`);
        const output = `${dir}/${session}.out`;
        await tmux("pipe-pane", "-o", "-t", session, `cat >> '${output}'`);
        await screenUntil(session, (s) => s.includes(`${name}@lobby>`), "prompt");
        await bob.send({ type: "msg", text: `hello ${sessions.length}` });
        await screenUntil(session, (s) => s.includes(`bob: hello ${sessions.length}`), "message");
        const raw = await Deno.readTextFile(output);
        // A colour or style (ESC [ … m), not the cursor movement readline also writes.
        coloured.push(new RegExp(String.fromCharCode(27) + "\\[(\\d+;)*\\d+m").test(raw));
      }
      assert.deepEqual(coloured, [true, false, false]);
    } finally {
      for (const session of sessions) await tmux("kill-session", "-t", session).catch(() => {});
      await Deno.remove(dir, { recursive: true });
      await bob.close();
      await server.shutdown();
    }
  },
});
