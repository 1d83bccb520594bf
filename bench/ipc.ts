/**
 * The benchmark's parent talks to each server process over the Node IPC channel: the child
 * says `ready` with its port, answers `stats` with its own CPU time and RSS (so the parent
 * measures the server process alone), and exits cleanly on `exit` (so `--cpu-prof` can
 * write its profile).
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

/** The V8 sampling profiler of this process, started and stopped on the parent's request (measured runs only). */
class Profiler {
  #session?: Session;

  #post<T>(method: string, params?: object): Promise<T> {
    return new Promise((resolve, reject) => this.#session!.post(method, params ?? {}, (err, res) => (err ? reject(err) : resolve(res as T))));
  }

  async start(intervalUs: number): Promise<void> {
    if (this.#session) throw new Error('the profiler is already running');
    this.#session = new Session();
    this.#session.connect();
    await this.#post('Profiler.enable');
    await this.#post('Profiler.setSamplingInterval', { interval: intervalUs });
    await this.#post('Profiler.start');
  }

  async stop(file: string): Promise<string> {
    if (!this.#session) throw new Error('the profiler is not running');
    const { profile } = await this.#post<{ profile: unknown }>('Profiler.stop');
    this.#session.disconnect();
    this.#session = undefined;
    writeFileSync(file, JSON.stringify(profile));
    return file;
  }
}

export interface ChildStats {
  /** process.cpuUsage() of the child: user + system, microseconds. */
  cpuUs: number;
  rssBytes: number;
  heapUsedBytes: number;
  /** Extra counters of the child (the upstream's request counts). */
  counters: Record<string, number>;
}

export type ToChild = { type: 'stats'; id: number } | { type: 'exit' } | { type: 'work'; id: number; kind: string; args?: unknown };
export type FromChild =
  | { type: 'ready'; port: number }
  | ({ type: 'stats'; id: number } & ChildStats)
  | { type: 'work'; id: number; result?: unknown; error?: string }
  | { type: 'fatal'; error: string };

/** In a child: answer the parent's messages. `counters` is read at each stats request. */
export function serveParent(opts: { counters?: () => Record<string, number>; work?: (kind: string, args: unknown) => Promise<unknown>; onExit?: () => Promise<void> } = {}): void {
  if (!process.send) throw new Error('this script is started by bench/run.ts (it needs an IPC channel)');
  const profiler = new Profiler();
  process.on('message', (raw) => {
    const msg = raw as ToChild;
    if (msg.type === 'stats') {
      const cpu = process.cpuUsage();
      const mem = process.memoryUsage();
      send({ type: 'stats', id: msg.id, cpuUs: cpu.user + cpu.system, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed, counters: opts.counters?.() ?? {} });
    } else if (msg.type === 'work') {
      const args = msg.args as { intervalUs?: number; file?: string } | undefined;
      const run =
        msg.kind === 'profile-start'
          ? profiler.start(args?.intervalUs ?? 500)
          : msg.kind === 'profile-stop'
            ? profiler.stop(args!.file!)
            : opts.work
              ? opts.work(msg.kind, msg.args)
              : Promise.reject(new Error('no work handler'));
      run.then(
        (result) => send({ type: 'work', id: msg.id, result }),
        (err: Error) => send({ type: 'work', id: msg.id, error: err.stack ?? String(err) }),
      );
    } else if (msg.type === 'exit') {
      const done = opts.onExit ? opts.onExit() : Promise.resolve();
      done.finally(() => process.exit(0));
    }
  });
  // The parent died: do not linger.
  process.on('disconnect', () => process.exit(0));
}

export function send(msg: FromChild): void {
  process.send!(msg);
}

/** Report a startup failure to the parent and exit 1. */
export function fatal(err: unknown): never {
  const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
  try {
    send({ type: 'fatal', error: text });
  } catch {
    /* no channel */
  }
  process.stderr.write(text + '\n');
  setTimeout(() => process.exit(1), 50);
  throw err;
}

/** In the parent: a handle on one server process. */
export class ChildHandle {
  #next = 1;
  readonly #waiting = new Map<number, (msg: FromChild) => void>();
  readonly ready: Promise<number>;
  readonly exited: Promise<number | null>;
  #stderr = '';

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.stderr?.on('data', (d: Buffer) => {
      this.#stderr = (this.#stderr + d.toString()).slice(-4000);
    });
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    this.ready = new Promise((resolve, reject) => {
      child.on('message', (raw) => {
        const msg = raw as FromChild;
        if (msg.type === 'ready') resolve(msg.port);
        else if (msg.type === 'fatal') reject(new Error(`${name} failed to start:\n${msg.error}`));
        else if ('id' in msg) {
          this.#waiting.get(msg.id)?.(msg);
          this.#waiting.delete(msg.id);
        }
      });
      void this.exited.then((code) => reject(new Error(`${name} exited (code ${code}) before it was ready\n${this.#stderr}`)));
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get stderr(): string {
    return this.#stderr;
  }

  #ask(msg: ToChild & { id: number }, timeoutMs: number): Promise<FromChild> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name} did not answer ${msg.type} in ${timeoutMs} ms\n${this.#stderr}`)), timeoutMs);
      this.#waiting.set(msg.id, (m) => {
        clearTimeout(timer);
        resolve(m);
      });
      this.child.send(msg);
    });
  }

  async stats(): Promise<ChildStats> {
    const m = await this.#ask({ type: 'stats', id: this.#next++ }, 10_000);
    if (m.type !== 'stats') throw new Error('unexpected answer');
    return m;
  }

  async work<T>(kind: string, args?: unknown, timeoutMs = 120_000): Promise<T> {
    const m = await this.#ask({ type: 'work', id: this.#next++, kind, args }, timeoutMs);
    if (m.type !== 'work') throw new Error('unexpected answer');
    if (m.error) throw new Error(`${this.name}: ${m.error}`);
    return m.result as T;
  }

  /** Asks the child to exit (profiles get written), kills it after a grace period. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    try {
      this.child.send({ type: 'exit' } satisfies ToChild);
    } catch {
      /* channel closed */
    }
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}
