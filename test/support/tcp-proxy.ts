import { createConnection, createServer, type Server, type Socket } from "node:net";

/** A TCP proxy on a free loopback port, for cutting or silencing connections in tests. */
export interface TcpProxy {
  readonly port: number;
  /**
   * Silences the open connections whose first bytes from the client contain `marker`: they stay
   * open, but nothing passes either way (a dead link that no side notices). New connections pass.
   */
  blackhole(marker: string): number;
  /** Resets the open connections whose first bytes from the client contain `marker`, both sides at once. */
  cut(marker: string): number;
  /** Connections whose first bytes from the client contain `marker`: accepted since the start, and open now. */
  connections(marker: string): { accepted: number; open: number };
  close(): Promise<void>;
}

interface Link {
  readonly client: Socket;
  readonly upstream: Socket;
  hello: string;
  silenced: boolean;
}

export async function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<TcpProxy> {
  const links = new Set<Link>();
  const accepted: Link[] = [];
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: targetHost, port: targetPort });
    const link: Link = { client, upstream, hello: "", silenced: false };
    links.add(link);
    accepted.push(link);
    client.on("data", (chunk: Buffer) => {
      if (link.hello.length < 4096) link.hello += chunk.toString("latin1");
      if (!link.silenced) upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!link.silenced) client.write(chunk);
    });
    const end = (): void => {
      links.delete(link);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    port,
    blackhole(marker) {
      let n = 0;
      for (const link of links) {
        if (link.hello.includes(marker)) {
          link.silenced = true;
          n += 1;
        }
      }
      return n;
    },
    cut(marker) {
      let n = 0;
      for (const link of [...links]) {
        if (!link.hello.includes(marker)) continue;
        links.delete(link);
        // A reset, not a polite FIN: the way a dropped link or a dying load balancer looks.
        link.client.resetAndDestroy();
        link.upstream.resetAndDestroy();
        n += 1;
      }
      return n;
    },
    connections(marker) {
      const matches = (link: Link): boolean => link.hello.includes(marker);
      return { accepted: accepted.filter(matches).length, open: [...links].filter(matches).length };
    },
    close: async () => {
      for (const link of links) {
        link.client.destroy();
        link.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
