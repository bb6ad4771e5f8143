import { loadConfig } from "../../src/cli/config.ts";
import { startNode, type LifelineNode } from "../../src/cli/node.ts";

/** Gateway and worker in this process on a real port; `env` overrides the test defaults. */
export async function startInProcess(env: Record<string, string> = {}): Promise<LifelineNode & { url: string }> {
  const config = loadConfig(
    {
      LIFELINE_ENGINE: "memory",
      LIFELINE_PORT: "0",
      LIFELINE_LOG_LEVEL: "silent",
      LIFELINE_SIM_TOKENS_PER_SECOND: "400",
      ...env,
    },
    {},
  );
  const node = await startNode(config, { gateway: true, worker: true });
  if (!node.url) throw new Error("no url");
  return node as LifelineNode & { url: string };
}
