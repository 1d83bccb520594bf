import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const MODULE = resolve('dist/src/util/tick-shape.js');

/**
 * In a child process with V8's debug natives: warm nextTick up, let the process idle through
 * a few major collections with no tick queued, tick again, then print the state of
 * nextTick's property-definition caches (one per key of its queue-entry literal).
 */
function nextTickCachesAfterIdleCollections(keep: boolean): string[] {
  const script = `
    import { keepTickObjectShape } from ${JSON.stringify(pathToFileURL(MODULE).href)};
    if (${keep}) keepTickObjectShape();
    const burst = () => new Promise((done) => { let left = 20000; for (let i = 0; i < 20000; i++) process.nextTick(() => { if (--left === 0) done(); }); });
    const idle = () => new Promise((done) => setTimeout(done, 20));
    await burst();
    for (let i = 0; i < 6; i++) { await idle(); gc(); }
    await idle();
    await burst();
    await idle();
    %DebugPrint(process.nextTick);
  `;
  // A plain node: the test runner puts its preload (which wraps process.nextTick) into the
  // NODE_OPTIONS of every node child it sees spawned, so the child starts through env -u.
  const node = [process.execPath, '--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', script];
  const run = spawnSync('env', ['-u', 'NODE_OPTIONS', ...node], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`child failed (${run.status}): ${run.stderr}`);
  return [...run.stdout.matchAll(/slot #\d+ DefineKeyedOwnPropertyInLiteral (\w+)/g)].map((m) => m[1]!);
}

t.test('nextTick stays on its fast path after the process idles through major collections', (t) => {
  t.ok(existsSync(MODULE), 'npm test builds dist first');
  const kept = nextTickCachesAfterIdleCollections(true);
  t.equal(kept.length, 4, 'the four keys of the queue-entry literal each have a cache');
  t.same(kept, ['MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC', 'MONOMORPHIC'], 'no cache went megamorphic');
  t.end();
});

// The control: the scene above does reproduce the slow state on this Node. If this starts
// failing after a Node upgrade, V8 no longer loses the classes and keepTickObjectShape may go.
t.test('without a kept entry, the same idle collections leave nextTick megamorphic (this Node has the V8 behaviour)', (t) => {
  const lost = nextTickCachesAfterIdleCollections(false);
  t.equal(lost.length, 4);
  t.equal(lost[0], 'MONOMORPHIC', 'the first key is defined on the literal\'s own class, which never dies');
  t.same(lost.slice(1), ['MEGAMORPHIC', 'MEGAMORPHIC', 'MEGAMORPHIC'], 'the three keys defined on collected classes went megamorphic');
  t.end();
});
