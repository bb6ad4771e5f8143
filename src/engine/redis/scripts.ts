import { readFileSync } from "node:fs";
import type { RedisClient } from "./connection.ts";

const SCRIPTS = {
  llCreate: { file: "create.lua", keys: 2 },
  llAppend: { file: "append.lua", keys: 2 },
  llCancel: { file: "cancel.lua", keys: 2 },
  llLeaseCheck: { file: "lease-check.lua", keys: 1 },
  llEnqueue: { file: "enqueue.lua", keys: 7 },
  llClaim: { file: "claim.lua", keys: 4 },
  llLease: { file: "lease.lua", keys: 5 },
  llChange: { file: "change.lua", keys: 1 },
  llChatMark: { file: "chat-mark.lua", keys: 1 },
  llChatExpire: { file: "chat-expire.lua", keys: 1 },
  llSlotTake: { file: "slot-take.lua", keys: 1 },
  llBudgetSpend: { file: "budget-spend.lua", keys: 1 },
  dsCommit: { file: "stream-commit.lua", keys: 2 },
  dsTouch: { file: "stream-touch.lua", keys: 2 },
} as const;

export type ScriptName = keyof typeof SCRIPTS;

type ScriptArg = string | number | Buffer;

/** A client with Lifeline's named Lua scripts (EVALSHA, falling back to EVAL after a failover). */
export type ScriptedClient = RedisClient & {
  [K in ScriptName]: (...args: ScriptArg[]) => Promise<unknown>;
};

/** Registers the scripts of `lua/` on a client. */
export function withScripts(client: RedisClient): ScriptedClient {
  for (const [name, script] of Object.entries(SCRIPTS)) {
    const lua = readFileSync(new URL(`./lua/${script.file}`, import.meta.url), "utf8");
    client.defineCommand(name, { numberOfKeys: script.keys, lua });
  }
  return client as ScriptedClient;
}
