#!/usr/bin/env node
// Launcher of the s3-stream-upload CLI. It runs the bundle dist/cli.mjs (`npm run build`,
// and `npm pack` builds it), which needs Node 20+. In a checkout without a build it falls back
// to the TypeScript source, which Node 22.18+ runs directly (Node never strips types of files
// under node_modules, hence the bundle for installed copies).
import { existsSync } from 'node:fs';

const bundle = new URL('../dist/cli.mjs', import.meta.url);
const entry = existsSync(bundle) ? bundle : new URL('../src/client/cli.ts', import.meta.url);
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
