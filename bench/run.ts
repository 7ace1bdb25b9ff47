/**
 * `npm run bench`: every benchmark, one after another, each in its own
 * process (so one bench's memory and caches never colour the next), with
 * the S3 ones pointed at FLOE_S3_ENDPOINT when it is set. Each writes its own
 * report under bench/results/; this prints their tables as they finish.
 *
 *   npm run bench              all of them
 *   npm run bench -- log table a subset, by name
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ALL = ['store', 'log', 'table', 'format', 'multitable', 'mutate', 'replica'];
const here = path.dirname(fileURLToPath(import.meta.url));
const wanted = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ALL;
const unknown = wanted.filter((w) => !ALL.includes(w));
if (unknown.length > 0) {
  process.stderr.write(`unknown bench ${unknown.join(', ')}; choose from ${ALL.join(', ')}\n`);
  process.exit(2);
}
let failed = 0;
for (const name of wanted) {
  process.stdout.write(`\n===== bench/${name} =====\n`);
  const r = spawnSync(process.execPath, [path.join(here, `${name}.js`)], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    process.stdout.write(`bench/${name} exited with ${r.status ?? r.signal}\n`);
  }
}
process.exit(failed > 0 ? 1 : 0);
