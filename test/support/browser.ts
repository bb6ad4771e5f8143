import { accessSync, constants } from "node:fs";
import { chromium, type Browser } from "playwright-core";
import type { TestContext } from "vitest";

/** Where the browser tests expect Chromium (`apt-get install -y chromium`); `LIFELINE_CHROMIUM` points elsewhere. */
export const CHROMIUM_PATH = process.env.LIFELINE_CHROMIUM ?? "/usr/bin/chromium";

/** Offline and quiet: no update checks, sync or QUIC; playwright gives each launch a fresh temp profile. */
const LAUNCH_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
];

/** Whether an executable Chromium stands at `CHROMIUM_PATH`. */
export function chromiumInstalled(): boolean {
  try {
    accessSync(CHROMIUM_PATH, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Launches a real headless Chromium for the running test. Without Chromium the test fails under
 * CI (`CI=true`), where a missing browser is a broken machine rather than a pass, and is skipped
 * with a loud warning anywhere else. The caller closes the browser.
 */
export async function launchChromium(ctx: TestContext): Promise<Browser> {
  if (!chromiumInstalled()) {
    const why = `Chromium is not at ${CHROMIUM_PATH} (apt-get install -y chromium, or set LIFELINE_CHROMIUM)`;
    if (process.env.CI === "true") throw new Error(`${why}: browser tests must run in CI`);
    console.warn(`\n!!! SKIPPED browser test "${ctx.task.name}": ${why}. These tests prove the chat page; install Chromium to run them.\n`);
    ctx.skip(why);
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, headless: true, args: LAUNCH_ARGS });
}
