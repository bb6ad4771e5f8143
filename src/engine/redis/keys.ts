/**
 * Every Redis key and channel Lifeline uses, built in one place. All keys of one generation share
 * the hash tag `{<id>}`, so its scripts run on one Cluster slot; the job queue lives under the tag
 * `{<prefix>:q}` on one slot of its own.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** The stream of a generation's entries; entry IDs are `<offset>-0`. */
  log(id: string): string {
    return `${this.prefix}:{${id}}:log`;
  }

  /** Hash: last, terminal, fence. */
  meta(id: string): string {
    return `${this.prefix}:{${id}}:meta`;
  }

  /** Sharded pub/sub channel that carries the new last offset after each append. */
  notify(id: string): string {
    return `${this.prefix}:{${id}}:n`;
  }

  /** Hash of every API key: field = key id, value = the stored key as JSON; the key ring's keys share the tag `{keys}`. */
  apiKeys(): string {
    return `${this.prefix}:{keys}:all`;
  }

  /** Hash of the keys that sign read tokens: field = signing key id, value = the key as JSON. */
  signingKeys(): string {
    return `${this.prefix}:{keys}:signing`;
  }

  /** Sorted set of a key's concurrent answers: member = slot, score = expiry (ms); under the key ring's tag. */
  answerSlots(keyId: string): string {
    return `${this.prefix}:{keys}:slots:${keyId}`;
  }

  /** String: the model tokens a key spent in the window that starts at `windowStartMs`; under the key ring's tag. */
  tokenBudget(keyId: string, windowStartMs: number): string {
    return `${this.prefix}:{keys}:tpm:${keyId}:${windowStartMs}`;
  }

  /** Hash of revoked API keys: field = key id, value = when it was revoked. */
  revokedApiKeys(): string {
    return `${this.prefix}:{keys}:revoked`;
  }

  /** String: a worker's last status report as JSON, expiring with it (decision 041); the reports share the tag `{workers}`. */
  workerStatus(worker: string): string {
    return `${this.prefix}:{workers}:w:${worker}`;
  }

  /** Sorted set of the workers that reported: member = worker name, score = when its report expires (ms, its clock). */
  workerIndex(): string {
    return `${this.prefix}:{workers}:all`;
  }

  /** A Durable Stream's hash: `rev`, `record` (JSON), `touched`; its keys share the tag `{ds:<name>}`. */
  streamMeta(name: string): string {
    return `${this.prefix}:{ds:${name}}:meta`;
  }

  /** A Durable Stream's chunks: a list, the chunk at position p at index p - 1. */
  streamChunks(name: string): string {
    return `${this.prefix}:{ds:${name}}:chunks`;
  }

  /** Sharded pub/sub channel that says a Durable Stream changed. */
  streamNotify(name: string): string {
    return `${this.prefix}:{ds:${name}}:n`;
  }

  /** The stream name of a channel built by `streamNotify`, or `undefined`. */
  streamOfChannel(channel: string): string | undefined {
    const head = `${this.prefix}:{ds:`;
    return channel.startsWith(head) && channel.endsWith("}:n") ? channel.slice(head.length, -3) : undefined;
  }

  /**
   * String: the generation a door's chat waits for now. Its own tag `{chat:<id>}`: every command
   * on it touches this key alone, so it may sit on any Cluster slot.
   */
  chat(chatId: string): string {
    return `${this.prefix}:{chat:${chatId}}`;
  }

  /** Idempotency key → `{"id","request"}`. */
  idempotency(key: string): string {
    return `${this.prefix}:idem:{${key}}`;
  }

  private get queueTag(): string {
    return `${this.prefix}:{${this.prefix}:q}`;
  }

  /** ZSET of queued jobs, scored by their order. */
  get ready(): string {
    return `${this.queueTag}:ready`;
  }

  /** ZSET of leased jobs, scored by lease expiry (server ms). */
  get leased(): string {
    return `${this.queueTag}:leased`;
  }

  /** HASH job id → its order, kept while the job is open. */
  get order(): string {
    return `${this.queueTag}:order`;
  }

  /** Counter of job order. */
  get sequence(): string {
    return `${this.queueTag}:seq`;
  }

  /**
   * STREAM: the change feed (decision 036), one record (`i` id, `t` entry type) per creation,
   * claim, retry, rewind and end; on the queue's slot, where the job's lifecycle is decided.
   */
  get changes(): string {
    return `${this.queueTag}:changes`;
  }

  /** ZSET of every generation created, scored by creation time (ms × 1000 + a counter): for rebuilds. */
  get generations(): string {
    return `${this.queueTag}:gens`;
  }

  /** LIST that blocked claimers BLPOP on; one push per new or released job wakes one claimer. */
  get signal(): string {
    return `${this.queueTag}:signal`;
  }

  /** A probe channel on the slot of `tag`, to check that a subscription still delivers. */
  probe(tag: string): string {
    return `${this.prefix}:{${tag}}:probe`;
  }
}
