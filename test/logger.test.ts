import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { BatchedLines, accessLogWriter, createLogger } from '../src/logger.js';

const LOGGER = resolve('dist/src/logger.js');

async function until(check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}

t.test('a lone log line reaches the file without more lines behind it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bff-log-'));
  const file = join(dir, 'out.log');
  const fd = openSync(file, 'w');
  const dest = new BatchedLines(fd);
  t.teardown(() => {
    dest.close();
    closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  });
  const logger = createLogger({ level: 'info', pretty: false }, dest);
  logger.info({ path: '/api/a' }, 'request');
  t.ok(await until(() => readFileSync(file, 'utf8').includes('"path":"/api/a"')), 'the line is written though far less than the batch size waits');
  for (let i = 0; i < 500; i++) logger.info({ n: i }, 'request');
  t.ok(await until(() => readFileSync(file, 'utf8').trim().split('\n').length === 501), 'every line of a burst arrives, in batches');
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { n?: number });
  t.same(lines.slice(1).map((l) => l.n), [...Array(500).keys()], 'in order, none lost or torn');
});

for (const ending of ['process.exit(0)', 'throw new Error("crash")']) {
  t.test(`every line logged before ${ending.startsWith('throw') ? 'a crash' : 'process.exit'} reaches standard output`, async (t) => {
    const script = `
      const { createLogger } = await import(${JSON.stringify(LOGGER)});
      const logger = createLogger({ level: 'info', pretty: false });
      for (let i = 0; i < 2000; i++) logger.info({ n: i }, 'request');
      ${ending};`;
    const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    const lines = run.stdout.trim().split('\n').filter(Boolean);
    t.equal(lines.length, 2000, 'all 2,000 lines, none left in the batch');
    t.equal((JSON.parse(lines.at(-1)!) as { n: number }).n, 1999);
    if (ending.startsWith('throw')) t.match(run.stderr, 'crash', 'the crash itself is reported');
  });
}

t.test('the access line is the line pino writes for the same fields, and none above info', async (t) => {
  const lines: string[] = [];
  const capture = { write: (line: string) => void lines.push(line) };
  const logger = createLogger({ level: 'info', pretty: false }, capture);
  const fields = { method: 'GET', path: '/api/a"b\\c\u2028', route: 'api', status: 200, ms: 3 };
  logger.child({ reqId: 'req-1' }).info(fields, 'request');
  accessLogWriter(logger)!('req-1', fields.method, `${fields.path}?code=secret&state=x`, fields.route, fields.status, fields.ms);
  t.equal(lines.length, 2);
  const [viaPino, ours] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.ok(lines[1]!.endsWith('}\n'), 'one line');
  t.same(Object.keys(ours!), Object.keys(viaPino!), 'same fields in the same order');
  t.same({ ...ours, time: 0 }, { ...viaPino, time: 0 }, 'the same values; the query string is left out');
  t.ok(Math.abs(Number(ours!.time) - Number(viaPino!.time)) < 1000, 'epoch milliseconds, like pino');
  t.equal(accessLogWriter(createLogger({ level: 'warn', pretty: false }, capture)), undefined);
});
