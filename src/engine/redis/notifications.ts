import { randomUUID } from "node:crypto";
import type { Logger } from "../../observability/logger.ts";
import { Wakeups, type ParkedWait } from "../wakeups.ts";
import type { RedisClient } from "./connection.ts";

export interface NotificationOptions {
  /** The subscriber connection (sharded pub/sub). */
  readonly subscriber: RedisClient;
  /** Any command connection, used to publish probes. */
  readonly publisher: RedisClient;
  /** Channels, one per shard, on which probes travel. */
  readonly probeChannels: () => Promise<readonly string[]>;
  /** Generation id → its channel, and back. */
  readonly channelOf: (id: string) => string;
  readonly idOf: (channel: string) => string | undefined;
  /** How often a probe checks that the subscription still delivers. @defaultValue 2000 */
  readonly probeMs?: number;
  /** How long a probe may take to come back before the subscription counts as broken. @defaultValue twice `probeMs` */
  readonly probePatienceMs?: number;
  /** How long a channel stays subscribed after its last waiter left. @defaultValue 10000 */
  readonly lingerMs?: number;
  /**
   * Whether an announcement heard may spare a reader at that offset its head read (decision 042).
   * Off for a Cluster: a shard's subscriber is rebuilt after a failover without a `ready` event, so
   * a break of its subscriptions cannot be told. @defaultValue true
   */
  readonly trustAnnouncements?: boolean;
  /**
   * Whether the channels subscribed in one turn of the event loop go in one `SSUBSCRIBE` (and those
   * let go in one sweep in one `SUNSUBSCRIBE`). Off for a Cluster, where every generation's channel
   * has a slot of its own and one command may name channels of one slot only. @defaultValue false
   */
  readonly batchSubscribes?: boolean;
  readonly logger?: Logger;
}

const IGNORE = (): void => undefined;

/** Channels per `SSUBSCRIBE` or `SUNSUBSCRIBE` at most, when they are batched. */
const CHANNELS_PER_COMMAND = 512;

/**
 * Live notifications for waiting readers: one subscriber connection per process, one sharded
 * channel per generation, subscribed while someone waits on it. A probe published to the
 * process's own probe channels proves the subscription still delivers; when one goes missing
 * (a failover can leave a subscription silently dead) the subscriber reconnects and every waiter
 * wakes to look again, so nothing is missed.
 */
export class Notifications {
  readonly #o: NotificationOptions;
  readonly #wakeups = new Wakeups();
  /** Per held log: holders, the subscription, and what its notifications said (how many, the last offset). */
  readonly #subscribed = new Map<string, Subscription>();
  /** Held logs nobody holds now, with when they were let go: unsubscribed after the linger time. */
  readonly #lingering = new Map<string, number>();
  readonly #lingerTimer: NodeJS.Timeout;
  readonly #probeTimer: NodeJS.Timeout;
  readonly #pendingProbes = new Map<string, NodeJS.Timeout>();
  readonly #token = randomUUID();
  #probesSubscribed: Promise<readonly string[]> | undefined;
  /** The channels to subscribe at the end of this turn of the event loop, when subscribes are batched. */
  #subscribing: SubscribeBatch | undefined;
  /** Settles when the last `SSUBSCRIBE` sent (or to be sent) is answered: the next waits for it. */
  #subscribeAnswered: Promise<void> = Promise.resolve();
  #closed = false;
  /** Nothing heard is trusted until a probe has come through: none has yet. */
  #recovering = true;
  /** Counts breaks of the subscriber (reconnects, lost probes): a read ticket of an earlier one is void. */
  #epoch = 0;
  /** Subscriptions re-established after a failed probe. */
  recoveries = 0;

