/**
 * {@link Subscription}: one topic the client follows, across reconnects.
 *
 * @module
 */

import { Emitter } from "./emitter.js";
import type { Publication, RecoveryGap, StreamPosition, TopicResult } from "./protocol.js";

/** What a subscription reports each time the server confirms it. */
export interface Subscribed {
  /** The topic. */
  topic: string;
  /** Whether a position was sent (`since`), i.e. this was an attempt to resume. */
  resumed: boolean;
  /** The position that was sent, if any. */
  since: StreamPosition | undefined;
  /** Whether every publication since `since` was (or is about to be) replayed. */
  recovered: boolean;
  /** Why recovery was incomplete: the application should reload its state. */
  gap: RecoveryGap | undefined;
  /** The stream's position after the subscribe (recoverable topics only). */
  position: StreamPosition | undefined;
}

/** Events of a {@link Subscription}. */
export interface SubscriptionEvents {
  /** A publication on the topic. */
  message: Publication;
  /** The server confirmed the subscription (first time, and after every reconnect). */
  subscribed: Subscribed;
  /** The server refused the subscription; it is dropped. */
  error: Error;
  /** The subscription ended (unsubscribed, or refused). */
  unsubscribed: { reason: string };
}

/** Where a subscription is. */
export type SubscriptionState = "pending" | "subscribed" | "unsubscribed";

/** Options of {@link Client.subscribe}. */
export interface SubscribeOptions {
  /** Resume after this position (a recoverable topic): the server replays what came after it. */
  since?: StreamPosition;
  /**
   * How many publications the async iterator keeps for a consumer that is
   * behind; one more ends the iteration with a `RangeError`.
   * @default 1000
   */
  bufferSize?: number;
}

/** What the client does for a subscription. */
export interface SubscriptionOwner {
  unsubscribe(subscription: Subscription): Promise<void>;
  /** A subscription's listener threw. */
  listenerFailed(error: unknown): void;
}

/**
 * One topic the client follows. It lives across reconnects: after each one
 * the client subscribes again from {@link Subscription.position} and reports
 * the outcome with a `subscribed` event. Publications come as `message`
 * events and through the async iterator:
 *
 * ```ts
 * const news = client.subscribe("news");
 * news.on("subscribed", (s) => { if (!s.recovered) reload(); });
 * for await (const publication of news) render(publication.data);
 * ```
 */
export class Subscription implements AsyncIterable<Publication> {
  /** The topic. */
  readonly topic: string;
  readonly #events: Emitter<SubscriptionEvents>;
  readonly #owner: SubscriptionOwner;
  readonly #bufferSize: number;
  #state: SubscriptionState = "pending";
  #position: StreamPosition | undefined;
  #iterators = new Set<Iteration>();
  #failure: Error | undefined;
  #last: Subscribed | undefined;

  /** @internal Created by {@link Client.subscribe}. */
  constructor(owner: SubscriptionOwner, topic: string, options: SubscribeOptions = {}) {
    this.#owner = owner;
    this.#events = new Emitter((e) => owner.listenerFailed(e));
    this.topic = topic;
    this.#position = options.since;
    this.#bufferSize = options.bufferSize ?? 1000;
  }

  /** Where the subscription is. */
  get state(): SubscriptionState {
    return this.#state;
  }

  /** The position of the last publication seen (recoverable topics), sent as `since` on resubscribe. */
  get position(): StreamPosition | undefined {
    return this.#position;
  }

  /** Listens to an event of this subscription; returns the function that stops listening. */
  on<K extends keyof SubscriptionEvents>(event: K, listener: (payload: SubscriptionEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Resolves once the server has confirmed the subscription (at once, with
   * the latest report, when it already has); rejects if it refuses.
   */
  ready(): Promise<Subscribed> {
    if (this.#state === "unsubscribed") {
      return Promise.reject(this.#failure ?? new Error(`${this.topic}: unsubscribed`));
    }
    if (this.#state === "subscribed" && this.#last !== undefined) return Promise.resolve(this.#last);
    return new Promise((resolve, reject) => {
      const offs = [
        this.#events.once("subscribed", (s) => {
          offs.forEach((off) => off());
          resolve(s);
        }),
        this.#events.once("error", (e) => {
          offs.forEach((off) => off());
          reject(e);
        }),
      ];
    });
  }

