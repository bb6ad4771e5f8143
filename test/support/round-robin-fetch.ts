import type { FetchFunction } from "../../src/client/index.ts";

/** A client-side round-robin balancer for the SDK, over real gateways. */
export interface RoundRobin {
  /** The SDK's `baseUrl`: the first gateway; each request goes to the next one in turn. */
  readonly baseUrl: string;
  readonly fetch: FetchFunction;
  /** Gateways that answered a follow request (`/events` or `/poll`) with a success. */
  readonly used: ReadonlySet<string>;
  /** Cuts the request open now (an event stream, a held poll), so the SDK resumes on the next gateway. */
  drop(): void;
}

/**
 * A `fetch` for the client SDK that sends each request to the next of `gateways` in turn, the way
 * a round-robin load balancer in front of them would; so a follow that reconnects resumes on
 * another gateway than the one it left. For a client that follows one answer at a time.
 */
export function roundRobinFetch(gateways: readonly string[]): RoundRobin {
  const baseUrl = gateways[0];
  if (baseUrl === undefined) throw new RangeError("no gateway");
  const used = new Set<string>();
  let turn = 0;
  // The request open now; a client of one follow makes one request at a time.
  let open: { ctl: AbortController; unlink(): void } | undefined;
  return {
    baseUrl,
    used,
    fetch: async (input, init = {}) => {
      const gateway = gateways[turn++ % gateways.length]!;
      const url = `${gateway}${input.slice(baseUrl.length)}`;
      const ctl = new AbortController();
      const outer = init.signal;
      const onAbort = (): void => ctl.abort(outer?.reason);
      if (outer?.aborted) onAbort();
      outer?.addEventListener("abort", onAbort, { once: true });
      // The SDK reuses one signal for a session's requests (a chain of polls): let go of the last one's.
      open?.unlink();
      open = { ctl, unlink: () => outer?.removeEventListener("abort", onAbort) };
      const res = await fetch(url, { ...init, signal: ctl.signal });
      if (res.ok && /\/(events|poll)$/.test(new URL(url).pathname)) used.add(gateway);
      return res;
    },
    drop: () => open?.ctl.abort(new Error("dropped by the test")),
  };
}