  constructor(options: NotificationOptions) {
    this.#o = options;
    options.subscriber.on("smessage", (channel: string, message: string) => this.#onMessage(channel, message));
    // ioredis resubscribes after a reconnect; waiters read again now, and once a probe proves delivery.
    options.subscriber.on("ready", () => {
      this.#recovering = true;
      this.#forgetAnnounced();
      this.#wakeups.wakeAll();
    });
    // From the moment the connection drops, what was heard on it is no longer followed by every
    // append, and nothing is trusted (not even a read sent now) until a probe comes back.
    for (const event of ["close", "reconnecting", "end"]) {
      options.subscriber.on(event, () => {
        this.#recovering = true;
        this.#forgetAnnounced();
      });
    }
    this.#probeTimer = setInterval(() => void this.#probe(), options.probeMs ?? 2000);
    this.#probeTimer.unref();
    // One sweep for every let-go log rather than a timer armed and cleared at each wait.
    const linger = options.lingerMs ?? 10_000;
    this.#lingerTimer = setInterval(() => this.#sweep(linger), Math.max(10, linger / 2));
    this.#lingerTimer.unref();
  }

  /**
   * Whether a read sent under a subscription could spare a reader its head read now: announcements
   * are trusted on this deployment, and the subscriber is connected and proven by a probe. A read
   * for waiting subscribes first only then, so a subscriber in trouble never holds up a read.
   */
  get trusted(): boolean {
    return this.#o.trustAnnouncements !== false && !this.#recovering;
  }

  /** A wait for the next notification for `id` (or a recovery, or abort), ended early by its `done()`. Call `hold` first. */
  park(id: string, signal: AbortSignal): ParkedWait {
    return this.#wakeups.park(id, signal);
  }

  /**
   * The offset the newest notification for held `id` announced, heard on the subscription as it
   * stands now (none before the first, nor after a reconnect or a lost probe until the next one).
   * Such a notification was published while the subscription stood, so every append after it is
   * announced here too: a reader that read exactly up to it need not ask the log's head before
   * waiting for the next.
   */
  announced(id: string): number | undefined {
    if (!this.trusted) return undefined;
    const entry = this.#subscribed.get(id);
    if (!entry?.standing) return undefined;
    // The larger of the two: both were true of the log once, and every append after either is announced.
    const known = Math.max(Number.isSafeInteger(entry.heardOffset) ? entry.heardOffset : -1, entry.readEnd);
    return known >= 0 ? known : undefined;
  }

  /**
   * Taken just before a read of `id` is sent: set when the subscription stands (and is trusted), so
   * every append the read does not see will be announced on it. Give it to `noteRead` with what the
   * read found.
   */
  readTicket(id: string): ReadTicket | undefined {
    if (!this.trusted) return undefined;
    const entry = this.#subscribed.get(id);
    return entry?.standing ? { entry, epoch: this.#epoch } : undefined;
  }

  /**
   * A read taken with `ticket` found the log ending at `lastOffset`: like an announcement heard, it
   * spares a reader at that offset its head read — unless the subscription broke meanwhile.
   */
  noteRead(id: string, ticket: ReadTicket, lastOffset: number): void {
    if (ticket.epoch !== this.#epoch || this.#recovering || this.#subscribed.get(id) !== ticket.entry) return;
    if (lastOffset > ticket.entry.readEnd) ticket.entry.readEnd = lastOffset;
  }

  /** How many notifications for held `id` arrived so far: pass it to `announcedSince` after waiting. */
  heard(id: string): number {
    return this.#subscribed.get(id)?.heard ?? 0;
  }

  /**
   * The offset the newest notification for `id` announced, if one arrived after `heard` was
   * `since`: the append (or cancel) that published it had committed on the primary that sent it.
   * In a failover that primary may not be the one reads go to, so a reader that trusts it may find
   * less than announced and must wait again; it never finds a different entry, which the cursor
   * checks would catch.
   */
  announcedSince(id: string, since: number): number | undefined {
    const entry = this.#subscribed.get(id);
    return entry && entry.heard > since && Number.isSafeInteger(entry.offset) ? entry.offset : undefined;
  }

  /** Holds `id` at once, when its subscription stands already (true); otherwise nothing is held, and `hold` subscribes. */
  holdStanding(id: string): boolean {
    const entry = this.#subscribed.get(id);
    if (!entry?.standing) return false;
    if (entry.refs++ === 0) this.#lingering.delete(id);
    return true;
  }

  /** Subscribes to `id` (once for all holders) and resolves when the subscription stands. */
  async hold(id: string): Promise<void> {
    let entry = this.#subscribed.get(id);
    if (!entry) {
      const created: Subscription = {
        refs: 0,
        ready: this.#subscribe(this.#o.channelOf(id)),
        heard: 0,
        offset: Number.NaN,
        heardOffset: Number.NaN,
        readEnd: -1,
        standing: false,
      };
      // Only what is heard once the subscribe is answered counts as heard on a standing subscription
      // (a message of an older subscription of the same channel may still arrive before).
      created.ready.then(
        () => (created.standing = true),
        () => undefined,
      );
      // A subscribe that failed is forgotten, so the next holder tries again.
      created.ready.catch(() => {
        if (this.#subscribed.get(id) === created) this.#subscribed.delete(id);
      });
      entry = created;
      this.#subscribed.set(id, entry);
    }
    if (entry.refs++ === 0) this.#lingering.delete(id);
    try {
      await entry.ready;
    } catch (error) {
      entry.refs -= 1;
      throw error;
    }
  }

  /**
   * Subscribes to `channel`; batched, with the others asked for in this turn of the event loop and
   * while the previous `SSUBSCRIBE` was unanswered, in one command: a command of its own per channel
   * was a socket write per follow opened, a sixth of the gateway's CPU while thousands of follows
   * opened (decision 045). Follows opened over HTTP arrive one per turn; one command in flight at a
   * time gathers them, and adds nothing when subscribes are rare.
   */
  #subscribe(channel: string): Promise<unknown> {
    const subscriber = this.#o.subscriber;
    if (this.#o.batchSubscribes !== true) return subscriber.ssubscribe(channel) as Promise<unknown>;
    let batch = this.#subscribing;
    if (!batch || batch.channels.length >= CHANNELS_PER_COMMAND) {
      const channels: string[] = [];
      const turnEnds = new Promise<void>((resolve) => setImmediate(resolve));
      const created: SubscribeBatch = {
        channels,
        ready: Promise.all([turnEnds, this.#subscribeAnswered]).then(() => {
          if (this.#subscribing === created) this.#subscribing = undefined;
          return subscriber.ssubscribe(...channels);
        }),
      };
      this.#subscribeAnswered = created.ready.then(IGNORE, IGNORE);
      batch = this.#subscribing = created;
    }
    batch.channels.push(channel);
    return batch.ready;
  }

  /**
   * Lets go of `id`; the channel is unsubscribed after the linger time if nobody holds it, or at once
   * when `linger` is false (a log that was not there).
   */
  release(id: string, linger = true): void {
    const entry = this.#subscribed.get(id);
    if (!entry) return;
    entry.refs -= 1;
    if (entry.refs > 0 || this.#closed) return;
    if (linger) this.#lingering.set(id, Date.now());
    else this.#unsubscribe(this.#forget(id, entry));
  }

  /** Unsubscribes the logs let go of at least `lingerMs` ago. */
  #sweep(lingerMs: number): void {
    const before = Date.now() - lingerMs;
    const channels: string[] = [];
    for (const [id, since] of this.#lingering) {
      if (since > before) continue;
      this.#lingering.delete(id);
      const entry = this.#subscribed.get(id);
      if (entry && entry.refs === 0) channels.push(...this.#forget(id, entry));
    }
    const perCommand = this.#o.batchSubscribes === true ? CHANNELS_PER_COMMAND : 1;
    for (let i = 0; i < channels.length; i += perCommand) this.#unsubscribe(channels.slice(i, i + perCommand));
  }

  /** Drops `id`'s subscription from the books: its channel to unsubscribe, if it was still there. */
  #forget(id: string, entry: Subscription): string[] {
    this.#lingering.delete(id);
    if (this.#subscribed.get(id) !== entry) return [];
    this.#subscribed.delete(id);
    return [this.#o.channelOf(id)];
  }

  #unsubscribe(channels: readonly string[]): void {
    if (channels.length > 0) this.#o.subscriber.sunsubscribe(...channels).catch(() => undefined);
  }

  /** A reconnect or a lost probe: what was announced before it is not known to be followed by every later append. */
  #forgetAnnounced(): void {
    this.#epoch += 1;
    for (const entry of this.#subscribed.values()) {
      entry.heardOffset = Number.NaN;
      entry.readEnd = -1;
    }
  }

  #onMessage(channel: string, message: string): void {
    const probe = this.#pendingProbes.get(message);
    if (probe) {
      clearTimeout(probe);
      this.#pendingProbes.delete(message);
      if (this.#recovering) {
        // The subscription delivers again: whatever was published while it was being restored is re-read.
        this.#recovering = false;
        this.#wakeups.wakeAll();
      }
      return;
    }
    const id = this.#o.idOf(channel);
    if (!id) return;
    const entry = this.#subscribed.get(id);
    if (entry) {
      entry.heard += 1;
      entry.offset = Number(message);
      entry.heardOffset = entry.standing ? entry.offset : Number.NaN;
    }
    this.#wakeups.wake(id);
  }

  async #probe(): Promise<void> {
    if (this.#closed || this.#pendingProbes.size > 0) return;
    const patience = this.#o.probePatienceMs ?? (this.#o.probeMs ?? 2000) * 2;
    // Armed before anything is awaited: a subscribe or publish that never settles counts as lost.
    const token = `${this.#token}:${randomUUID()}`;
    const timeout = setTimeout(() => this.#probeLost(token), patience);
    timeout.unref();
    this.#pendingProbes.set(token, timeout);
    try {
      this.#probesSubscribed ??= this.#o.probeChannels().then(async (channels) => {
        for (const channel of channels) await this.#o.subscriber.ssubscribe(channel);
        return channels;
      });
      const channels = await this.#probesSubscribed;
      const tokens = channels.map((_, i) => (i === 0 ? token : `${this.#token}:${randomUUID()}`));
      for (const [i, channel] of channels.entries()) {
        const each = tokens[i] ?? token;
        if (each !== token) {
          const t = setTimeout(() => this.#probeLost(each), patience);
          t.unref();
          this.#pendingProbes.set(each, t);
        }
        await this.#o.publisher.spublish(channel, each);
      }
    } catch (error) {
      this.#probesSubscribed = undefined;
      this.#o.logger?.warn({ err: error }, "notification probe could not be sent");
    }
  }

  #probeLost(token: string): void {
    if (!this.#pendingProbes.delete(token) || this.#closed) return;
    for (const timer of this.#pendingProbes.values()) clearTimeout(timer);
    this.#pendingProbes.clear();
    this.recoveries += 1;
    this.#recovering = true;
    this.#o.logger?.warn("a probe was not delivered: re-establishing the subscription");
    this.#probesSubscribed = undefined;
    // Reconnecting makes ioredis subscribe every channel again; waiters then look again.
    this.#forgetAnnounced();
    this.#o.subscriber.disconnect(true);
    this.#wakeups.wakeAll();
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#probeTimer);
    clearInterval(this.#lingerTimer);
    for (const timer of this.#pendingProbes.values()) clearTimeout(timer);
    this.#wakeups.wakeAll();
  }
}

/** One held log's subscription: its holders, the subscribe, and what its notifications said. */
interface Subscription {
  refs: number;
  readonly ready: Promise<unknown>;
  /** Notifications heard, and the offset the newest announced. */
  heard: number;
  offset: number;
  /** That offset, when it was heard on the subscription as it stands now (NaN: not since it last stood anew). */
  heardOffset: number;
  /** Where a read sent while the subscription stood found the log ending, the furthest (-1: none since it last stood anew). */
  readEnd: number;
  /** The subscribe was answered. */
  standing: boolean;
}

/** Channels that one `SSUBSCRIBE` will name, and its answer. */
interface SubscribeBatch {
  readonly channels: string[];
  readonly ready: Promise<unknown>;
}

/** What `readTicket` gives a read: the subscription it was sent under, and the break count then. */
export interface ReadTicket {
  readonly entry: Subscription;
  readonly epoch: number;
}
