/** A typed event emitter: one handler failing does not keep the others, or the client, from
 * running. */
export interface Emitter<M> {
  on<E extends keyof M>(event: E, handler: (payload: M[E]) => void): () => void;
  off<E extends keyof M>(event: E, handler: (payload: M[E]) => void): void;
  emit<E extends keyof M>(event: E, payload: M[E]): void;
}

export function createEmitter<M>(): Emitter<M> {
  const handlers = new Map<keyof M, Set<(payload: never) => void>>();
  const off: Emitter<M>["off"] = (event, handler) => {
    handlers.get(event)?.delete(handler);
  };
  return {
    on(event, handler) {
      let set = handlers.get(event);
      if (!set) handlers.set(event, (set = new Set()));
      set.add(handler);
      return () => {
        off(event, handler);
      };
    },
    off,
    emit<E extends keyof M>(event: E, payload: M[E]) {
      // A copy: a handler may unsubscribe itself or others while the event is delivered.
      for (const handler of [...(handlers.get(event) ?? [])]) {
        try {
          (handler as (payload: M[E]) => void)(payload);
        } catch (err) {
          // Rethrown outside the socket's callback so it is reported, not swallowed.
          setTimeout(() => {
            throw err;
          });
        }
      }
    },
  };
}
