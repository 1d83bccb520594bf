import { createHook } from 'node:async_hooks';

let kept: object | undefined;

/**
 * Keeps one of process.nextTick's queue entries alive for the life of the process, so that
 * the hidden classes V8 built for those entries are never collected.
 *
 * Why: nextTick builds each entry with an object literal whose computed keys V8 defines
 * through a cache that goes from monomorphic straight to megamorphic the first time it
 * meets another hidden class, a collected one included. Nothing else holds the entry's
 * intermediate classes: after a few major collections while the process is idle (no tick
 * queued), they are gone, and the next tick turns that cache megamorphic for good. From
 * then on every nextTick (about 20 per proxied request) defines its four properties
 * through the runtime: about 4x the cost per tick on Node 20 (V8 11.3), 10-15 % more CPU
 * per request for the rest of the process's life. One live entry keeps the classes.
 */
export function keepTickObjectShape(): void {
  if (kept !== undefined) return;
  // The only way to see a queue entry is as the resource of the async hook that the
  // entry's creation announces; the hook lives for that one call.
  const hook = createHook({
    init(_asyncId, type, _triggerAsyncId, resource) {
      if (type === 'TickObject' && kept === undefined) kept = resource;
    },
  }).enable();
  try {
    process.nextTick(noop);
  } finally {
    hook.disable();
  }
}

function noop(): void {}
