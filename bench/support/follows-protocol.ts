/**
 * The messages of `bench/follows.ts`: the orchestrator talks over IPC to a gateway process (started
 * with `--expose-gc`, so it can be asked for its memory after a full collection) and to a client
 * process that holds the open follows.
 */

/** What a gateway process reports of itself after a full garbage collection. */
export interface MemorySample {
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  readonly rss: number;
  /** User + system CPU since the process started, in ms. */
  readonly cpuMs: number;
}

export type ToGateway =
  | { readonly type: "measure"; readonly seq: number }
  | { readonly type: "cpu"; readonly seq: number }
  | { readonly type: "profileStart"; readonly seq: number }
  | { readonly type: "profileStop"; readonly seq: number; /** Where to write the whole profile too. */ readonly file?: string }
  | { readonly type: "stop" };

/** Where a sampling profile's samples fell: a share (0–1) per place, the largest first. */
export type ProfileShares = ReadonlyArray<{ readonly where: string; readonly share: number }>;

export type FromGateway =
  | { readonly type: "ready"; readonly url: string }
  | { readonly type: "memory"; readonly seq: number; readonly sample: MemorySample }
  | { readonly type: "cpu"; readonly seq: number; readonly cpuMs: number }
  | { readonly type: "profiling"; readonly seq: number }
  | { readonly type: "profile"; readonly seq: number; readonly byPlace: ProfileShares; readonly byFunction: ProfileShares }
  | { readonly type: "error"; readonly message: string };

/** How the follows are opened: one SSE response each, or subscriptions multiplexed on WebSockets. */
export type FollowTransport = "sse" | "ws";

export interface OpenPlan {
  readonly baseUrl: string;
  readonly transport: FollowTransport;
  /** One follow per element: the generation it follows (an id may repeat). */
  readonly ids: readonly string[];
  /** Follows whose first frame has not arrived yet, at most; more wait their turn (as a connection pool would). */
  readonly window: number;
  /** Subscriptions per WebSocket connection. */
  readonly subsPerSocket: number;
}

export type ToClients = { readonly type: "open"; readonly plan: OpenPlan } | { readonly type: "close" } | { readonly type: "exit" };

export type FromClients =
  | { readonly type: "ready" }
  | {
      readonly type: "opened";
      readonly ms: number;
      /** CPU the clients used meanwhile (user + system). */
      readonly cpuMs: number;
      readonly follows: number;
      readonly failures: number;
      readonly firstFailure?: string;
    }
  | { readonly type: "closed" }
  | { readonly type: "error"; readonly message: string };
