/**
 * The web page, in real headless Chromium, against `chat serve --web` run as
 * users run it: people in browsers are full members of the same chat as
 * `chat join` and nc users.
 */

import assert from "node:assert/strict";
import type { Browser, Page } from "playwright-core";
import axe from "axe-core";
import { Chat, startServe, stop } from "./subprocess.ts";
import { launchBrowser, logLines, openPage, pageErrors, say, waitForLine } from "./browser.ts";
import { PlainClient, Proxy, TestClient } from "./helpers.ts";
import type { ChatServer } from "../server.ts";
import { nameColourIndex } from "../client/ui.ts";

/** A server with its web page, a browser, and everything a test opened, closed after it. */
async function withWebChat(
  body: (chat: { port: number; webPort: number; browser: Browser; serve: Chat }) => Promise<void>,
  ...extra: string[]
): Promise<void> {
  const { serve, port } = await startServe("--web", "127.0.0.1:0", ...extra);
  const url = await serve.waitFor(/http:\/\/127\.0\.0\.1:\d+\//);
  const webPort = Number(/:(\d+)\//.exec(url)![1]);
  const browser = await launchBrowser();
  try {
    await body({ port, webPort, browser, serve });
  } finally {
    await browser.close();
    await stop(serve);
  }
}

/** How many log lines of `page` contain `text`. */
async function count(page: Page, text: string): Promise<number> {
  return (await logLines(page)).filter((line) => line.includes(text)).length;
}

Deno.test("two pages, a chat join client and an nc client chat in one room", async () => {
  await withWebChat(async ({ port, webPort, browser }) => {
    const ada = await openPage(browser, `http://127.0.0.1:${webPort}/?name=ada&room=lab`);
    await waitForLine(ada, "Connected to");
    assert.equal(await ada.locator("#room-title").textContent(), "lab");
    const bea = await openPage(browser, `http://127.0.0.1:${webPort}/?name=bea&room=lab`);
    await waitForLine(bea, "Connected to");
    const cy = new Chat(["join", `127.0.0.1:${port}`, "--name", "cy", "--room", "lab"]);
    const nc = await PlainClient.connect({ addr: { port } });
    try {
      await cy.waitFor(/connected to/);
      await nc.waitFor((line) => line.includes("Welcome"), "nc banner");
      await nc.send("/join lab\r\n");
      await nc.waitFor((line) => line.includes("you are in lab"), "nc in lab");

      await say(ada, "hello from ada's browser");
      await say(bea, "hello from bea's browser");
      await cy.write("hello from cy's terminal\n");
      await nc.send("hello from nc\r\n");

      for (const page of [ada, bea]) {
        for (const text of ["ada's browser", "bea's browser", "cy's terminal", "from nc"]) {
          await waitForLine(page, text);
          assert.equal(await count(page, text), 1, `${text} once on the page`);
        }
      }
      await cy.waitFor(/ada: hello from ada's browser/);
      await cy.waitFor(/bea: hello from bea's browser/);
      await cy.waitFor(/hello from nc/);
      await nc.waitFor((line) => line.includes("ada: hello from ada's browser"), "ada on nc");
      await nc.waitFor((line) => line.includes("cy: hello from cy's terminal"), "cy on nc");

      // The same stable name colour as the terminal client's.
      const colour = await ada.locator("#log .who", { hasText: "bea" }).first().getAttribute(
        "class",
      );
      assert.match(colour!, new RegExp(`\\bc${nameColourIndex("bea")}\\b`));
      // The who-list and the room switcher.
      await ada.locator("#people", { hasText: "cy" }).waitFor();
      await ada.locator("#rooms button", { hasText: "lab" }).waitFor();
      assert.deepEqual(pageErrors.get(ada), []);
    } finally {
      await cy.exit();
      await nc.close();
    }
  });
});

Deno.test("a page remembers its name, comes back on reload, switches rooms and sends direct messages", async () => {
  await withWebChat(async ({ webPort, browser }) => {
    const context = await browser.newContext();
    const dee = await context.newPage();
    dee.setDefaultTimeout(10_000);
    await dee.goto(`http://127.0.0.1:${webPort}/`);
    await dee.getByLabel("Your name").fill("dee");
    await dee.getByRole("button", { name: "Join" }).click();
    await waitForLine(dee, "Connected to");
    // A reload goes straight back in under the same name (its token takes the name back).
    await dee.reload();
    await waitForLine(dee, "Connected to");
    assert.equal(await dee.locator("#status").textContent(), "Connected as dee");
    // Another tab of the same browser offers the name it used.
    const tab = await context.newPage();
    await tab.goto(`http://127.0.0.1:${webPort}/`);
    assert.equal(await tab.getByLabel("Your name").inputValue(), "dee");
    await tab.close();

    const eve = await openPage(browser, `http://127.0.0.1:${webPort}/?name=eve`);
    await waitForLine(eve, "Connected to");
    await eve.getByLabel("Join or create a room").fill("project");
    await eve.getByLabel("Join or create a room").press("Enter");
    await waitForLine(eve, "You are in project");
    assert.equal(await eve.locator("#room-title").textContent(), "project");
    // A direct message across rooms, to a page and back to its sender.
    await say(eve, "/msg dee a private word");
    await waitForLine(dee, "a private word");
    await waitForLine(eve, "a private word");
    assert.match((await logLines(dee)).find((l) => l.includes("a private word"))!, /\(private\)/);
    // Arrow-up brings back what was sent.
    await eve.getByLabel("Message", { exact: true }).press("ArrowUp");
    assert.equal(
      await eve.getByLabel("Message", { exact: true }).inputValue(),
      "/msg dee a private word",
    );
    // The room switcher: a click on a room goes there.
    await say(dee, "/rooms");
    await dee.locator("#rooms button", { hasText: "project" }).click();
    await waitForLine(dee, "You are in project");
    await context.close();
  });
});

Deno.test("a page whose socket is cut reconnects and shows exactly the missed messages", async () => {
  await withWebChat(async ({ port, webPort, browser }) => {
    const proxy = new Proxy(webPort);
    const cy = new Chat(["join", `127.0.0.1:${port}`, "--name", "cy"]);
    try {
      await cy.waitFor(/connected to/);
      const page = await openPage(browser, `http://127.0.0.1:${proxy.port}/?name=ada`);
      await waitForLine(page, "Connected to");
      await cy.write("before the cut\n");
      await waitForLine(page, "before the cut");

      proxy.hold();
      proxy.cut();
      await page.locator("#status", { hasText: "reconnecting" }).waitFor();
      for (let i = 1; i <= 3; i++) await cy.write(`missed ${i}\n`);
      await cy.waitFor(/cy: missed 3/);
      await say(page, "typed while offline");
      proxy.release();

      await waitForLine(page, "Reconnected");
      await waitForLine(page, "missed 3");
      await cy.waitFor(/ada: typed while offline/);
      for (const text of ["before the cut", "missed 1", "missed 2", "missed 3"]) {
        assert.equal(await count(page, text), 1, `"${text}" exactly once`);
      }
      await cy.write("after the cut\n");
      await waitForLine(page, "after the cut");
      assert.equal(await count(page, "typed while offline"), 1);
      assert.equal(cy.stdout.filter((l) => l.includes("typed while offline")).length, 1);
      assert.equal(await page.locator("#status").getAttribute("data-state"), "online");
    } finally {
      await cy.exit();
      await proxy.close();
    }
  });
});

Deno.test("HTML and script in messages, names and topics show as text", async () => {
  await withWebChat(async ({ port, webPort, browser }) => {
    const page = await openPage(browser, `http://127.0.0.1:${webPort}/?name=ada`);
    await waitForLine(page, "Connected to");
    const cy = new Chat(["join", `127.0.0.1:${port}`, "--name", "cy"]);
    const nc = await PlainClient.connect({ addr: { port } });
    try {
      await cy.waitFor(/connected to/);
      const attack = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`;
      await cy.write(`${attack}\n`);
      await waitForLine(page, "<script>window.pwned=2</script>");
      await nc.waitFor((line) => line.includes("Welcome"), "nc banner");
      await nc.send("/topic <b onmouseover=alert(1)>bold</b>\r\n");
      await page.locator("#topic", { hasText: "<b onmouseover" }).waitFor();
      assert.equal(await page.locator("#log img, #log script, #log b, #topic b").count(), 0);
      assert.equal(await page.evaluate(() => (globalThis as { pwned?: number }).pwned), undefined);
    } finally {
      await nc.close();
      await cy.exit();
    }
  });
});

Deno.test("the page passes axe-core's accessibility check, on a desktop and a phone", async () => {
  await withWebChat(async ({ webPort, browser }) => {
    for (const viewport of [{ width: 1100, height: 720 }, { width: 375, height: 667 }]) {
      const page = await openPage(browser, `http://127.0.0.1:${webPort}/`, viewport);
      assert.deepEqual(await axeViolations(page), [], `join form at ${viewport.width}px`);
      await page.getByLabel("Your name").fill(`p${viewport.width}`);
      await page.getByLabel("Your name").press("Enter");
      await waitForLine(page, "Connected to");
      await say(page, "a message to check the log's contrast");
      await waitForLine(page, "contrast");
      assert.deepEqual(await axeViolations(page), [], `chat at ${viewport.width}px`);
      // Nothing wider than the screen, and the input in view.
      const overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      assert.equal(overflow, 0, `no sideways scrolling at ${viewport.width}px`);
      assert.ok(await page.getByLabel("Message", { exact: true }).isVisible());
      // Keyboard only: Tab from the message input reaches the Send button.
      await page.getByLabel("Message", { exact: true }).focus();
      await page.keyboard.press("Tab");
      assert.equal(await page.evaluate("document.activeElement.textContent"), "Send");
      assert.deepEqual(pageErrors.get(page), [], "no script or CSP errors");
    }
  });
});

/** axe-core's WCAG 2 A and AA violations on the page as it is. */
async function axeViolations(page: Page): Promise<string[]> {
  // Evaluated through the DevTools protocol, which the page's CSP does not govern.
  await page.evaluate(axe.source);
  return await page.evaluate(`
    axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] }).then((result) =>
      result.violations.map((v) => v.id + ": " + JSON.stringify(v.nodes.map((n) => n.target)))
    )
  `) as string[];
}

Deno.test("a screenshot of a busy page is written to tests/artifacts/web.png", async () => {
  await withWebChat(async ({ port, webPort, browser }) => {
    const page = await openPage(browser, `http://127.0.0.1:${webPort}/?name=ada&room=lab`);
    await waitForLine(page, "Connected to");
    const bea = new Chat(["join", `127.0.0.1:${port}`, "--name", "bea", "--room", "lab"]);
    const dan = new Chat(["join", `127.0.0.1:${port}`, "--name", "dan", "--room", "lab"]);
    const cy = await PlainClient.connect({ addr: { port } });
    try {
      await bea.waitFor(/connected to/);
      await dan.waitFor(/connected to/);
      await cy.waitFor((line) => line.includes("Welcome"), "nc banner");
      await cy.send("/nick cy\r\n/join lab\r\n");
      await waitForLine(page, "cy joined lab");
      await cy.send("/topic Lab 3: sockets and threads\r\n");
      await bea.write("has anyone got the broadcast working?\n");
      await waitForLine(page, "broadcast working");
      await say(page, "yes: one queue per client, and never wait on a slow one");
      await waitForLine(page, "never wait");
      await cy.send("/me is reading the lab sheet from nc\r\n");
      await waitForLine(page, "lab sheet");
      await dan.write("ada, can you share your server.py?\n");
      await waitForLine(page, "share your server.py");
      await say(page, "/msg dan sending it privately");
      await waitForLine(page, "sending it privately");
      await Deno.mkdir(new URL("./artifacts/", import.meta.url), { recursive: true });
      const path = new URL("./artifacts/web.png", import.meta.url).pathname;
      await page.screenshot({ path });
      assert.ok((await Deno.stat(path)).size > 10_000);
    } finally {
      await cy.close();
      await bea.exit();
      await dan.exit();
    }
  });
});

Deno.test("a page cut again during the replay of what it missed still shows every message once", async () => {
  await withWebChat(
    async ({ port, webPort, browser }) => {
      const proxy = new Proxy(webPort);
      const sender = await TestClient.join({ addr: { port } } as unknown as ChatServer, "sender");
      try {
        const page = await openPage(browser, `http://127.0.0.1:${proxy.port}/?name=ada`);
        await waitForLine(page, "Connected to");
        proxy.hold();
        proxy.cut();
        await page.locator("#status", { hasText: "reconnecting" }).waitFor();
        const text = (i: number) => `missed ${i} `.padEnd(1000, "x");
        for (let i = 1; i <= 300; i++) await sender.send({ type: "msg", text: text(i) });
        await sender.waitForMessages(300);
        proxy.cutAfter(20_000); // the next connection drops a few messages into the replay
        proxy.release();
        await page.locator("#log li", { hasText: "missed 300 " }).waitFor({ timeout: 30_000 });
        assert.ok(await count(page, "Reconnected") >= 2, "it was cut during the replay");
        const lines = (await logLines(page)).filter((line) => line.includes("missed "));
        assert.equal(lines.length, 300);
        lines.forEach((line, i) => assert.ok(line.includes(`missed ${i + 1} `), line.slice(0, 30)));
      } finally {
        await sender.close();
        await proxy.close();
      }
    },
    ...["--rate", "1000", "--burst", "1000", "--rate-bytes", "1073741824"],
  );
});
