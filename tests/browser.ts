/**
 * A real headless browser for the web page's tests: the system's Chromium
 * (Debian's `chromium` package), driven by
 * playwright-core, never a browser that a tool downloads.
 *
 * @module
 */

import { type Browser, chromium, type Page } from "playwright-core";

/** Where Debian's package puts the browser. */
export const CHROMIUM_PATH = "/usr/bin/chromium";

/**
 * Starts Chromium headless. Fails with what to install when it is missing:
 * a browser test that skipped itself could not fail.
 */
export async function launchBrowser(): Promise<Browser> {
  try {
    await Deno.stat(CHROMIUM_PATH);
  } catch {
    throw new Error(
      `no browser at ${CHROMIUM_PATH}: install Debian's chromium (apt-get install chromium); ` +
        ".ci/run does",
    );
  }
  return await chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      "--no-sandbox", // tests may run as root, where Chromium's sandbox cannot start
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      // Nothing but the page under test: this machine's network is closed.
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Opens `url` in a context of its own (its own storage), as another person's browser. */
export async function openPage(
  browser: Browser,
  url: string,
  viewport = { width: 1100, height: 720 },
): Promise<Page> {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(10_000);
  const errors: string[] = [];
  page.on("pageerror", (error) => errors.push(error.message));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(message.text());
  });
  pageErrors.set(page, errors);
  await page.goto(url);
  return page;
}

/** Script errors and console errors a page had (a CSP violation among them). */
export const pageErrors = new WeakMap<Page, string[]>();

/** The text of each line in the page's message log. */
export function logLines(page: Page): Promise<string[]> {
  return page.locator("#log li").allTextContents();
}

/** Waits for a log line containing `text`. */
export async function waitForLine(page: Page, text: string): Promise<void> {
  await page.locator("#log li", { hasText: text }).first().waitFor();
}

/** Types a line into the message input and presses Enter. */
export async function say(page: Page, text: string): Promise<void> {
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByLabel("Message", { exact: true }).press("Enter");
}
