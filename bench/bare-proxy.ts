/**
 * The baseline: @fastify/http-proxy with its default options (Fastify's default logger,
 * off), in front of the same upstream and with the same path mapping as the gateway
 * (`/api/*` → `/*`). What the gateway costs on top of this is the price of the BFF.
 */
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';
import type { AddressInfo } from 'node:net';
import { fatal, send, serveParent } from './ipc.js';

const upstream = process.env.BENCH_UPSTREAM;
if (!upstream) fatal(new Error('BENCH_UPSTREAM is not set'));

const app = Fastify();
await app.register(httpProxy, { upstream: upstream!, prefix: '/api' });
serveParent({ onExit: () => app.close() });
try {
  await app.listen({ host: '127.0.0.1', port: 0 });
  send({ type: 'ready', port: (app.server.address() as AddressInfo).port });
} catch (err) {
  fatal(err);
}
