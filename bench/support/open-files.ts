import { readFileSync } from "node:fs";

/**
 * This process's limit on open files (soft/hard), from /proc (Linux). Node raises the soft limit
 * to the hard one at start, so this is what the process can really hold: every client or server
 * socket is one file.
 */
export function openFileLimit(): string {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const [soft, hard] = line?.replace("Max open files", "").trim().split(/\s+/) ?? [];
    return `${soft ?? "?"}/${hard ?? "?"}`;
  } catch {
    return "unknown";
  }
}
