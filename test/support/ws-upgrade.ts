import type { IncomingHttpHeaders } from "node:http";
import { WebSocket } from "ws";

/** An upgrade the gateway refused: its status, its headers and its body as JSON. */
export interface RefusedUpgrade {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: { error?: { code: string; message: string } };
}

/** Asks `url` (ws://…) for an upgrade: the open socket, or the refusal it got instead. */
export function upgrade(url: string, headers: Record<string, string> = {}): Promise<WebSocket | RefusedUpgrade> {
  const ws = new WebSocket(url, { headers });
  return new Promise((resolve, reject) => {
    ws.on("open", () => resolve(ws));
    ws.on("error", reject);
    ws.on("unexpected-response", (_request, res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        ws.terminate();
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as RefusedUpgrade["body"];
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error))); // a refusal not in the API's JSON shape
        }
      });
    });
  });
}

/** A server frame that ends a subscription: `end`, or `error` with its code. */
export type SubscriptionEnd = { type: "end"; sub: string } | { type: "error"; sub: string; error: { code: string; message: string } };

/** Sends one `subscribe` frame on `ws` and resolves with the frame that ends that subscription. */
export function subscribeToEnd(ws: WebSocket, frame: { sub: string; generation: string; token?: string }): Promise<SubscriptionEnd> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: Buffer): void => {
      const got = JSON.parse(String(data)) as { type: string; sub?: string };
      if (got.sub !== frame.sub || (got.type !== "end" && got.type !== "error")) return;
      stop();
      resolve(got as SubscriptionEnd);
    };
    const onClose = (): void => {
      stop();
      reject(new Error(`the socket closed before subscription ${frame.sub} ended`));
    };
    const stop = (): void => void ws.off("message", onMessage).off("close", onClose);
    ws.on("message", onMessage).on("close", onClose);
    ws.send(JSON.stringify({ type: "subscribe", ...frame }));
  });
}
