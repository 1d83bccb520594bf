#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadRoutesFile, formatProblem } from './config/load.js';
import { createIdentity, metadataProblems, runServer } from './server.js';

const USAGE = `usage: bff-gateway [check] [--config routes.yaml]

  (no command)  start the gateway
  check         validate the config (and the provider's discovery document) and exit

The config path may also come from BFF_CONFIG; default ./routes.yaml.`;

async function main(): Promise<number> {
  const { values, positionals } = parseArgs({ options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const command = positionals[0] ?? 'start';
  if (!['start', 'check'].includes(command) || positionals.length > 1) {
    console.error(USAGE);
    return 2;
  }
  const file = values.config ?? process.env.BFF_CONFIG ?? 'routes.yaml';
  const result = await loadRoutesFile(file);
  if (!result.ok) {
    for (const p of result.problems) console.error(formatProblem(p));
    return 1;
  }
  if (command === 'check') {
    for (const w of result.warnings) console.error(formatProblem(w));
    const identity = await createIdentity(result.config);
    try {
      await identity.init();
    } catch (err) {
      const at = result.locate(['identity', result.config.identity.provider === 'entra' ? 'authority' : 'issuer']);
      console.error(`${file}:${at.line}:${at.col} cannot read the provider's metadata from ${identity.issuer}: ${(err as Error).message}`);
      return 1;
    }
    const problems = metadataProblems(identity, result.config, file, result.locate);
    for (const p of problems) console.error(formatProblem(p));
    await identity.close?.();
    if (problems.some((p) => p.severity === 'error')) return 1;
    console.log(`${file}: ok (${result.config.routes.length} routes)`);
    return 0;
  }
  await runServer(result.config, file, result.locate, result.warnings);
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: Error) => {
    console.error(`bff-gateway: ${err.message}`);
    process.exit(1);
  },
);
