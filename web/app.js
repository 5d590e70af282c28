// The chat page: a browser client of the same protocol as `chat join`, over a WebSocket.
//
// It speaks the JSON frames of PROTOCOL.md: one frame per WebSocket message out, one or more
// JSON lines per message in. Like `chat join`, it resumes after a dropped connection with the
// welcome's token and the last seq seen (nothing missed, nothing doubled) and sends one message
// at a time, each confirmed by the server's echo of its ref. Every piece of text from the
// network is put on the page with textContent, never as HTML.

import { mentions, nameColourIndex } from "./names.js";

const PROTOCOL_VERSION = 1;
const HISTORY = 50;
const MAX_LINES = 1000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;
/** Codes after which coming back would not help: the page stops and says why. */
const FINAL_CODES = new Set(["replaced", "kicked", "banned"]);
/** Codes that mean the join itself was refused: back to the form. */
const JOIN_CODES = new Set(["name_taken", "bad_name", "bad_room", "auth_failed", "too_many_rooms"]);

const $ = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
const joinView = $("join-view");
const chatView = $("chat-view");
const joinForm = /** @type {HTMLFormElement} */ ($("join-form"));
const joinName = /** @type {HTMLInputElement} */ ($("join-name"));
const joinRoom = /** @type {HTMLInputElement} */ ($("join-room"));
const joinPassword = /** @type {HTMLInputElement} */ ($("join-password"));
const joinError = $("join-error");
const log = $("log");
const logArea = /** @type {HTMLElement} */ (log.parentElement);
const statusLine = $("status");
const input = /** @type {HTMLInputElement} */ ($("message"));
const roomInput = /** @type {HTMLInputElement} */ ($("room-input"));

const state = {
  /** @type {WebSocket | undefined} */ ws: undefined,
  name: "",
  room: "lobby",
  password: "",
  /** @type {string | undefined} */ token: undefined,
  /** @type {number | undefined} */ seq: undefined,
  /** @type {string | undefined} */ epoch: undefined,
  /** @type {number | undefined} */ dmSeen: undefined,
  welcomed: false,
  /** After a welcome, sending waits for its replay: what it shows need not be sent again. */
  awaitingReplay: false,
  /** Set once the page will not reconnect (left, or refused for good). */
  stopped: false,
  attempt: 0,
  /** @type {ReturnType<typeof setTimeout> | undefined} */ retryTimer: undefined,
  /** Replayed messages still to come after a history frame. */
  replaying: 0,
  /** @type {Set<string>} */ users: new Set(),
  /** @type {Set<string>} */ ops: new Set(),
  online: 0,
  /** @type {{ name: string, members: number }[]} */ rooms: [],
  /** Messages typed and not yet confirmed by the server, in order. */
  /** @type {{ frame: Record<string, unknown>, ref: number }[]} */ outbox: [],
  inFlight: false,
  /** @type {ReturnType<typeof setTimeout> | undefined} */ resendTimer: undefined,
  nextRef: Date.now() * 1000,
  /** What was typed, for arrow-up. */
  /** @type {string[]} */ typed: [],
  typedAt: 0,
};

// ------------------------------------------------------------------ joining

function start() {
  const params = new URLSearchParams(location.search);
  joinName.value = params.get("name") ?? localStorage.getItem("chat.name") ?? "";
  joinRoom.value = params.get("room") ?? localStorage.getItem("chat.room") ?? "lobby";
  joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    join();
  });
  // A reload of a tab that was in the chat goes straight back in, taking its name back at once.
  const kept = sessionStorage.getItem("chat.session");
  if (kept) {
    const session = JSON.parse(kept);
    joinName.value = session.name;
    joinRoom.value = session.room;
    join(session.token);
  } else if (params.get("name")) join();
  else joinName.focus();
}

/** @param {string} [token] a token from before a reload of this tab */
function join(token) {
  const name = joinName.value.trim();
  if (name === "") return showJoinError("Choose a name first.");
  state.name = name;
  state.room = joinRoom.value.trim() || "lobby";
  state.password = joinPassword.value;
  localStorage.setItem("chat.name", name);
  localStorage.setItem("chat.room", state.room);
  state.stopped = false;
  state.welcomed = false;
  state.seq = state.epoch = state.dmSeen = undefined;
  state.token = token;
  joinError.hidden = true;
  connect();
}

/** @param {string} message */
function showJoinError(message) {
  joinError.textContent = message;
  joinError.hidden = false;
  joinView.hidden = false;
  chatView.hidden = true;
  joinName.focus();
}

