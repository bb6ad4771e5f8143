import type { ProfileShares } from "./follows-protocol.ts";

/** The parts of a V8 CPU profile (`Profiler.stop`) that a summary needs. */
export interface CpuProfile {
  readonly nodes: ReadonlyArray<{
    readonly id: number;
    readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  }>;
  readonly samples?: readonly number[];
}

/**
 * Where a profile's samples fell, by self time: per place (an npm package, a Node module, a folder
 * of `src/`, or a native entry such as `writev` or `(garbage collector)`) and per function; the
 * `top` largest of each.
 */
export function profileShares(profile: CpuProfile, top = 20): { byPlace: ProfileShares; byFunction: ProfileShares } {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const samples = profile.samples ?? [];
  const byPlace = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const id of samples) {
    const frame = frames.get(id);
    if (!frame) continue;
    const name = frame.functionName || "(anonymous)";
    const file = frame.url.split("/").slice(-2).join("/");
    add(byFunction, file === "" ? name : `${name} ${file}:${frame.lineNumber + 1}`);
    add(byPlace, placeOf(frame.url, name));
  }
  const shares = (counts: Map<string, number>): ProfileShares =>
    [...counts]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([where, count]) => ({ where, share: Number((count / Math.max(1, samples.length)).toFixed(4)) }));
  return { byPlace: shares(byPlace), byFunction: shares(byFunction) };
}

function add(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function placeOf(url: string, name: string): string {
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  if (url.startsWith("node:")) return `node:${url.slice(5).split("/")[0]}`;
  const src = /\/src\/([^/]+)\//.exec(url);
  if (src) return `src/${src[1]}`;
  return url === "" ? name : url;
}
