import { randomUUID } from "node:crypto";
import calculateSlot from "cluster-key-slot";
import { Cluster } from "ioredis";
import type { RedisClient } from "./connection.ts";
import type { RedisKeys } from "./keys.ts";

/**
 * The channels a subscriber probes to notice a dead subscription (`Notifications`): one on a single
 * server, one per shard on a Cluster (a tag whose slot each primary serves). `stem` keeps the probes
 * of different users of one deployment apart (the engine's, the stream store's).
 */
export async function probeChannels(client: RedisClient, keys: RedisKeys, stem: string): Promise<string[]> {
  if (!(client instanceof Cluster)) return [keys.probe(`${stem}-${randomUUID().slice(0, 8)}`)];
  const slots = (await client.cluster("SLOTS")) as [number, number, ...unknown[]][];
  const channels: string[] = [];
  for (const [from, to] of slots) {
    for (let n = 0; n < 100_000; n++) {
      const tag = `${stem}-${n}`;
      const slot = calculateSlot(tag);
      if (slot >= from && slot <= to) {
        channels.push(keys.probe(tag));
        break;
      }
    }
  }
  return channels;
}
