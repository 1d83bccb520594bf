/**
 * Raw Redis access for the Entra tests: what the gateway wrote, byte for byte, without the
 * gateway's own store code in between. A minimal RESP client over one socket.
 */
import { createConnection, type Socket } from 'node:net';

type Reply = string | number | null | Reply[];

export class RawRedis {
  #buf = Buffer.alloc(0);
  #waiting: Array<(r: Reply | Error) => void> = [];

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      for (;;) {
        const parsed = parse(this.#buf, 0);
        if (!parsed) break;
        this.#buf = this.#buf.subarray(parsed.end);
        this.#waiting.shift()?.(parsed.value);
      }
    });
  }

  /** Connects to a redis:// URL; its path (/N) selects the database. */
  static async connect(url: string): Promise<RawRedis> {
    const u = new URL(url);
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = createConnection({ host: u.hostname, port: Number(u.port || 6379) }, () => resolve(s));
      s.once('error', reject);
    });
    const r = new RawRedis(socket);
    const db = u.pathname.replace(/^\//, '');
    if (db) await r.command('SELECT', db);
    return r;
  }

  command(...args: string[]): Promise<Reply> {
    const parts = [`*${args.length}\r\n`, ...args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`)];
    return new Promise((resolve, reject) => {
      this.#waiting.push((r) => (r instanceof Error ? reject(r) : resolve(r)));
      this.socket.write(parts.join(''));
    });
  }

  async get(key: string): Promise<string | null> {
    return (await this.command('GET', key)) as string | null;
  }

  async keys(pattern: string): Promise<string[]> {
    return (await this.command('KEYS', pattern)) as string[];
  }

  close(): void {
    this.socket.end();
  }
}

function parse(buf: Buffer, at: number): { value: Reply | Error; end: number } | undefined {
  const nl = buf.indexOf('\r\n', at);
  if (nl < 0) return undefined;
  const type = String.fromCharCode(buf[at]!);
  const line = buf.toString('utf8', at + 1, nl);
  switch (type) {
    case '+':
      return { value: line, end: nl + 2 };
    case '-':
      return { value: new Error(line), end: nl + 2 };
    case ':':
      return { value: Number(line), end: nl + 2 };
    case '$': {
      const len = Number(line);
      if (len < 0) return { value: null, end: nl + 2 };
      if (buf.length < nl + 2 + len + 2) return undefined;
      return { value: buf.toString('utf8', nl + 2, nl + 2 + len), end: nl + 2 + len + 2 };
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return { value: null, end: nl + 2 };
      const items: Reply[] = [];
      let end = nl + 2;
      for (let i = 0; i < n; i++) {
        const item = parse(buf, end);
        if (!item) return undefined;
        items.push(item.value as Reply);
        end = item.end;
      }
      return { value: items, end };
    }
    default:
      return { value: new Error(`unexpected reply ${type}`), end: buf.length };
  }
}

/** The shared Redis with a database of this test's own (flushed at the end). */
export function redisDatabase(base: string, db: number): string {
  const u = new URL(base);
  u.pathname = `/${db}`;
  return u.href.replace(/\/$/, '');
}
