import { setMaxListeners } from "node:events";
import type { Entry } from "../core/entries.ts";
import type { Engine } from "../engine/port.ts";
import type { Metrics } from "../observability/metrics.ts";
import { EncodedEntry } from "./encoded-entry.ts";
import { READ_BATCH, cursorFor } from "./log-follower.ts";

/**
 * The most frames of its last page a tail keeps, so a follow that read up to just behind it joins
 * without reading again (decision 056).
 */
const RECENT_FRAMES = 32;

/** How a tail lets go of its members when it cannot go on: the log is gone, or reading it failed. */
export type TailEnd = { readonly kind: "gone" } | { readonly kind: "failed"; readonly error: unknown };

/** A follower as a tail sees it: where it stands, and what to do with what the tail read. */
export interface TailMember {
  /** The offset of the last entry it was given (0 before the first). */
  readonly offset: number;
  /** The attempt that wrote that entry, when known. */
  readonly attempt: number | undefined;
  /**
   * Takes `frames[from]` onwards, in offset order, skipping what it already has. False when it
   * leaves the tail: it took the terminal entry, it was stopped, its transport is full, or the
   * frames do not continue its position (it then reads on its own).
   */
  take(frames: readonly EncodedEntry[], from: number): boolean;
  /** The tail cannot vouch for the log past the member's position: it checks and reads on its own. */
  released(): void;
  ended(outcome: TailEnd): void;
}

/**
 * The shared tails of one gateway, one per generation someone follows at the end of its log. A
 * tail waits on the engine once for all its members, reads each new page once, encodes each entry
 * once ({@link EncodedEntry}) and hands the same frames to every member, in offset order.
 * Followers behind the end (resuming from an old cursor, or whose transport was full) read on
 * their own and join once they have caught up.
 */
export class LogTails {
  readonly engine: Engine;
  /** Counts the resets the follows of this gateway send. */
  readonly metrics: Metrics;
  readonly #tails = new Map<string, LogTail>();
  #cohort = new Cohort();

  constructor(engine: Engine, metrics: Metrics) {
    this.engine = engine;
    this.metrics = metrics;
  }

  /** An entry read from the engine, ready to be encoded once for every transport. */
  encode(entry: Entry): EncodedEntry {
    return new EncodedEntry(entry, cursorFor(this.engine, entry));
  }

  /**
   * Adds `member` to the tail of generation `id` (a new one starts at the member's position). It
   * may be handed the tail's recent frames at once. False when the tail cannot continue its
   * position (the member is further behind, or its entry is another attempt's): it reads on its own.
   */
  join(id: string, member: TailMember): boolean {
    let tail = this.#tails.get(id);
    if (!tail || tail.stopped) {
      tail = new LogTail(this, id, member.offset, member.attempt);
      this.#tails.set(id, tail);
    }
    return tail.add(member);
  }

  leave(id: string, member: TailMember): void {
    this.#tails.get(id)?.remove(member);
  }

  /** Generations with a tail now. */
  get size(): number {
    return this.#tails.size;
  }

  /** Called by a tail that stopped. */
  forget(id: string, tail: LogTail): void {
    if (this.#tails.get(id) === tail) this.#tails.delete(id);
  }

  /** The cohort a tail that is about to wait joins. */
  enlist(): Cohort {
    if (this.#cohort.waiting >= COHORT_SIZE || this.#cohort.controller.signal.aborted) this.#cohort = new Cohort();
    this.#cohort.waiting += 1;
    return this.#cohort;
  }
}

/**
 * Waiting tails share abort signals in cohorts of at most this many: an AbortSignal costs about
 * 0.8 KB, more than the rest of a waiting tail, and a removal from a signal's listener list takes
 * time in the number of listeners.
 */
const COHORT_SIZE = 64;

/**
 * Tails waiting under one signal. A tail whose last member left goes on waiting (the next follower
 * of its generation, a long-poll's next request say, finds it ready) until its log grows or its
 * cohort is woken: once half the cohort's tails have no member, all of them are woken, those with
 * members wait again in a new cohort and the others stop. So tails nobody follows stay at most as
 * many as those somebody does, and each one that stops costs at most one more wait of another.
 */
class Cohort {
  readonly controller = new AbortController();
  waiting = 0;
  idle = 0;

  constructor() {
    setMaxListeners(0, this.controller.signal); // one or two per waiting tail, by design
  }

  /** A waiting tail lost its last member. */
  idled(): void {
    this.idle += 1;
    this.#wakeWhenHalfIdle();
  }

  /** A tail stopped waiting here (its log grew, or it was woken): those left may now be half idle. */
  left(idle: boolean): void {
    this.waiting -= 1;
    if (idle) this.idle -= 1;
    this.#wakeWhenHalfIdle();
  }

  #wakeWhenHalfIdle(): void {
    // Once: every tail that leaves a woken cohort asks again. An `abort()` without a reason builds
    // a DOMException with its stack each time, even on a signal already aborted: a thousand
    // readers gone at once were a thousand of them.
    if (this.idle > 0 && this.idle * 2 >= this.waiting && !this.controller.signal.aborted) this.controller.abort(COHORT_WOKEN);
  }
}

/** Why a cohort's signal aborts; nothing reads it, and one for all costs nothing to raise. */
const COHORT_WOKEN = new Error("the cohort was woken");

/** One generation's tail: a single wait-and-read loop for all members. */
class LogTail {
  readonly #tails: LogTails;
  readonly #id: string;
  /** One member alone (the usual case, one reader per answer), a set when there are more. */
  #members: TailMember | Set<TailMember> | undefined;
  /** The last entry this tail read (or its first member's position), which every read checks still stands. */
  #offset: number;
  #attempt: number | undefined;
  /**
   * The frames of the last page read (its newest {@link RECENT_FRAMES}), ending at `#offset`. Only
   * that page: frames kept across pages outlive the young generation's collections, and at a
   * thousand answers they were a quarter of what the gateway's collections copied.
   */
  #recent: readonly EncodedEntry[] = [];
  /** The attempt of the entry just before `#recent`, when the tail knows it: a member there joins too. */
  #attemptBeforeRecent: number | undefined;
  #running = false;
  /** The cohort of the wait under way, and whether this tail counts there as one without members. */
  #cohort: Cohort | undefined;
  #idle = false;
  /** Set once the loop ends (or will end without looking again): a join then starts a new tail. */
  stopped = false;