  /** Leaves the topic. */
  unsubscribe(): Promise<void> {
    return this.#owner.unsubscribe(this);
  }

  [Symbol.asyncIterator](): AsyncIterator<Publication> {
    const iteration = new Iteration(this.#bufferSize, () => this.#iterators.delete(iteration));
    if (this.#state === "unsubscribed") iteration.end(this.#failure);
    else this.#iterators.add(iteration);
    return iteration;
  }

  /** @internal The `since` to send on (re)subscribe. */
  request(): { topic: string; since?: StreamPosition } {
    return this.#position === undefined ? { topic: this.topic } : { topic: this.topic, since: this.#position };
  }

  /** @internal The server answered the subscribe sent with `since`. */
  confirmed(result: TopicResult, since: StreamPosition | undefined): void {
    const position =
      result.offset != null && result.epoch != null ? { offset: result.offset, epoch: result.epoch } : undefined;
    // When the replay is coming, the position advances with it; otherwise
    // (a fresh subscribe, or a gap) the stream's current position is ours.
    if (since === undefined || !result.recovered) this.#position = position;
    this.#state = "subscribed";
    this.#last = {
      topic: this.topic,
      resumed: since !== undefined,
      since,
      recovered: result.recovered,
      gap: result.gap ?? undefined,
      position,
    };
    this.#events.emit("subscribed", this.#last);
  }

  /** @internal A publication arrived; returns false for a duplicate. */
  deliver(publication: Publication): boolean {
    const { offset, epoch } = publication;
    if (offset != null && epoch != null) {
      const seen = this.#position;
      if (seen !== undefined && seen.epoch === epoch && offset <= seen.offset) return false;
      this.#position = { offset, epoch };
    }
    this.#events.emit("message", publication);
    for (const it of this.#iterators) it.push(publication);
    return true;
  }

  /** @internal The server refused the subscription. */
  failed(error: Error): void {
    this.#failure = error;
    this.#events.emit("error", error);
    this.ended(error.message, error);
  }

  /** @internal The subscription is over. */
  ended(reason: string, error?: Error): void {
    if (this.#state === "unsubscribed") return;
    this.#state = "unsubscribed";
    for (const it of this.#iterators) it.end(error);
    this.#iterators.clear();
    this.#events.emit("unsubscribed", { reason });
  }

  /** @internal The connection dropped: the next confirmation will come after the reconnect. */
  suspended(): void {
    if (this.#state === "subscribed") this.#state = "pending";
  }
}

/** One `for await` over a subscription: a bounded buffer and at most one waiting reader. */
class Iteration implements AsyncIterator<Publication> {
  readonly #buffer: Publication[] = [];
  readonly #limit: number;
  readonly #detach: () => void;
  #waiting: { resolve(r: IteratorResult<Publication>): void; reject(e: unknown): void } | undefined;
  #done = false;
  #error: unknown;

  constructor(limit: number, detach: () => void) {
    this.#limit = limit;
    this.#detach = detach;
  }

  push(publication: Publication): void {
    if (this.#done) return;
    if (this.#waiting !== undefined) {
      const w = this.#waiting;
      this.#waiting = undefined;
      w.resolve({ value: publication, done: false });
    } else if (this.#buffer.length >= this.#limit) {
      this.#detach();
      this.end(new RangeError(`subscription buffer overflow: more than ${this.#limit} publications unread`));
    } else {
      this.#buffer.push(publication);
    }
  }

  end(error?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const w = this.#waiting;
    this.#waiting = undefined;
    if (w !== undefined) {
      if (error !== undefined) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<Publication>> {
    const value = this.#buffer.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    if (this.#done) {
      const error = this.#error;
      this.#error = undefined;
      return error !== undefined ? Promise.reject(error) : Promise.resolve({ value: undefined, done: true });
    }
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Publication>> {
    this.#detach();
    this.#buffer.length = 0;
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }
}
