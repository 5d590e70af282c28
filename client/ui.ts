/**
 * Where `chat join` shows what happens: a terminal with a line editor, or
 * plain lines (text, or JSON with `--json`) for pipes and scripts.
 *
 * @module
 */

import { mentions, nameColourIndex } from "../web/names.js";
import * as readline from "node:readline";
import process from "node:process";
import { styleText } from "node:util";
import type { ServerFrame } from "../protocol.ts";
import { renderFrame, type RenderOptions } from "../text/render.ts";
import { escapeJsonLine } from "../text/names.ts";
import type { Completer } from "./complete.ts";
import stringWidth from "string-width";

/**
 * The terminal rows `text` takes, by the columns its characters take (CJK
 * and emoji two, combining marks none).
 *
 * @example
 * ```ts
 * import { rowsOf } from "./ui.ts";
 * rowsOf("李".repeat(50), 80); // 2: a hundred columns
 * ```
 */
export function rowsOf(text: string, columns = process.stdout.columns || 80): number {
  return Math.max(1, Math.ceil(stringWidth(text) / columns));
}

/** Where frames and status lines are shown. */
export interface Ui {
  show(frame: ServerFrame): void;
  /** Marks where replayed messages end and the live ones begin. */
  endOfHistory(): void;
  /** A line of the client's own (status, help). */
  say(line: string): void;
  /**
   * A status that replaces the previous status, if nothing came between
   * (in a terminal, the same line is rewritten; elsewhere, a new line).
   */
  status(line: string): void;
  setPrompt(name: string, room: string): void;
  close(): void;
}

/**
 * Output for pipes and scripts: text lines, or JSON lines with --json.
 *
 * @example
 * ```ts
 * import { StreamUi } from "./ui.ts";
 * new StreamUi(true).show({ type: "pong" }); // pongs are not shown
 * ```
 */
export class StreamUi implements Ui {
  constructor(readonly json: boolean) {}
  show(frame: ServerFrame): void {
    if (frame.type === "pong") return;
    if (frame.type === "history" && !this.json && frame.count === 0 && frame.gone === 0) return;
    // Escaped, so that nothing reading the output meets raw control or bidi characters.
    const line = this.json ? escapeJsonLine(JSON.stringify(frame)) : renderFrame(frame);
    if (line !== undefined) console.log(line);
  }
  endOfHistory(): void {
    if (!this.json) console.log("* (end of earlier messages)");
  }
  say(line: string): void {
    console.error(line);
  }
  status(line: string): void {
    this.say(line);
  }
  setPrompt(): void {}
  close(): void {}
}

/** One for each of `nameColourIndex`'s six; the page has the same six, darker (web/style.css). */
const NAME_COLOURS = ["cyan", "green", "yellow", "magenta", "blue", "red"] as const;

// The web page shares these, so that a name looks the same everywhere.
export { mentions, nameColourIndex };

/** How a {@linkcode TerminalUi} shows things. */
export interface TerminalOptions {
  /** Colours and styles (`--color`). */
  color: boolean;
  /** Ring the bell for a mention or a private message (not with `--no-bell`). */
  bell: boolean;
  /** Our name now. */
  me: () => string;
  /** Tab completion. */
  completer?: Completer;
}

/**
 * A terminal: received lines appear above the line being typed.
 *
 * @example
 * ```ts ignore
 * import { TerminalUi } from "./ui.ts";
 * const ui = new TerminalUi({ color: true, bell: true, me: () => "ada" });
 * ui.setPrompt("ada", "lobby");
 * ui.say("* hello");
 * ui.close();
 * ```
 */
export class TerminalUi implements Ui {
  readonly rl: readline.Interface;
  readonly #render: RenderOptions;
  readonly #dim: (text: string) => string;
  readonly #style: (format: Parameters<typeof styleText>[0], text: string) => string;
  readonly #bell: boolean;
  /** Our name now, to tell our own messages and mentions of us. */
  readonly #me: () => string;
  /** The rows the last line printed took if it is a status, to be written over; else 0. */
  #statusShown = 0;

  constructor(options: TerminalOptions) {
    const completer = options.completer;
    this.rl = readline.createInterface({
      input: process.stdin,
      output: process.stdout,
      terminal: true,
      historySize: 100,
      ...(completer ? { completer: (line: string) => completer.complete(line) } : {}),
    });
    this.#bell = options.bell;
    this.#me = options.me;
    // validateStream: false, or styleText would read the environment.
    const style = (format: Parameters<typeof styleText>[0], text: string) =>
      options.color ? styleText(format, text, { validateStream: false }) : text;
    this.#style = style;
    this.#dim = (text) => style("dim", text);
    this.#render = {
      name: (name) => style(NAME_COLOURS[nameColourIndex(name)], name),
      notice: this.#dim,
    };
  }

  setPrompt(name: string, room: string): void {
    this.rl.setPrompt(`${name}@${room}> `);
  }

  show(frame: ServerFrame): void {
    if (frame.type === "history" && frame.count === 0 && frame.gone === 0) return;
    const line = renderFrame(frame, this.#render);
    if (line === undefined) return;
    if (frame.type !== "msg" && frame.type !== "dm") return this.say(line);
    if (frame.type === "msg" && frame.replay) return this.say(this.#dim(line));
    const me = this.#me();
    if (frame.from === me) return this.say(this.#style("bold", line)); // our own: in bold
    if (frame.type === "dm" || mentions(frame.text, me)) {
      // Meant for us: shown in reverse video, with one ring of the terminal bell.
      this.say(this.#style("inverse", line));
      if (this.#bell) process.stdout.write("\x07");
      return;
    }
    this.say(line);
  }

  endOfHistory(): void {
    this.say(this.#dim("* (end of earlier messages)"));
  }

  /** Prints above the input line, then redraws the prompt and what was typed. */
  say(line: string): void {
    this.#statusShown = 0;
    readline.clearLine(process.stdout, 0);
    readline.cursorTo(process.stdout, 0);
    process.stdout.write(line + "\n");
    this.rl.prompt(true);
  }

  status(line: string): void {
    const rows = this.#statusShown;
    if (rows > 0) {
      // The status is just above the prompt, on as many rows as it wrapped to: write over it.
      readline.moveCursor(process.stdout, 0, -rows);
      readline.cursorTo(process.stdout, 0);
      readline.clearScreenDown(process.stdout);
    }
    this.say(line);
    this.#statusShown = rowsOf(line);
  }

  /**
   * Erases the line just entered, on every row it wrapped to (wide
   * characters take two columns): the server's echo will show it.
   */
  eraseEntered(line: string): void {
    readline.moveCursor(process.stdout, 0, -rowsOf(this.rl.getPrompt() + line));
    readline.cursorTo(process.stdout, 0);
    readline.clearScreenDown(process.stdout);
  }

  close(): void {
    this.rl.close();
    process.stdout.write("\n"); // leave the shell prompt on a line of its own
  }
}
