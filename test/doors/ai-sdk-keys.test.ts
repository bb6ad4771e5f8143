import { Chat } from "@ai-sdk/react";
import { DefaultChatTransport, type UIMessage } from "ai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Scope } from "../../src/core/api-keys.ts";
import { KeyRing } from "../../src/engine/keys/key-ring.ts";
import { SqliteKeyStore } from "../../src/engine/keys/sqlite.ts";
import { AI_SDK_API, readStream, simAnswerTo, textOf, userMessage } from "../support/ai-sdk-client.ts";
import { startInProcess } from "../support/in-process.ts";
import { tempDir } from "../support/temp-dir.ts";
import { until } from "../support/waits.ts";

type Node = Awaited<ReturnType<typeof startInProcess>>;

describe("the AI SDK door under API keys", () => {
  const data = tempDir();
  let node: Node;
  let store: SqliteKeyStore;
  const keys: Record<string, string> = {};

  /** The official transport with a key, the way an app's server (or a rewrite) adds it. */
  const transport = (key: string | undefined, body: Record<string, unknown> = {}): DefaultChatTransport<UIMessage> =>
    new DefaultChatTransport<UIMessage>({
      api: `${node.url}${AI_SDK_API}`,
      body,
      ...(key === undefined ? {} : { headers: { authorization: `Bearer ${key}` } }),
    });
  const stop = (chatId: string, key: string): Promise<Response> =>
    fetch(`${node.url}${AI_SDK_API}/${chatId}/stop`, { method: "POST", headers: { authorization: `Bearer ${key}` } });

  beforeAll(async () => {
    store = new SqliteKeyStore({ dataDir: data.path });
    const ring = new KeyRing(store);
    const make = async (name: string, tenant: string, scopes: Scope[]): Promise<void> => {
      keys[name] = (await ring.create(tenant, scopes)).key;
    };
    await make("acme", "acme", ["generations:create", "generations:read"]);
    await make("acmeReader", "acme", ["generations:read"]);
    await make("beta", "beta", ["generations:create", "generations:read"]);
    node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_SIM_TOKENS_PER_SECOND: "20" });
  });
  afterAll(async () => {
    await node?.stop();
    await store?.close();
    data.remove();
  });

  it("asks for a key with the right scope: none is unauthorized, a reader's is forbidden", async () => {
    const ask = {
      chatId: "keyless",
      messages: [userMessage("hi")],
      trigger: "submit-message" as const,
      messageId: undefined,
      abortSignal: undefined,
    };
    await expect(transport(undefined).sendMessages(ask)).rejects.toThrow(/"code":"unauthorized"/);
    await expect(transport(keys.acmeReader).sendMessages(ask)).rejects.toThrow(/"code":"forbidden"/);
  });

  it("keeps tenants apart: another tenant's chat of the same id neither resumes nor stops acme's answer", async () => {
    const fields = { max_tokens: 120, seed: 6 };
    const chat = new Chat<UIMessage>({ id: "shared-id", transport: transport(keys.acme, fields) });
    const sent = chat.sendMessage({ text: "acme's question" });
    await until(() => textOf(chat.messages[1]).length > 0, 30_000, "acme's first text");

    // beta uses the same chat id: there is no answer of beta's to resume or stop.
    expect(await transport(keys.beta).reconnectToStream({ chatId: "shared-id" })).toBeNull();
    const refused = await stop("shared-id", keys.beta!);
    expect(refused.status).toBe(404);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("chat_not_found");

    // beta's own chat of that id is another chat: it does not take acme's chat over.
    const betas = await transport(keys.beta, { max_tokens: 4 }).sendMessages({
      chatId: "shared-id",
      messages: [userMessage("beta's question")],
      trigger: "submit-message",
      messageId: undefined,
      abortSignal: undefined,
    });
    expect(textOf((await readStream(betas)).message)).toBe(simAnswerTo("beta's question", { max_tokens: 4 }));

    // acme's own resume replays its answer, which beta neither stopped nor replaced.
    const resumed = await transport(keys.acme).reconnectToStream({ chatId: "shared-id" });
    expect(resumed).not.toBeNull();
    const read = await readStream(resumed!);
    expect(textOf(read.message)).toBe(simAnswerTo("acme's question", fields));
    await sent;
    expect(textOf(chat.messages[1])).toBe(simAnswerTo("acme's question", fields));
  });
});
