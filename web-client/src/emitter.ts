/**
 * A small typed event emitter: `on` returns the function that removes the
 * listener, and a listener that throws does not stop the others.
 *
 * @module
 */

/** A map from event name to the type of its payload (an interface works). */
export type EventMap<E> = { [K in keyof E]: unknown };

/** A listener for one event. */
export type Listener<T> = (payload: T) => void;

export class Emitter<E extends EventMap<E>> {
  readonly #listeners = new Map<keyof E, Set<Listener<never>>>();
  readonly #onError: (error: unknown) => void;

  /** @param onError - Called with whatever a listener throws. */
  constructor(onError: (error: unknown) => void = reportError) {
    this.#onError = onError;
  }

  /** Adds `listener` for `event`; returns the function that removes it. */
  on<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    let set = this.#listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds `listener` for the next `event` only. */
  once<K extends keyof E>(event: K, listener: Listener<E[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes `listener` from `event`. */
  off<K extends keyof E>(event: K, listener: Listener<E[K]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** Calls every listener of `event` with `payload`. */
  emit<K extends keyof E>(event: K, payload: E[K]): void {
    const set = this.#listeners.get(event);
    if (set === undefined) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<E[K]>)(payload);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  /** How many listeners `event` has. */
  listenerCount(event: keyof E): number {
    return this.#listeners.get(event)?.size ?? 0;
  }
}

/** Surfaces a listener's error where the platform can (browsers), without breaking the emitter's loop. */
function reportError(error: unknown): void {
  (globalThis as { reportError?: (e: unknown) => void }).reportError?.(error);
}
