// Writes openapi.json, the OpenAPI 3.1 description of the HTTP contract, from its source
// src/app/openapi.ts (the same document the service serves at GET /openapi.json). A test
// fails when the file and the source differ, so run this after changing the contract.
//
//   npm run openapi
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OPENAPI_DOCUMENT } from '../src/app/openapi.ts';

const OUT = fileURLToPath(new URL('../openapi.json', import.meta.url));
writeFileSync(OUT, JSON.stringify(OPENAPI_DOCUMENT, null, 2) + '\n');
console.log(`wrote ${OUT}`);
