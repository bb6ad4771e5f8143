import { describe, expect, it } from "vitest";
import { CircuitBreaker } from "../../src/llm/resilience/circuit-breaker.ts";
import { Metrics } from "../../src/observability/metrics.ts";
import { reportOf } from "../../src/worker/status-reporter.ts";

/** A breaker on a clock the test moves. */
function breakerAt(start = 1_000_000): { breaker: CircuitBreaker; advance(ms: number): void } {
  let now = start;
  return { breaker: new CircuitBreaker({ failureThreshold: 2, cooldownMs: 1000 }, () => now), advance: (ms) => (now += ms) };
}

describe("a circuit breaker's openings, as the metrics and the worker's report show them", () => {
  it("counts each opening once: failures past the threshold while open do not count, a failed trial call opens it again", () => {
    const { breaker, advance } = breakerAt();
    breaker.failed();
    expect(breaker.opens).toBe(0);
    breaker.failed();
    expect([breaker.state, breaker.opens, breaker.openedAt]).toEqual(["open", 1, 1_000_000]);
    advance(10);
    breaker.failed(); // a call that went out before it opened
    expect(breaker.opens).toBe(1);
    advance(1000);
    expect(breaker.state).toBe("halfOpen");
    expect(breaker.tryAcquire()).toBe(true);
    breaker.failed();
    expect([breaker.state, breaker.opens]).toEqual(["open", 2]);
    advance(1000);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.succeeded();
    expect([breaker.state, breaker.opens, breaker.openedAt]).toEqual(["closed", 2, undefined]);
  });

  it("says how long until a call may be tried, and settles a wait for its trial call when the trial ends", async () => {
    const { breaker, advance } = breakerAt();
    expect(breaker.msUntilTrial()).toBe(0);
    await breaker.trialEnded(); // none out: at once
    breaker.failed();
    breaker.failed();
    advance(300);
    expect(breaker.msUntilTrial()).toBe(700);
    advance(700);
    expect(breaker.msUntilTrial()).toBe(0); // half-open, no trial out yet
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.msUntilTrial()).toBeUndefined(); // its trial's outcome decides
    let ended = false;
    const waiting = breaker.trialEnded().then(() => (ended = true));
    await Promise.resolve();
    expect(ended).toBe(false);
    breaker.answered(); // the trial's first token closes it
    await waiting;
    expect([ended, breaker.state, breaker.msUntilTrial()]).toEqual([true, "closed", 0]);
    // A trial that fails opens it again, and ends the wait too.
    breaker.failed();
    breaker.failed();
    advance(1000);
    expect(breaker.tryAcquire()).toBe(true);
    const failing = breaker.trialEnded();
    breaker.failed();
    await failing;
    expect([breaker.state, breaker.msUntilTrial()]).toEqual(["open", 1000]);
    // A trial abandoned (its call stopped) or completed ends the wait as well.
    for (const end of [() => breaker.abandon(), () => breaker.succeeded()]) {
      advance(1000);
      expect(breaker.tryAcquire()).toBe(true);
      let settled = false;
      const waiting = breaker.trialEnded().then(() => (settled = true));
      await Promise.resolve();
      expect(settled).toBe(false);
      end();
      await waiting;
      expect(settled).toBe(true);
      if (breaker.state === "closed") break;
      breaker.failed(); // abandoned: half-open again; open it for the next round
      breaker.failed();
    }
    expect(breaker.state).toBe("closed");
  });

  it("is reported closed, open with when it opened, and half-open", () => {
    const { breaker, advance } = breakerAt(Date.parse("2026-11-30T10:00:00.000Z"));
    expect(reportOf("p", breaker)).toEqual({ provider: "p", state: "closed" });
    breaker.failed();
    breaker.failed();
    expect(reportOf("p", breaker)).toEqual({ provider: "p", state: "open", openedAt: "2026-11-30T10:00:00.000Z" });
    advance(1000);
    expect(reportOf("p", breaker)).toEqual({ provider: "p", state: "half-open", openedAt: "2026-11-30T10:00:00.000Z" });
  });

  it("is exported as lifeline_breaker_open (1 until a call succeeds) and lifeline_breaker_opens_total, read at each scrape", async () => {
    const { breaker, advance } = breakerAt();
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.watchBreakers(() => [{ provider: "primary", open: breaker.state !== "closed", opens: breaker.opens }]);
    const scrape = async (): Promise<string[]> =>
      (await metrics.registry.metrics()).split("\n").filter((l) => l.startsWith("lifeline_breaker"));
    expect(await scrape()).toEqual(['lifeline_breaker_open{provider="primary"} 0', 'lifeline_breaker_opens_total{provider="primary"} 0']);
    breaker.failed();
    breaker.failed();
    expect(await scrape()).toEqual(['lifeline_breaker_open{provider="primary"} 1', 'lifeline_breaker_opens_total{provider="primary"} 1']);
    advance(1000); // half-open: still 1, nothing has gone through yet
    expect(await scrape()).toEqual(['lifeline_breaker_open{provider="primary"} 1', 'lifeline_breaker_opens_total{provider="primary"} 1']);
    breaker.tryAcquire();
    breaker.succeeded();
    expect(await scrape()).toEqual(['lifeline_breaker_open{provider="primary"} 0', 'lifeline_breaker_opens_total{provider="primary"} 1']);
  });
});

describe("what a circuit breaker counts as failures in a row", () => {
  it("calls failing before their first token between other calls' first tokens do not open it", () => {
    const { breaker } = breakerAt();
    for (let i = 0; i < 10; i++) {
      breaker.failed();
      breaker.answered(); // another call's first token: the provider answers
    }
    expect(breaker.state).toBe("closed");
    breaker.failed();
    breaker.failed();
    expect(breaker.state).toBe("open");
  });

  it("a provider that cuts every stream after its first token opens it, first tokens or not; a completed call ends the row", () => {
    const { breaker } = breakerAt();
    breaker.answered();
    breaker.failed(true);
    breaker.answered();
    breaker.succeeded(); // a call that completed: the streams broken so far are not in a row any more
    breaker.answered();
    breaker.failed(true);
    expect(breaker.state).toBe("closed");
    breaker.answered();
    breaker.failed(true);
    expect([breaker.state, breaker.opens]).toEqual(["open", 1]);
  });

  it("a trial call closes it at its first token, and opens it again if its stream breaks where the others did", () => {
    const { breaker, advance } = breakerAt();
    breaker.failed(true);
    breaker.failed(true);
    expect(breaker.state).toBe("open");
    advance(1000);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.answered();
    expect(breaker.state).toBe("closed");
    breaker.failed(true);
    expect([breaker.state, breaker.opens]).toEqual(["open", 2]);
  });
});
