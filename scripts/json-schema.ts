// Writes docs/schema/*.schema.json from the zod record schemas (lib/data/schema.ts):
//   npx tsc -p tsconfig.json && node dist/scripts/json-schema.js
// test/data/schema.test.ts fails when the committed files are not what this writes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { JSON_SCHEMAS } from '../lib/data/schema.js';

const dir = fileURLToPath(new URL('../../docs/schema', import.meta.url));
mkdirSync(dir, { recursive: true });
for (const [name, schema] of Object.entries(JSON_SCHEMAS)) {
  writeFileSync(join(dir, name), JSON.stringify(schema(), null, 2) + '\n');
  console.log(`wrote ${join('docs/schema', name)}`);
}
