import { afterEach } from "vitest";
import { tempDir } from "./temp-dir.ts";

/**
 * Call in a `describe`: each call of the returned function makes a fresh folder, removed after the
 * test that made it (after that test's own `afterEach` hooks registered later, which run first).
 */
export function tempDirsPerTest(prefix: string): () => string {
  const made: { remove(): void }[] = [];
  afterEach(() => {
    for (const dir of made.splice(0)) dir.remove();
  });
  return () => {
    const dir = tempDir(prefix);
    made.push(dir);
    return dir.path;
  };
}
