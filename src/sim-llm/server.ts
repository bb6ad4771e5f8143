import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { anthropicDialect } from "./anthropic-wire.ts";
import { writeAnswer } from "./answer-writer.ts";
import type { SimAnswerRequest, WireDialect } from "./dialect.ts";
import { FaultSchedule, SIM_FAULT_HEADER, type FaultPlan } from "./faults.ts";
import { openAiDialect } from "./openai-wire.ts";
import { resolveSimLlmOptions, type SimLlmOptions } from "./options.ts";
import { emptyStats, snapshotStats, type SimLlmStats } from "./stats.ts";

export type { SimLlmOptions } from "./options.ts";
export type { SimLlmStats } from "./stats.ts";

/** A running simulator. */
export interface SimLlm {
  /** `http://host:port`, without a trailing slash. */
  readonly url: string;
  readonly port: number;
  stats(): SimLlmStats;
  /** Stops listening and drops every open connection (stalled streams included). */
  close(): Promise<void>;
}

/** Largest request body; above it the answer is 413. */
const MAX_BODY_BYTES = 4 * 1024 * 1024;

const MODEL_ROUTES: Readonly<Record<string, WireDialect>> = {
  "/v1/chat/completions": openAiDialect,
  "/v1/messages": anthropicDialect,
};

/**
 * Starts the built-in simulator behind real provider wire formats (OpenAI chat completions and
 * Anthropic Messages), with the faults of `options`. Throws `SimLlmOptionsError` on bad options.
 */
export async function startSimLlm(options: SimLlmOptions = {}): Promise<SimLlm> {
  const resolved = resolveSimLlmOptions({ port: 0, ...options });
  const schedule = new FaultSchedule(resolved);
  const stats = emptyStats();
  /** The responses of the answers in progress, whose unsent bytes `bufferedBytes` adds up. */
  const streaming = new Set<ServerResponse>();
  const snapshot = (): SimLlmStats =>
    snapshotStats(
      stats,
      [...streaming].reduce((sum, res) => sum + res.writableLength, 0),
    );
  let answers = 0;
  let closing = false;

  async function answerModelRequest(req: IncomingMessage, res: ServerResponse, dialect: WireDialect): Promise<void> {
    stats.requests += 1;
    const headers = { [dialect.requestIdHeader]: dialect.answerId(++answers) };
    const refuse = (status: number, message: string): void => {
      stats.badRequests += 1;
      sendJson(res, status, dialect.errorBody(status, message), headers);
    };
    const body = await readBody(req);
    if (body === "too-large") return refuse(413, `request body is larger than ${MAX_BODY_BYTES} bytes`);
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      return refuse(400, "the request body is not valid JSON");
    }
    const parsed = dialect.parse(json);
    if (!parsed.ok) return refuse(400, parsed.message);
    const header = req.headers[SIM_FAULT_HEADER];
    const override = schedule.check(Array.isArray(header) ? header.join(";") : header);
    if (override && !override.ok) return refuse(400, override.message);

    const plan = schedule.next(override?.plan);
    if (plan.kind !== "none") stats.faults[plan.kind] += 1;
    if (plan.kind === "error")
      return sendJson(res, plan.status, dialect.errorBody(plan.status, `sim-llm: injected error ${plan.status}`), headers);
    if (plan.kind === "rate-limit") {
      const message = "sim-llm: injected rate limit";
      return sendJson(res, 429, dialect.errorBody(429, message), { ...headers, "retry-after": String(plan.retryAfterSeconds) });
    }
    await runAnswer(res, dialect, parsed.request, plan, headers);
  }

  async function runAnswer(
    res: ServerResponse,
    dialect: WireDialect,
    request: SimAnswerRequest,
    plan: FaultPlan,
    headers: Record<string, string>,
  ): Promise<void> {
    const closed = new AbortController();
    let cutByServer = false;
    stats.openStreams += 1;
    streaming.add(res);
    res.once("close", () => {
      stats.openStreams -= 1;
      streaming.delete(res);
      if (!res.writableFinished && !cutByServer && !closing) stats.abortedByClient += 1;
      closed.abort();
    });
    const outcome = await writeAnswer({
      res,
      dialect,
      answer: { id: headers[dialect.requestIdHeader] ?? "", created: Math.floor(Date.now() / 1000), request },
      plan,
      tokensPerSecond: resolved.tokensPerSecond,
      signal: closed.signal,
      headers,
      onCut: () => (cutByServer = true),
      onSent: (tokens) => (stats.tokensSent += tokens),
    });
    if (outcome === "completed") stats.completed += 1;
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? "/", "http://sim").pathname;
    const dialect = MODEL_ROUTES[path];
    if (dialect) {
      if (req.method !== "POST")
        return sendJson(res, 405, dialect.errorBody(405, `${req.method ?? ""} is not allowed on ${path}; use POST`), { allow: "POST" });
      return answerModelRequest(req, res, dialect);
    }
    if (req.method !== "GET") return sendJson(res, 404, openAiDialect.errorBody(404, `no route ${req.method ?? ""} ${path}`));
    if (path === "/healthz") return sendJson(res, 200, { status: "ok" });
    if (path === "/stats") return sendJson(res, 200, snapshot());
    if (path === "/v1/models") return sendJson(res, 200, modelList(req.headers["anthropic-version"] !== undefined));
    return sendJson(res, 404, openAiDialect.errorBody(404, `no route GET ${path}`));
  }

  const server = createServer((req, res) => {
    route(req, res).catch((error: unknown) => {
      if (!res.headersSent) sendJson(res, 500, openAiDialect.errorBody(500, `sim-llm failed: ${String(error)}`));
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(resolved.port, resolved.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = resolved.host.includes(":") ? `[${resolved.host}]` : resolved.host;

  return {
    url: `http://${host}:${port}`,
    port,
    stats: snapshot,
    close: async () => {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

function modelList(anthropic: boolean): unknown {
  if (anthropic) {
    const model = { type: "model", id: "sim", display_name: "Lifeline simulator", created_at: "1970-01-01T00:00:00Z" };
    return { data: [model], has_more: false, first_id: "sim", last_id: "sim" };
  }
  return { object: "list", data: [{ id: "sim", object: "model", created: 0, owned_by: "lifeline" }] };
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** The body as text, or `too-large` (the rest is drained, so the 413 reaches the client). */
async function readBody(req: IncomingMessage): Promise<string | "too-large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  }
  return tooLarge ? "too-large" : Buffer.concat(chunks).toString("utf8");
}
