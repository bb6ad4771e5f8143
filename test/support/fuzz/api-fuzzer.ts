import fc from "fast-check";
import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { isErrorCode } from "../../../src/core/errors.ts";
import { apiCases, type ApiCase, type HttpCase, type RawCase } from "./http-cases.ts";

/** What one case did to the gateway that it must never do. */
export interface Violation {
  readonly case: string;
  readonly problem: string;
}

export interface FuzzReport {
  readonly cases: number;
  /** Answers by status (`raw` for bytes that got no status line, `stream` for an event stream left open). */
  readonly statuses: Record<string, number>;
  readonly violations: readonly Violation[];
}

/** Longest a request may take: a long-poll may hold one for up to 60 s. */
const DEADLINE_MS = 70_000;
/** Longest a socket of raw bytes waits for the gateway to answer or close (it may wait for the rest of a request). */
const RAW_IDLE_MS = 500;
const MAX_BODY_BYTES = 4 * 1024 * 1024;

/**
 * Sends `count` generated cases (seeded, so a failure can be replayed) to the gateway at `url`,
 * `concurrency` at a time, and reports every violation of the rules of bad input: no 5xx, an error
 * body in the API's shape with a registered code, an answer within the deadline (an event stream
 * counts once its headers arrive). A crash of the gateway shows as connection errors on every case.
 */
export async function fuzzApi(options: {
  readonly url: string;
  readonly knownIds: readonly string[];
  readonly count: number;
  readonly seed: number;
  readonly concurrency?: number;
  readonly onProgress?: (done: number) => void;
}): Promise<FuzzReport> {
  const cases = fc.sample(apiCases(options.knownIds), { numRuns: options.count, seed: options.seed });
  const agent = new Agent({ keepAlive: true, maxSockets: options.concurrency ?? 16 });
  const base = new URL(options.url);
  const statuses: Record<string, number> = {};
  const violations: Violation[] = [];
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    for (;;) {
      const index = next++;
      const one = cases[index];
      if (one === undefined) return;
      const outcome = await runCase(one, base, agent).catch((error: unknown) => ({
        status: "error",
        problem: `the case threw: ${String(error)}`,
      }));
      statuses[outcome.status] = (statuses[outcome.status] ?? 0) + 1;
      if (outcome.problem !== undefined) violations.push({ case: describeCase(one), problem: outcome.problem });
      done += 1;
      if (done % 1000 === 0) options.onProgress?.(done);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  agent.destroy();
  return { cases: cases.length, statuses, violations };
}

interface Outcome {
  readonly status: string;
  readonly problem?: string | undefined;
}

function runCase(one: ApiCase, base: URL, agent: Agent): Promise<Outcome> {
  return one.kind === "http" ? runHttp(one, base, agent) : runRaw(one, base);
}

function runHttp(one: HttpCase, base: URL, agent: Agent): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    let settled = false;
    const finish = (outcome: Outcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      req.destroy();
      resolve(outcome);
    };
    const req = httpRequest({
      host: base.hostname,
      port: base.port,
      method: one.method,
      path: one.path,
      headers: { ...one.headers, ...(one.body === undefined ? {} : { "content-length": String(one.body.byteLength) }) },
      agent,
    });
    const deadline = setTimeout(() => finish({ status: "timeout", problem: `no answer in ${DEADLINE_MS} ms` }), DEADLINE_MS);
    req.on("error", (error: NodeJS.ErrnoException) => {
      // The gateway may close a connection it refuses (a body too large): not a failure by itself.
      finish({ status: "closed", problem: error.code === "ECONNREFUSED" ? "connection refused: is the gateway down?" : undefined });
    });
    req.on("response", (res) => {
      const status = res.statusCode ?? 0;
      const type = String(res.headers["content-type"] ?? "");
      if (status >= 500) {
        finish({ status: String(status), problem: `answered ${status}` });
        return;
      }
      if (type.startsWith("text/event-stream") && status === 200) {
        finish({ status: "stream" });
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_BODY_BYTES) chunks.push(chunk);
      });
      res.on("error", () => finish({ status: String(status) }));
      res.on("end", () => {
        const problem = one.method === "HEAD" ? undefined : checkErrorBody(status, type, Buffer.concat(chunks));
        finish({ status: String(status), problem });
      });
    });
    if (one.body !== undefined) req.end(one.body);
    else req.end();
  });
}

/** A 4xx in JSON must be `{"error":{"code","message"}}` with a code of the registry. */
function checkErrorBody(status: number, type: string, body: Buffer): string | undefined {
  if (status < 400 || !type.startsWith("application/json")) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return `a ${status} whose JSON body does not parse`;
  }
  const error = (parsed as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  if (typeof error?.code !== "string" || typeof error.message !== "string") return `a ${status} without {"error":{"code","message"}}`;
  if (!isErrorCode(error.code)) return `a ${status} with the unregistered code ${JSON.stringify(error.code)}`;
  return undefined;
}

function runRaw(one: RawCase, base: URL): Promise<Outcome> {
  return new Promise<Outcome>((resolve) => {
    const socket = connect(Number(base.port), base.hostname);
    let answer = "";
    let settled = false;
    const finish = (problem?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(idle);
      socket.destroy();
      const status = /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? "raw";
      resolve({ status, problem: problem ?? (status.startsWith("5") ? `answered ${status} to raw bytes` : undefined) });
    };
    let idle = setTimeout(() => finish(), RAW_IDLE_MS);
    socket.on("data", (chunk: Buffer) => {
      if (answer.length < 4096) answer += chunk.toString("latin1");
      if (answer.includes("\r\n\r\n")) return finish(); // the status and headers are all a case needs
      clearTimeout(idle);
      idle = setTimeout(() => finish(), RAW_IDLE_MS);
    });
    socket.on("error", (error: NodeJS.ErrnoException) =>
      finish(error.code === "ECONNREFUSED" ? "connection refused: is the gateway down?" : undefined),
    );
    socket.on("close", () => finish());
    socket.write(one.bytes);
  });
}

function describeCase(one: ApiCase): string {
  if (one.kind === "raw") return `raw ${JSON.stringify(Buffer.from(one.bytes).toString("latin1").slice(0, 300))}`;
  const body = one.body === undefined ? "" : ` body ${JSON.stringify(Buffer.from(one.body).toString("utf8").slice(0, 300))}`;
  return `${one.method} ${one.path.slice(0, 300)} headers ${JSON.stringify(one.headers).slice(0, 300)}${body}`;
}
