import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";

/** Where the browser tests leave their screenshots (`test-artifacts/`), to look at after a run. */
export const ARTIFACTS = fileURLToPath(new URL("../../../test-artifacts/", import.meta.url));

/** A full-page screenshot of `page` in `ARTIFACTS/file`. */
export async function saveScreenshot(page: Page, file: string): Promise<void> {
  mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, file), fullPage: true });
}
