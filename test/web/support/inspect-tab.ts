import type { Page } from "playwright-core";
import { saveScreenshot } from "./artifacts.ts";

/** A browser tab on the inspect page: an answer's timeline, replayable up to any entry. */
export class InspectTab {
  /**
   * @param errors errors of the tabs of its browser context, recorded since before this tab
   *   opened (see `ChatTab.openInspect`)
   */
  constructor(
    readonly page: Page,
    readonly errors: readonly Error[],
  ) {}

  /** Waits until the summary shows the answer's status as `status`. */
  async waitForStatus(status: string, timeout = 10_000): Promise<void> {
    await this.page.waitForFunction((wanted) => document.getElementById("status")?.textContent === wanted, status, { timeout });
  }

  /** The text of the element `#id`: a figure of the summary (`calls-count`, `takeovers` …) or the answer's `text`. */
  async field(id: string): Promise<string> {
    return (await this.page.locator(`#${id}`).textContent()) ?? "";
  }

  /** What ended each model call, in order (`data-ended-by` of the rows of the calls table). */
  async callsEndedBy(): Promise<(string | undefined)[]> {
    return this.page.locator("#calls tbody tr").evaluateAll((rows) => rows.map((row) => (row as HTMLElement).dataset.endedBy));
  }

  /** Moves the replay slider to entry `offset`, as a user dragging it does. */
  async replayUntil(offset: number): Promise<void> {
    await this.page.locator("#until").evaluate((input, value) => {
      (input as HTMLInputElement).value = String(value);
      input.dispatchEvent(new Event("input"));
    }, offset);
  }

  async screenshot(file: string): Promise<void> {
    await saveScreenshot(this.page, file);
  }
}
