import fc from "fast-check";
import { WebSocket } from "ws";
import { isErrorCode } from "../../../src/core/errors.ts";
import type { Violation } from "./api-fuzzer.ts";

/** One client frame: text (JSON or not) or binary. */
type ClientFrame = { readonly text: string } | { readonly binary: Uint8Array };

const SERVER_TYPES = new Set(["entry", "reset", "end", "error", "ping", "pong"]);
/** Close codes a client may see: normal, going away, unsupported, policy, too big, slow consumer. */
const ALLOWED_CLOSE = new Set([1000, 1001, 1003, 1005, 1006, 1008, 1009, 4008]);

function frames(knownIds: readonly string[]): fc.Arbitrary<ClientFrame[]> {
  const id = knownIds.length > 0 ? fc.oneof(fc.constantFrom(...knownIds), fc.string({ maxLength: 40 })) : fc.string({ maxLength: 40 });
  const cursor = fc.oneof(fc.constant(undefined), fc.nat().map(String), fc.string({ maxLength: 20 }), fc.jsonValue({ maxDepth: 1 }));
  const sub = fc.oneof(
    fc.string({ maxLength: 10 }),
    fc.constantFrom("a", "b"),
    fc.jsonValue({ maxDepth: 1 }),
    fc.nat({ max: 200 }).map((n) => "s".repeat(n)),
  );
  const json = fc.oneof(
    fc.record({ type: fc.constant("subscribe"), sub, generation: id, cursor }),
    fc.record({ type: fc.constant("unsubscribe"), sub }),
    fc.record({ type: fc.constantFrom("ping", "pong"), t: fc.oneof(fc.constant(undefined), fc.double(), fc.string()) }),
    fc.record({ type: fc.oneof(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })) }, { requiredKeys: [] }),
    fc.jsonValue({ maxDepth: 3 }),
  );
  const frame: fc.Arbitrary<ClientFrame> = fc.oneof(
    { arbitrary: json.map((v) => ({ text: JSON.stringify(v) ?? "null" })), weight: 6 },
    { arbitrary: fc.string({ maxLength: 80 }).map((text) => ({ text })), weight: 1 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((binary) => ({ binary })), weight: 1 },
    { arbitrary: fc.constantFrom(65 * 1024, 70 * 1024).map((n) => ({ text: `{"type":"ping","t":"${"x".repeat(n)}"}` })), weight: 1 },
  );
  return fc.array(frame, { minLength: 1, maxLength: 12 });
}

/**
 * Opens `count` WebSocket connections to the gateway, each sending a generated run of frames, and
 * reports every server frame that is not in the protocol, every error frame with a code outside the
 * registry, and every close with a code that says the server failed (1011) or is unknown.
 */
export async function fuzzWebSocket(options: {
  readonly url: string;
  readonly knownIds: readonly string[];
  readonly count: number;
  readonly seed: number;
  readonly concurrency?: number;
}): Promise<{ sessions: number; violations: Violation[] }> {
  const sessions = fc.sample(frames(options.knownIds), { numRuns: options.count, seed: options.seed });
  const wsUrl = `${options.url.replace(/^http/, "ws")}/v1/ws`;
  const violations: Violation[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const session = sessions[next++];
      if (session === undefined) return;
      const problems = await runSession(wsUrl, session);
      for (const problem of problems) violations.push({ case: describe(session), problem });
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 8 }, worker));
  return { sessions: sessions.length, violations };
}

function runSession(url: string, session: readonly ClientFrame[]): Promise<string[]> {
  return new Promise((resolve) => {
    const problems: string[] = [];
    const socket = new WebSocket(url);
    let settled = false;
    const finish = (): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      socket.terminate();
      resolve(problems);
    };
    // After its frames, a session listens a moment for the answers, then leaves.
    const deadline = setTimeout(finish, 10_000);
    socket.on("open", () => {
      for (const frame of session) socket.send("text" in frame ? frame.text : frame.binary, { binary: !("text" in frame) });
      setTimeout(finish, 150);
    });
    socket.on("message", (data, isBinary) => {
      if (isBinary) return void problems.push("a binary frame from the server");
      let parsed: { type?: unknown; error?: { code?: unknown } };
      try {
        parsed = JSON.parse(String(data)) as typeof parsed;
      } catch {
        return void problems.push(`a server frame that is not JSON: ${String(data).slice(0, 100)}`);
      }
      if (typeof parsed.type !== "string" || !SERVER_TYPES.has(parsed.type))
        problems.push(`a server frame of unknown type: ${String(data).slice(0, 100)}`);
      if (parsed.type === "error" && (typeof parsed.error?.code !== "string" || !isErrorCode(parsed.error.code))) {
        problems.push(`an error frame with an unregistered code: ${String(data).slice(0, 200)}`);
      }
    });
    socket.on("unexpected-response", (_req, res) => {
      if ((res.statusCode ?? 0) >= 500) problems.push(`the upgrade answered ${res.statusCode}`);
      finish();
    });
    socket.on("close", (code) => {
      if (!ALLOWED_CLOSE.has(code)) problems.push(`closed with ${code}`);
      finish();
    });
    socket.on("error", () => finish());
  });
}

function describe(session: readonly ClientFrame[]): string {
  return JSON.stringify(session.map((f) => ("text" in f ? f.text.slice(0, 200) : `<${f.binary.byteLength} bytes>`))).slice(0, 1000);
}