  constructor(tails: LogTails, id: string, offset: number, attempt: number | undefined) {
    this.#tails = tails;
    this.#id = id;
    this.#offset = offset;
    this.#attempt = attempt;
  }

  add(member: TailMember): boolean {
    const checked = this.#tails.engine.replicatesAsynchronously;
    const at = member.offset;
    if (at >= this.#offset) {
      // At the tail's position, or ahead of it (the tail has not read yet what the member has).
      if (at === this.#offset && checked && member.attempt !== undefined) {
        if (this.#attempt === undefined) this.#attempt = member.attempt;
        else if (this.#attempt !== member.attempt) return false;
      }
      this.#admit(member);
      return true;
    }
    // Behind: it joins when the recent frames continue its position, and is given them now.
    const first = this.#recent[0];
    if (!first || first.offset > at + 1) return false;
    const standing = at === first.offset - 1 ? this.#attemptBeforeRecent : this.#recent[at - first.offset]?.attempt;
    if (checked && member.attempt !== undefined && standing !== member.attempt) return false;
    if (member.take(this.#recent, at + 1 - first.offset)) this.#admit(member);
    return true;
  }

  remove(member: TailMember): void {
    if (!this.#delete(member) || this.#members !== undefined) return;
    this.#recent = [];
    if (this.#cohort && !this.#idle) {
      this.#idle = true;
      this.#cohort.idled();
    }
  }

  #admit(member: TailMember): void {
    if (this.#members === undefined) this.#members = member;
    else if (this.#members instanceof Set) this.#members.add(member);
    else if (this.#members !== member) this.#members = new Set([this.#members, member]);
    if (this.#idle && this.#cohort) {
      this.#idle = false;
      this.#cohort.idle -= 1;
    }
    if (this.#running) return;
    this.#running = true;
    void this.#run();
  }

  async #run(): Promise<void> {
    const engine = this.#tails.engine;
    try {
      while (this.#members !== undefined) {
        const cohort = this.#tails.enlist();
        this.#cohort = cohort;
        try {
          await engine.wait(this.#id, this.#offset, cohort.controller.signal);
        } finally {
          this.#discharge(cohort);
        }
        // Woken by its cohort rather than by the log: wait again (at once past a new entry).
        if (this.#members !== undefined && !cohort.controller.signal.aborted) await this.#readToEnd();
      }
    } catch (error) {
      for (const member of this.#takeAll()) member.ended({ kind: "failed", error });
    } finally {
      this.stopped = true;
      this.#recent = [];
      this.#tails.forget(this.#id, this);
    }
  }

  #discharge(cohort: Cohort): void {
    cohort.left(this.#idle);
    this.#idle = false;
    this.#cohort = undefined;
  }

  /** Reads pages until a short one, handing each to every member. */
  async #readToEnd(): Promise<void> {
    const engine = this.#tails.engine;
    for (;;) {
      if (this.#members === undefined) return;
      const verify = engine.replicatesAsynchronously && this.#attempt !== undefined && this.#offset > 0;
      const page = await engine.read(this.#id, verify ? this.#offset - 1 : this.#offset, READ_BATCH);
      if (this.#members === undefined) return;
      if (verify && page.shift()?.attempt !== this.#attempt) {
        // The entry this tail stands on is gone or another attempt's (a failover): each member
        // checks its own position, and is reset or waits for the log to come back.
        for (const member of this.#takeAll()) member.released();
        return;
      }
      if (page.length === 0) {
        // Woken early, or the log is gone (expired, lost).
        if (!(await engine.head(this.#id))) for (const member of this.#takeAll()) member.ended({ kind: "gone" });
        return;
      }
      const frames = page.map((entry) => this.#tails.encode(entry));
      const last = frames[frames.length - 1]!;
      const kept = frames.length > RECENT_FRAMES ? frames.slice(-RECENT_FRAMES) : frames;
      this.#attemptBeforeRecent = kept === frames ? this.#attempt : frames[frames.length - RECENT_FRAMES - 1]!.attempt;
      this.#offset = last.offset;
      this.#attempt = last.attempt;
      this.#recent = kept;
      for (const member of this.#list()) {
        if (this.#has(member) && !member.take(frames, 0)) this.remove(member);
      }
      if (page.length < READ_BATCH - (verify ? 1 : 0)) return;
    }
  }

  #list(): TailMember[] {
    const members = this.#members;
    return members === undefined ? [] : members instanceof Set ? [...members] : [members];
  }

  #has(member: TailMember): boolean {
    const members = this.#members;
    return members instanceof Set ? members.has(member) : members === member;
  }

  /** Removes `member`; true when it was one. */
  #delete(member: TailMember): boolean {
    const members = this.#members;
    if (members === member) {
      this.#members = undefined;
      return true;
    }
    if (!(members instanceof Set) || !members.delete(member)) return false;
    if (members.size === 0) this.#members = undefined;
    return true;
  }

  /** Every member, now out of a tail that stops. */
  #takeAll(): TailMember[] {
    const all = this.#list();
    this.#members = undefined;
    this.stopped = true;
    return all;
  }
}
