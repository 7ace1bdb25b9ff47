/**
 * Named failpoints: the seam through which tests crash the engine at every
 * durable barrier and replay the same failure exactly.
 *
 * Engine code calls `await failpoints.hit('log.segment.put.before')` at each
 * point where durable state changes; the store's fault decorator hits
 * `store.<op>.before` / `store.<op>.after` around every operation. A test
 * arms a name with an action:
 *
 * - `error`  throws `INJECTED_FAULT` (or the given code): a transient failure
 *            the engine must surface or retry, never swallow.
 * - `crash`  throws `INJECTED_CRASH` and marks the whole Failpoints instance
 *            crashed: every later hit also throws, so the "dead process"
 *            cannot write another byte. The test then reopens from the store.
 * - `delay`  sleeps `ms` (injected sleep, so a simulation can use a fake clock).
 * - `hang`   blocks until the failpoint is disarmed.
 * - `torn`   (store write ops, `.before` only) writes a prefix of the bytes,
 *            then crashes: the shape a non-atomic write leaves behind.
 *
 * Arming takes `skip` (let the first N hits pass), `times` (fire at most N
 * times), `match` (fire only for some contexts, e.g. one key prefix) and
 * `probability` with an injected `random`, so a seeded run is reproducible.
 * Every hit is counted by name whether armed or not, so a test can first run
 * cleanly, read `seen()`, and then crash at each name in turn.
 */
import type { ErrorCode } from '../errors.js';
import { FloeError } from '../errors.js';

export interface FailpointContext {
  readonly op?: string;
  readonly key?: string;
  readonly [extra: string]: unknown;
}

export type FaultAction =
  | { readonly type: 'error'; readonly code?: ErrorCode; readonly message?: string }
  | { readonly type: 'crash' }
  | { readonly type: 'delay'; readonly ms: number }
  | { readonly type: 'hang' }
  | { readonly type: 'torn'; readonly keepBytes: number | ((length: number) => number) };

export interface ArmOptions {
  /** Let this many matching hits pass before firing (default 0). */
  readonly skip?: number;
  /** Fire at most this many times (default: unlimited). */
  readonly times?: number;
  /** Fire only when this returns true for the hit's context. */
  readonly match?: (ctx: FailpointContext) => boolean;
  /** Fire with this probability (uses the injected `random`). */
  readonly probability?: number;
}

interface Arm {
  readonly action: FaultAction;
  skip: number;
  times: number;
  readonly match: ((ctx: FailpointContext) => boolean) | undefined;
  readonly probability: number;
}

export interface FailpointsOptions {
  /** Source of randomness for `probability` (default Math.random). */
  readonly random?: () => number;
  /** Sleep used by `delay` (default setTimeout). */
  readonly sleep?: (ms: number) => Promise<void>;
}

const defaultSleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class Failpoints {
  readonly #arms = new Map<string, Arm>();
  readonly #counts = new Map<string, number>();
  readonly #hung = new Map<string, Array<() => void>>();
  readonly #random: () => number;
  readonly #sleep: (ms: number) => Promise<void>;
  #crashed: { name: string } | null = null;

  constructor(options: FailpointsOptions = {}) {
    this.#random = options.random ?? Math.random;
    this.#sleep = options.sleep ?? defaultSleep;
  }

  arm(name: string, action: FaultAction, options: ArmOptions = {}): this {
    this.#arms.set(name, {
      action,
      skip: options.skip ?? 0,
      times: options.times ?? Number.POSITIVE_INFINITY,
      match: options.match,
      probability: options.probability ?? 1,
    });
    return this;
  }

  /** Disarm one name, or all; releases hung hits. Does not un-crash. */
  disarm(name?: string): this {
    const names = name === undefined ? [...this.#arms.keys(), ...this.#hung.keys()] : [name];
    for (const n of names) {
      this.#arms.delete(n);
      for (const release of this.#hung.get(n) ?? []) release();
      this.#hung.delete(n);
    }
    return this;
  }

  /** True once a `crash` fired; every later hit throws INJECTED_CRASH. */
  get crashed(): boolean {
    return this.#crashed !== null;
  }

  /** How many times `name` was reached (armed or not). */
  count(name: string): number {
    return this.#counts.get(name) ?? 0;
  }

  /** Every failpoint name reached so far, in first-hit order. */
  seen(): string[] {
    return [...this.#counts.keys()];
  }

  /**
   * Decide what a hit does without performing it: null (pass), or the action
   * to perform. Store decorators use this to implement `torn` themselves.
   */
  check(name: string, ctx: FailpointContext = {}): FaultAction | null {
    this.#counts.set(name, (this.#counts.get(name) ?? 0) + 1);
    if (this.#crashed) return { type: 'crash' };
    const arm = this.#arms.get(name);
    if (!arm || arm.times <= 0) return null;
    if (arm.match && !arm.match(ctx)) return null;
    if (arm.skip > 0) {
      arm.skip--;
      return null;
    }
    if (arm.probability < 1 && this.#random() >= arm.probability) return null;
    arm.times--;
    return arm.action;
  }

  /** Reach failpoint `name`: pass, or perform its armed action. */
  async hit(name: string, ctx: FailpointContext = {}): Promise<void> {
    const action = this.check(name, ctx);
    if (action) await this.perform(name, action, ctx);
  }

  /** Perform an action returned by `check` (everything but `torn`). */
  async perform(name: string, action: FaultAction, ctx: FailpointContext = {}): Promise<void> {
    switch (action.type) {
      case 'crash':
        throw this.crash(name, ctx);
      case 'error':
        throw new FloeError(action.code ?? 'INJECTED_FAULT', action.message ?? `injected fault at failpoint ${name}`, {
          key: ctx.key,
          backend: 'failpoint',
        });
      case 'delay':
        await this.#sleep(action.ms);
        return;
      case 'hang':
        await new Promise<void>((resolve) => {
          const list = this.#hung.get(name) ?? [];
          list.push(resolve);
          this.#hung.set(name, list);
        });
        return;
      case 'torn':
        throw new FloeError('INVARIANT_VIOLATION', `failpoint ${name}: "torn" applies only to store writes`);
    }
  }

  /** Mark crashed and return the error to throw. */
  crash(name: string, ctx: FailpointContext = {}): FloeError {
    this.#crashed ??= { name };
    return new FloeError('INJECTED_CRASH', `simulated crash at failpoint ${this.#crashed.name} (reached ${name})`, {
      key: ctx.key,
      backend: 'failpoint',
    });
  }
}

/** A Failpoints that is never armed: the production default. */
export const NO_FAILPOINTS: Pick<Failpoints, 'hit'> = {
  hit: async () => {},
};

/** What engine layers accept: anything with `hit`. */
export type FailpointHook = Pick<Failpoints, 'hit'>;
