// Compares schema.graphql with the last released schema
// (docs/schema/released.graphql) using @graphql-inspector/core, the engine
// of `graphql-inspector diff`. Prints every change with its criticality and
// exits 1 when a breaking change is not announced in
// docs/schema/announced-breaking-changes.txt (one `TYPE path` line per
// change, as printed below). See docs/schema/README.md.
import { readFileSync } from 'node:fs';
import { buildSchema } from 'graphql';
import { diff, CriticalityLevel } from '@graphql-inspector/core';

const [releasedPath, currentPath, announcedPath] = process.argv.slice(2);
if (!announcedPath) {
  console.error('usage: schema-diff.mjs RELEASED.graphql CURRENT.graphql ANNOUNCED.txt');
  process.exit(2);
}

const load = (path) => buildSchema(readFileSync(path, 'utf8'));
const announced = new Set(
  readFileSync(announcedPath, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#')),
);

const changes = await diff(load(releasedPath), load(currentPath));
const key = (change) => `${change.type} ${change.path ?? ''}`.trim();
const mark = {
  [CriticalityLevel.Breaking]: 'BREAKING ',
  [CriticalityLevel.Dangerous]: 'dangerous',
  [CriticalityLevel.NonBreaking]: 'safe     ',
};

let unannounced = 0;
const seen = new Set();
for (const change of changes) {
  const level = change.criticality.level;
  let note = '';
  if (level === CriticalityLevel.Breaking) {
    seen.add(key(change));
    if (announced.has(key(change))) {
      note = ' (announced)';
    } else {
      unannounced += 1;
      note = ' (NOT ANNOUNCED)';
    }
  }
  console.log(`${mark[level]} ${key(change)}: ${change.message}${note}`);
}
console.log(`schema diff: ${changes.length} change(s) since the released schema`);

for (const line of announced) {
  if (!seen.has(line)) {
    console.log(`note: announced breaking change \`${line}\` does not occur (any more)`);
  }
}
if (unannounced > 0) {
  console.error(
    `schema diff: ${unannounced} breaking change(s) not announced; either keep the ` +
      `schema compatible or add each \`TYPE path\` line above to ${announcedPath} ` +
      '(see docs/schema/README.md)',
  );
  process.exit(1);
}