// ------------------------------------------------------------------ the connection

function connect() {
  clearTimeout(state.retryTimer);
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${scheme}://${location.host}/ws`);
  state.ws = ws;
  setStatus("connecting", state.attempt === 0 ? "Connecting…" : "Reconnecting…");
  ws.addEventListener("open", () => {
    /** @type {Record<string, unknown>} */
    const hello = { type: "hello", version: PROTOCOL_VERSION, name: state.name, room: state.room };
    hello.history = HISTORY;
    if (state.seq !== undefined) Object.assign(hello, { since: state.seq, epoch: state.epoch });
    if (state.token !== undefined) hello.token = state.token;
    if (state.dmSeen !== undefined) hello.dmSince = state.dmSeen;
    if (state.password) hello.password = state.password;
    ws.send(JSON.stringify(hello));
  });
  ws.addEventListener("message", (event) => {
    if (ws !== state.ws) return;
    for (const line of String(event.data).split("\n")) {
      if (line === "") continue;
      let frame;
      try {
        frame = JSON.parse(line);
      } catch {
        continue; // not a frame: nothing to show
      }
      handle(frame);
    }
  });
  ws.addEventListener("close", () => {
    if (ws !== state.ws) return;
    state.ws = undefined;
    state.inFlight = false; // sent again after the next welcome's replay, if not seen in it
    clearTimeout(state.resendTimer);
    if (state.stopped) return setStatus("offline", "Disconnected");
    if (!state.welcomed && state.token === undefined && state.attempt > 2) {
      return showJoinError("Cannot reach the chat server. Is it running? Try again.");
    }
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  // Exponential backoff with "equal jitter", as chat join does.
  const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
  const delay = Math.round(cap / 2 + Math.random() * cap / 2);
  state.attempt++;
  setStatus("offline", `Connection lost; reconnecting in ${(delay / 1000).toFixed(1)} s`);
  state.retryTimer = setTimeout(connect, delay);
}

/** @param {Record<string, unknown>} frame */
function send(frame) {
  if (state.ws?.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(frame));
}

/**
 * @param {"online" | "connecting" | "offline"} kind
 * @param {string} text
 */
function setStatus(kind, text) {
  statusLine.dataset.state = kind;
  statusLine.textContent = text;
}

// ------------------------------------------------------------------ frames from the server

/** @param {any} frame */
function handle(frame) {
  switch (frame.type) {
    case "welcome":
      return welcomed(frame);
    case "room":
      state.room = frame.room;
      keepSession();
      state.seq = frame.seq;
      state.epoch = frame.epoch;
      setUsers(frame.users, [], frame.online);
      showRoom(frame.room, frame.topic);
      send({ type: "who" });
      return notice(`You are in ${frame.room} (${frame.online} here).`);
    case "history":
      state.replaying = frame.count;
      if (frame.restarted) {
        notice(`The server restarted without its history of ${frame.room}; its latest messages:`);
      }
      if (frame.count > 0) {
        notice(`${frame.count} earlier message(s) in ${frame.room}:`);
      }
      if (frame.count === 0) replayDone();
      return;
    case "msg":
      return message(frame);
    case "dm":
      if (frame.replay !== true || !seenDirect(frame.id)) direct(frame);
      return;
    case "event":
      return event(frame);
    case "who":
      if (frame.room === state.room) setUsers(frame.users, frame.ops ?? [], frame.online);
      return;
    case "rooms":
      state.rooms = frame.rooms;
      return renderRooms();
    case "error":
      return error(frame);
    case "ping":
      return send({ type: "pong", ...(frame.data === undefined ? {} : { data: frame.data }) });
  }
}

/** @param {any} frame */
function welcomed(frame) {
  const first = !state.welcomed;
  state.welcomed = true;
  state.attempt = 0;
  state.name = frame.name;
  const sameRoom = state.room === frame.room;
  state.room = frame.room;
  state.token = frame.token;
  // Resuming in the same numbering, the seq moves on only as the replay arrives: a link that
  // drops again during the replay asks again for what it has not had.
  const resumed = state.seq !== undefined && state.epoch === frame.epoch && sameRoom;
  if (!resumed) state.seq = frame.seq;
  state.epoch = frame.epoch;
  state.dmSeen ??= 0;
  state.awaitingReplay = true;
  keepSession();
  joinView.hidden = true;
  chatView.hidden = false;
  setStatus("online", `Connected as ${frame.name}`);
  setUsers(frame.users, frame.ops ?? [], frame.online);
  showRoom(frame.room, frame.topic);
  if (first) {
    notice(`Connected to ${frame.server} as ${frame.name}. Type /help for commands.`);
    if (frame.motd) notice(`Message of the day: ${frame.motd}`);
    input.focus();
  } else {
    notice("Reconnected.");
  }
  send({ type: "rooms" });
  send({ type: "who" });
}

/** What a reload of this tab needs to come back as the same person, in the same room. */
function keepSession() {
  const session = { name: state.name, room: state.room, token: state.token };
  sessionStorage.setItem("chat.session", JSON.stringify(session));
}

/** The status line as it is while connected. */
function restoreStatus() {
  if (state.ws?.readyState === WebSocket.OPEN && state.welcomed) {
    setStatus("online", `Connected as ${state.name}`);
  }
}

/** @param {any} frame */
function message(frame) {
  if (frame.room === state.room) state.seq = Math.max(state.seq ?? 0, frame.seq);
  const mine = frame.from === state.name;
  if (mine && frame.ref !== undefined) confirm(frame.ref);
  const line = frame.action
    ? [span(`* `), nameSpan(frame.from), span(` ${frame.text}`)]
    : [nameSpan(frame.from), span(`: ${frame.text}`)];
  const classes = [];
  if (frame.replay) classes.push("replay");
  if (mine) classes.push("mine");
  else if (mentions(frame.text, state.name)) classes.push("mention");
  append(frame.ts, line, classes);
  if (frame.replay && --state.replaying <= 0) replayDone();
}

/** @param {any} frame */
function direct(frame) {
  state.dmSeen = Math.max(state.dmSeen ?? 0, frame.id);
  if (frame.from === state.name && frame.ref !== undefined) confirm(frame.ref);
  append(
    frame.ts,
    [
      span("(private) "),
      nameSpan(frame.from),
      span(" → "),
      nameSpan(frame.to),
      span(`: ${frame.text}`),
    ],
    ["direct"],
  );
}

/** @param {number} id */
function seenDirect(id) {
  return state.dmSeen !== undefined && id <= state.dmSeen;
}

/** @param {any} frame */
function event(frame) {
  if (frame.room !== state.room) return;
  const by = frame.by ?? "?";
  switch (frame.event) {
    case "join":
      state.users.add(frame.name);
      state.online++;
      renderUsers();
      return noticeAt(frame.ts, `${frame.name} joined ${frame.room}`);
    case "leave":
    case "kick":
    case "ban":
      state.users.delete(frame.name);
      state.ops.delete(frame.name);
      state.online = Math.max(0, state.online - 1);
      renderUsers();
      if (frame.event === "leave") {
        return noticeAt(frame.ts, `${frame.name} left${frame.reason ? ` (${frame.reason})` : ""}`);
      }
      return noticeAt(
        frame.ts,
        `${by} ${frame.event === "kick" ? "removed" : "banned"} ` +
          `${frame.name}${frame.reason ? ` (${frame.reason})` : ""}`,
      );
    case "rename":
      state.users.delete(frame.from);
      state.users.add(frame.name);
      if (state.ops.delete(frame.from)) state.ops.add(frame.name);
      if (frame.from === state.name) {
        state.name = frame.name;
        localStorage.setItem("chat.name", frame.name);
        keepSession();
        setStatus("online", `Connected as ${frame.name}`);
      }
      renderUsers();
      return noticeAt(frame.ts, `${frame.from} is now ${frame.name}`);
    case "topic":
      showRoom(state.room, frame.topic ?? "");
      return noticeAt(frame.ts, `${frame.name} set the topic: ${frame.topic ?? ""}`);
    case "op":
      state.ops.add(frame.name);
      renderUsers();
      return noticeAt(frame.ts, `${frame.name} is now an operator`);
    case "mute":
    case "unban":
      return noticeAt(
        frame.ts,
        `${by} ${frame.event === "mute" ? "muted" : "lifted the ban on"} ${frame.name}` +
          (frame.minutes ? ` for ${frame.minutes} minute(s)` : ""),
      );
    case "motd":
      return noticeAt(frame.ts, `${by} set the message of the day: ${frame.text ?? ""}`);
  }
}

/** @param {any} frame */
function error(frame) {
  if (!state.welcomed && JOIN_CODES.has(frame.code)) {
    state.stopped = true;
    sessionStorage.removeItem("chat.session");
    if (frame.code === "auth_failed") $("password-field").hidden = false;
    // The server's advice is for chat join ("--name"); the form is where to choose here.
    return showJoinError(
      frame.message.replace(/; choose another with --name$/, "; choose another"),
    );
  }
  if (FINAL_CODES.has(frame.code)) {
    state.stopped = true;
    sessionStorage.removeItem("chat.session");
    setStatus("offline", "Disconnected");
  }
  if (frame.ref !== undefined && isInFlight(frame.ref)) {
    if (frame.code === "rate_limited" || frame.code === "storage_failed") {
      // Not sent, and worth sending again: what was typed is not lost.
      state.resendTimer = setTimeout(resendInFlight, frame.retryMs ?? 1000);
      if (frame.code === "storage_failed") {
        setStatus("connecting", "Messages wait: " + frame.message);
      }
      return;
    }
    if (frame.code !== "storage_failed") restoreStatus();
    confirm(frame.ref); // refused for good: shown below, and the next one goes
  }
  append(Date.now(), [span(frame.message)], ["error-line"]);
}

// ------------------------------------------------------------------ sending, one at a time

/** @param {Record<string, unknown>} frame */
function enqueue(frame) {
  state.outbox.push({ frame, ref: state.nextRef++ });
  pump();
}

function pump() {
  if (state.inFlight || state.replaying > 0 || state.awaitingReplay || !state.welcomed) return;
  const next = state.outbox[0];
  if (next === undefined || state.ws?.readyState !== WebSocket.OPEN) return;
  state.inFlight = true;
  send({ ...next.frame, ref: next.ref });
}

/** @param {number} ref */
function isInFlight(ref) {
  return state.inFlight && state.outbox[0]?.ref === ref;
}

/** @param {number} ref */
function confirm(ref) {
  const index = state.outbox.findIndex((item) => item.ref === ref);
  if (index < 0) return;
  restoreStatus();
  state.outbox.splice(0, index + 1);
  state.inFlight = false;
  clearTimeout(state.resendTimer);
  pump();
}

function resendInFlight() {
  state.inFlight = false;
  pump();
}

/** After a replay, what was in flight and not seen in it goes again; then the rest. */
function replayDone() {
  state.replaying = 0;
  state.awaitingReplay = false;
  state.inFlight = false;
  pump();
}

// ------------------------------------------------------------------ what the user types

/** @param {string} text */
function typed(text) {
  if (text.trim() === "") return;
  state.typed.push(text);
  if (state.typed.length > 100) state.typed.shift();
  state.typedAt = state.typed.length;
  if (!text.startsWith("/") || text.startsWith("//")) {
    return enqueue({ type: "msg", text: text.startsWith("//") ? text.slice(1) : text });
  }
  const [command, ...rest] = text.slice(1).split(" ");
  const arg = rest.join(" ").trim();
  const first = arg.split(" ")[0];
  const after = arg.slice(first.length).trim();
  switch (command.toLowerCase()) {
    case "me":
      return arg ? enqueue({ type: "msg", text: arg, action: true }) : usage("/me ACTION");
    case "msg":
    case "dm":
      return first && after
        ? enqueue({ type: "dm", to: first, text: after })
        : usage("/msg NAME TEXT");
    case "join":
      return first ? send({ type: "join", room: first }) : usage("/join ROOM");
    case "nick":
      return first ? send({ type: "nick", name: first }) : usage("/nick NAME");
    case "topic":
      return send({ type: "topic", text: arg });
    case "who":
      return send({ type: "who" });
    case "rooms":
      return send({ type: "rooms" });
    case "op":
      return first ? send({ type: "op", token: first }) : usage("/op TOKEN");
    case "kick":
    case "ban":
      return first
        ? send({ type: command, name: first, ...(after ? { reason: after } : {}) })
        : usage(`/${command} NAME [REASON]`);
    case "mute": {
      const minutes = Number.parseInt(after, 10);
      return first
        ? send({ type: "mute", name: first, ...(minutes > 0 ? { minutes } : {}) })
        : usage("/mute NAME [MINUTES]");
    }
    case "unban":
      return first ? send({ type: "unban", name: first }) : usage("/unban NAME");
    case "motd":
      return send({ type: "motd", text: arg });
    case "quit":
      state.stopped = true;
      sessionStorage.removeItem("chat.session");
      send({ type: "quit" });
      return setStatus("offline", "You left. Reload the page to come back.");
    case "help":
      return HELP.forEach((line) => notice(line));
    default:
      return append(Date.now(), [span(`Unknown command /${command}; try /help`)], ["error-line"]);
  }
}

const HELP = [
  "Commands: /join ROOM · /nick NAME · /msg NAME TEXT · /me ACTION · /topic TEXT · /who · /rooms",
  "/quit leaves. Start a message with // to send one that begins with /.",
  "Operators: /op TOKEN · /kick NAME · /mute NAME [MINUTES] · /ban NAME · /unban NAME · /motd TEXT",
  "Click a name to write to them privately. Arrow-up brings back what you sent.",
];

/** @param {string} form */
function usage(form) {
  append(Date.now(), [span(`Usage: ${form}`)], ["error-line"]);
}

$("send-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  input.value = "";
  typed(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "ArrowUp" && (input.value === "" || state.typedAt < state.typed.length)) {
    if (state.typedAt === 0) return;
    event.preventDefault();
    input.value = state.typed[--state.typedAt];
  } else if (event.key === "ArrowDown" && state.typedAt < state.typed.length) {
    event.preventDefault();
    input.value = state.typed[++state.typedAt] ?? "";
  }
});

$("room-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const room = roomInput.value.trim();
  if (room) send({ type: "join", room });
  roomInput.value = "";
});

