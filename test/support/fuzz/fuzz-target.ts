import { startInProcess } from "../in-process.ts";
import { simRequest } from "../sim-answer.ts";
import { startGeneration } from "../sse-client.ts";
import { tempDir } from "../temp-dir.ts";

/** Every byte a client can read of one answer: its state and its whole event stream. */
export type AnswerBytes = Map<string, string>;

/**
 * A gateway and worker on a sqlite data directory, holding answers that ended (completed, cancelled)
 * before the fuzzing starts, so that a fuzzer can aim at their ids and then show that every byte of
 * them is still what it was.
 */
export async function startFuzzTarget(): Promise<{
  readonly url: string;
  readonly knownIds: readonly string[];
  snapshot(): Promise<AnswerBytes>;
  close(): Promise<void>;
}> {
  const data = tempDir("lifeline-fuzz-");
  const node = await startInProcess({ LIFELINE_ENGINE: "sqlite", LIFELINE_DATA_DIR: data.path, LIFELINE_SIM_TOKENS_PER_SECOND: "2000" });
  const url = node.url;
  const knownIds: string[] = [];
  for (const [i, content] of ["the first answer", "the second answer", "an answer with ünïcödé 🦙"].entries()) {
    knownIds.push(await startGeneration(url, simRequest(content, { max_tokens: 40, seed: i })));
  }
  // One cancelled before it could end.
  const cancelled = await startGeneration(url, simRequest("an answer cut short", { max_tokens: 30_000 }));
  await fetch(`${url}/v1/generations/${cancelled}/cancel`, { method: "POST" });
  knownIds.push(cancelled);
  const snapshot = async (): Promise<AnswerBytes> => {
    const bytes: AnswerBytes = new Map();
    for (const id of knownIds) {
      // The event stream ends after the terminal entry: reading it whole waits for the answer to end.
      bytes.set(`${id} events`, await (await fetch(`${url}/v1/generations/${id}/events`)).text());
      bytes.set(`${id} state`, await (await fetch(`${url}/v1/generations/${id}`)).text());
      bytes.set(`${id} timeline`, await (await fetch(`${url}/v1/generations/${id}/timeline`)).text());
    }
    return bytes;
  };
  return {
    url,
    knownIds,
    snapshot,
    close: async () => {
      await node.stop();
      data.remove();
    },
  };
}
