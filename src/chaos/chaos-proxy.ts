import { createConnection, createServer, type Socket } from "node:net";
import { prng } from "../llm/sim/prng.ts";

/** A TCP proxy that cuts every connection at a random moment of its life, for reconnect tests. */
export interface ChaosProxy {
  readonly url: string;
  /** Connections cut so far. */
  readonly cuts: number;
  /** Stops cutting: connections from now on live until an end closes them. */
  calm(): void;
  close(): Promise<void>;
}

export interface ChaosOptions {
  /**
   * Each connection is cut a uniform random time in [minMs, maxMs] after the client first receives
   * something on it: a cut then lands on a client that was served, mid-answer, rather than on one still
   * connecting (which on a loaded machine can take the whole lifetime). A connection the server
   * never answers is not cut.
   */
  readonly minMs: number;
  readonly maxMs: number;
  /** The seed of the cut times and delays, so a failing run can be repeated. */
  readonly seed: number;
  /** Each chunk is held a uniform random time in [0, jitterMs] before it is passed on, in order. @defaultValue 0 */
  readonly jitterMs?: number;
}

export async function startChaosProxy(targetPort: number, options: ChaosOptions): Promise<ChaosProxy> {
  const random = prng(options.seed);
  const sockets = new Set<Socket>();
  let cuts = 0;
  let calm = false;
  const server = createServer((client) => {
    const upstream = createConnection({ host: "127.0.0.1", port: targetPort });
    sockets.add(client).add(upstream);
    let timer: NodeJS.Timeout | undefined;
    const lifetime = options.minMs + random() * (options.maxMs - options.minMs);
    const served = (): void => {
      if (client.destroyed || timer) return;
      timer = setTimeout(() => {
        if (calm) return;
        cuts += 1;
        // A reset, not a polite FIN: the way a dropped link or a dying load balancer looks.
        client.resetAndDestroy();
        upstream.resetAndDestroy();
      }, lifetime);
    };
    if (options.jitterMs) {
      relayWithJitter(client, upstream, options.jitterMs, random);
      relayWithJitter(upstream, client, options.jitterMs, random, served);
    } else {
      client.pipe(upstream);
      upstream.pipe(client);
      upstream.once("data", served);
    }
    const end = (): void => {
      clearTimeout(timer);
      sockets.delete(client);
      sockets.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on("close", end);
      socket.on("error", end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    get cuts() {
      return cuts;
    },
    calm() {
      calm = true;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Passes chunks from `from` to `to`, each after a random delay, never reordering them. */
function relayWithJitter(from: Socket, to: Socket, jitterMs: number, random: () => number, written?: () => void): void {
  let tail = Promise.resolve();
  from.on("data", (chunk: Buffer) => {
    const delay = random() * jitterMs;
    tail = tail
      .then(() => new Promise<void>((resolve) => setTimeout(resolve, delay)))
      .then(() => {
        if (to.destroyed) return;
        to.write(chunk);
        written?.();
      });
  });
  from.on("end", () => void tail.then(() => to.end()));
}