// ------------------------------------------------------------------ rendering, as text only

/**
 * @param {number} ts
 * @param {Node[]} parts
 * @param {string[]} classes
 */
function append(ts, parts, classes) {
  const atBottom = logArea.scrollHeight - logArea.scrollTop - logArea.clientHeight < 40;
  const item = document.createElement("li");
  item.classList.add(...classes);
  const time = document.createElement("time");
  const date = new Date(ts);
  time.dateTime = date.toISOString();
  time.textContent = clock(date);
  item.append(time, ...parts);
  log.append(item);
  while (log.childElementCount > MAX_LINES) log.firstElementChild?.remove();
  if (atBottom) logArea.scrollTop = logArea.scrollHeight;
}

/** @param {string} text */
function notice(text) {
  noticeAt(Date.now(), text);
}

/**
 * @param {number} ts
 * @param {string} text
 */
function noticeAt(ts, text) {
  append(ts, [span(text)], ["notice"]);
}

/** @param {string} text */
function span(text) {
  const element = document.createElement("span");
  element.textContent = text;
  return element;
}

/** A name in the colour the terminal client gives it. @param {string} name */
function nameSpan(name) {
  const element = span(name);
  element.className = `who c${nameColourIndex(name)}`;
  return element;
}

/** @param {Date} date */
function clock(date) {
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}`;
}

/**
 * @param {string} room
 * @param {string} topic
 */
function showRoom(room, topic) {
  $("room-title").textContent = room;
  $("topic").textContent = topic;
  document.title = `${room} · chat`;
  renderRooms();
}

/**
 * @param {string[]} users
 * @param {string[]} ops
 * @param {number} online
 */
function setUsers(users, ops, online) {
  state.users = new Set(users);
  state.ops = new Set(ops);
  state.online = online;
  renderUsers();
}

function renderUsers() {
  const list = $("people");
  const sorted = [...state.users].sort((a, b) => a.localeCompare(b));
  list.replaceChildren(...sorted.map((name) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.append(span(state.ops.has(name) ? "@" : ""), nameSpan(name));
    button.title = name === state.name ? "you" : `write to ${name} privately`;
    button.addEventListener("click", () => {
      input.value = `/msg ${name} `;
      input.focus();
    });
    item.append(button);
    return item;
  }));
  const more = state.online - state.users.size;
  if (more > 0) {
    const item = document.createElement("li");
    item.textContent = `and ${more} more`;
    list.append(item);
  }
  $("people-heading").textContent = `In this room (${Math.max(state.online, state.users.size)})`;
  renderRooms(); // the count beside this room
}

function renderRooms() {
  const list = $("rooms");
  // The room we are in counts live; the others as the last rooms answer said.
  const others = state.rooms.filter((r) => r.name !== state.room);
  const rooms = [...others, { name: state.room, members: state.online }]
    .sort((a, b) => a.name.localeCompare(b.name));
  list.replaceChildren(...rooms.map((room) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = `${room.name} (${room.members})`;
    if (room.name === state.room) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => {
      if (room.name !== state.room) send({ type: "join", room: room.name });
    });
    item.append(button);
    return item;
  }));
}

start();
