import { FAULT_KINDS, type FaultKind, type ResolvedSimLlmOptions } from "./options.ts";
import { prng } from "../llm/sim/prng.ts";

/** The request header that chooses one request's fault, overriding the server's flags. */
export const SIM_FAULT_HEADER = "x-sim-fault";

/** What one request does wrong (`none`: nothing). */
export interface FaultPlan {
  readonly kind: FaultKind;
  /** `error`: the HTTP status. */
  readonly status: number;
  /** `rate-limit`: the `Retry-After` of the 429, in seconds. */
  readonly retryAfterSeconds: number;
  /** `stall`, `cut`: content tokens sent before the fault. */
  readonly afterTokens: number;
  /** `slow-first-token`: the pause between the headers and the body. */
  readonly firstTokenDelayMs: number;
}

export type FaultChoice = { readonly ok: true; readonly plan: FaultPlan } | { readonly ok: false; readonly message: string };

/** Parameters of the header: `after=N`, `status=N`, `delay=MS`, `retry-after=S`. */
const HEADER_PARAMS = {
  after: { field: "afterTokens", min: 0, max: 1_000_000_000 },
  status: { field: "status", min: 400, max: 599 },
  delay: { field: "firstTokenDelayMs", min: 0, max: 1_000_000_000 },
  "retry-after": { field: "retryAfterSeconds", min: 0, max: 1_000_000_000 },
} as const;

/**
 * Parses `x-sim-fault: <fault>[;after=N][;status=N][;delay=MS][;retry-after=S]`, e.g.
 * `stall;after=3` or `error;status=503`. Parameters not given come from `defaults`.
 */
export function parseFaultHeader(value: string, defaults: FaultPlan): FaultChoice {
  const [head = "", ...params] = value.split(";").map((part) => part.trim());
  if (!(FAULT_KINDS as readonly string[]).includes(head)) {
    return { ok: false, message: `${SIM_FAULT_HEADER}: unknown fault "${head}" (one of ${FAULT_KINDS.join(", ")})` };
  }
  const plan: { -readonly [K in keyof FaultPlan]: FaultPlan[K] } = { ...defaults, kind: head as FaultKind };
  for (const param of params) {
    if (param === "") continue;
    const [key = "", text = ""] = param.split("=", 2).map((s) => s.trim());
    const spec = HEADER_PARAMS[key as keyof typeof HEADER_PARAMS] as (typeof HEADER_PARAMS)[keyof typeof HEADER_PARAMS] | undefined;
    if (!spec)
      return { ok: false, message: `${SIM_FAULT_HEADER}: unknown parameter "${key}" (one of ${Object.keys(HEADER_PARAMS).join(", ")})` };
    const n = Number(text);
    if (text === "" || !Number.isInteger(n) || n < spec.min || n > spec.max) {
      return { ok: false, message: `${SIM_FAULT_HEADER}: ${key} must be an integer from ${spec.min} to ${spec.max}, not "${text}"` };
    }
    plan[spec.field] = n;
  }
  return { ok: true, plan };
}

/**
 * Decides, request by request in arrival order, which ones get the server's fault: each with
 * probability `faultRate` from a PRNG seeded by `seed`, until `faultCount` faults were injected.
 * A request's own `x-sim-fault` header wins and does not use up the count.
 */
export class FaultSchedule {
  readonly #options: ResolvedSimLlmOptions;
  readonly #defaults: FaultPlan;
  readonly #clean: FaultPlan;
  readonly #random: () => number;
  #injected = 0;

  constructor(options: ResolvedSimLlmOptions) {
    this.#options = options;
    this.#defaults = {
      kind: options.fault,
      status: options.faultStatus,
      retryAfterSeconds: options.retryAfterSeconds,
      afterTokens: options.faultAfterTokens,
      firstTokenDelayMs: options.firstTokenDelayMs,
    };
    this.#clean = { ...this.#defaults, kind: "none" };
    this.#random = prng(options.seed);
  }

  /** Checks a request's header without deciding anything, so a bad header is refused before the answer. */
  check(header: string | undefined): FaultChoice | undefined {
    return header === undefined ? undefined : parseFaultHeader(header, this.#defaults);
  }

  /** The plan for the next request; `override` is its parsed header, if it had one. */
  next(override: FaultPlan | undefined): FaultPlan {
    if (override) return override;
    if (this.#options.fault === "none") return this.#clean;
    if (this.#options.faultCount !== undefined && this.#injected >= this.#options.faultCount) return this.#clean;
    if (this.#options.faultRate < 1 && this.#random() >= this.#options.faultRate) return this.#clean;
    this.#injected += 1;
    return this.#defaults;
  }
}
