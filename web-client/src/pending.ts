/**
 * The table of the client's own calls: queued (waiting for a connection) or
 * sent (waiting for an answer), each with its timeout and abort signal.
 *
 * @module
 */

import { DisconnectedError, RpcError, TimeoutError, type ErrorObject } from "./errors.js";
import type { Timers } from "./timers.js";

/** One outgoing call or notification. */
export interface Outgoing {
  /** The request id; `undefined` for a notification. */
  readonly id: number | undefined;
  readonly method: string;
  /** The frame to send. */
  readonly frame: string;
  /** Whether the frame went out on the current connection. */
  sent: boolean;
}

interface Entry extends Outgoing {
  /** Receives the call's progress reports, when the caller asked for them. */
  onProgress: ((progress: unknown) => void) | undefined;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  /** Clears the timer and the abort listener. */
  dispose(): void;
}

/** What the table tells its owner. */
export interface PendingHooks {
  /** A sent call was given up (timeout or abort): tell the peer with `rpc.cancel`. */
  cancelled(id: number): void;
  /** A call's `onProgress` threw. */
  progressFailed?(error: unknown): void;
}

/** Options of one call. */
export interface CallOptions {
  /**
   * Milliseconds to wait for the answer, counted from the call (time spent
   * waiting for a connection included). `0` waits forever.
   */
  timeout?: number;
  /** Aborts the call: it rejects with the signal's reason and the server gets `rpc.cancel`. */
  signal?: AbortSignal;
  /**
   * Receives the call's progress: the `progress` of each `rpc.progress` the
   * server sends for it, in order, before the call settles and never after.
   * Without it, progress reports for the call are ignored.
   */
  onProgress?: (progress: unknown) => void;
}

export class PendingCalls {
  readonly #timers: Timers;
  readonly #hooks: PendingHooks;
  readonly #limit: number;
  /** Calls and notifications in the order they were made. */
  readonly #entries = new Map<number, Entry>();
  /** Keys for notifications, which have no id: negative, so they never collide. */
  #notificationKey = 0;

  /**
   * @param limit - The most calls and notifications waiting at once; more reject at once.
   */
  constructor(timers: Timers, hooks: PendingHooks, limit: number) {
    this.#timers = timers;
    this.#hooks = hooks;
    this.#limit = limit;
  }

  /** How many calls and notifications are waiting. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Registers a call (with an `id`) or a notification (without) and returns
   * the promise of its result (a notification resolves once sent).
   */
  add(id: number | undefined, method: string, frame: string, options: CallOptions): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (this.#entries.size >= this.#limit) {
        reject(new RpcError(-32010, "Limit exceeded", { reason: "too many calls waiting", limit: this.#limit }));
        return;
      }
      const key = id ?? --this.#notificationKey;
      let timer: unknown;
      const onAbort = (): void => this.#giveUp(key, abortReason(signal as AbortSignal));
      const entry: Entry = {
        id,
        method,
        frame,
        sent: false,
        onProgress: options.onProgress,
        resolve,
        reject,
        dispose: () => {
          if (timer !== undefined) this.#timers.clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      const timeout = options.timeout ?? 0;
      if (timeout > 0 && Number.isFinite(timeout)) {
        timer = this.#timers.setTimeout(() => this.#giveUp(key, new TimeoutError(method, timeout)), timeout);
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#entries.set(key, entry);
    });
  }

  /** Entries not yet sent, oldest first. */
  unsent(): Outgoing[] {
    return [...this.#entries.values()].filter((e) => !e.sent);
  }

  /** Marks an entry sent; a notification is done then. */
  markSent(entry: Outgoing): void {
    entry.sent = true;
    if (entry.id === undefined) {
      for (const [key, e] of this.#entries) {
        if (e === entry) {
          this.#entries.delete(key);
          e.dispose();
          e.resolve(undefined);
        }
      }
    }
  }

  /** Settles the call with this id; false when there is none (a stray or late answer). */
  settle(id: number, outcome: { result: unknown } | { error: ErrorObject }): boolean {
    const entry = this.#entries.get(id);
    if (entry === undefined || !entry.sent) return false;
    this.#entries.delete(id);
    entry.dispose();
    if ("error" in outcome) entry.reject(RpcError.from(outcome.error));
    else entry.resolve(outcome.result);
    return true;
  }

  /**
   * Hands a progress report to the call with this id, if it is waiting for
   * its answer and asked for progress; false when nobody took it.
   */
  progress(id: number, progress: unknown): boolean {
    const entry = this.#entries.get(id);
    if (entry?.onProgress === undefined || !entry.sent) return false;
    try {
      entry.onProgress(progress);
    } catch (error) {
      this.#hooks.progressFailed?.(error);
    }
    return true;
  }

  /**
   * Rejects every call already sent: its answer can no longer arrive.
   * Calls still queued wait for the next connection.
   */
  failSent(error: DisconnectedError): void {
    for (const [key, entry] of this.#entries) {
      if (entry.sent) {
        this.#entries.delete(key);
        entry.dispose();
        entry.reject(error);
      }
    }
  }

  /** Rejects everything, sent or queued. */
  failAll(error: DisconnectedError): void {
    for (const [key, entry] of this.#entries) {
      this.#entries.delete(key);
      entry.dispose();
      entry.reject(error);
    }
  }

  #giveUp(key: number, error: unknown): void {
    const entry = this.#entries.get(key);
    if (entry === undefined) return;
    this.#entries.delete(key);
    entry.dispose();
    if (entry.sent && entry.id !== undefined) this.#hooks.cancelled(entry.id);
    entry.reject(error);
  }
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}
