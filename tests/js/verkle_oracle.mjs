// Differential oracle for Verkle execution witnesses: verkle-cryptography-wasm (a wasm build of
// rust-verkle), verifyExecutionWitnessPreState(preStateRootHex, witnessJson).
//
//   node tests/js/verkle_oracle.mjs verify      stdin: JSON [{root, witness}, ...]
//        stdout: JSON ["true" | "false" | "throw", ...] (a throw is a Rust panic on malformed
//        input: it counts as invalid)
//   node tests/js/verkle_oracle.mjs serve       stdin: one JSON {root, witness} per line;
//        stdout: one result per line, as it goes (for property tests)
//   node tests/js/verkle_oracle.mjs bench SECS  stdin: as verify; verifies every witness in turn
//        for about SECS seconds (after one warm-up pass) on this one thread, stdout: JSON
//        {"witnesses": N, "seconds": S, "per_second": N/S, "results": [...]}
//
// Witnesses must be camelCase with numeric suffixes (the caller converts them).
import { createRequire } from 'node:module';

// the CommonJS build: the ESM build imports named exports of @ethereumjs/util that the
// version installed beside it only offers through its default export
const { loadVerkleCrypto } = createRequire(import.meta.url)('verkle-cryptography-wasm');

const verkle = await loadVerkleCrypto();

function run(root, json) {
  try {
    return verkle.verifyExecutionWitnessPreState(root, json) ? 'true' : 'false';
  } catch {
    return 'throw';
  }
}

async function readAll() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const cases = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  return cases.map((c) => [c.root, JSON.stringify(c.witness)]);
}

const mode = process.argv[2];
if (mode === 'serve') {
  const { createInterface } = await import('node:readline');
  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    process.stdout.write(run(c.root, JSON.stringify(c.witness)) + '\n');
  }
} else if (mode === 'verify') {
  const inputs = await readAll();
  process.stdout.write(JSON.stringify(inputs.map(([r, j]) => run(r, j))));
} else if (mode === 'bench') {
  const inputs = await readAll();
  const seconds = Number(process.argv[3] || '2');
  const results = inputs.map(([r, j]) => run(r, j)); // warm-up pass
  let n = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || n === 0) {
    for (const [r, j] of inputs) run(r, j);
    n += inputs.length;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  process.stdout.write(JSON.stringify({ witnesses: n, seconds: elapsed, per_second: n / elapsed, results }));
} else {
  process.stderr.write('usage: verkle_oracle.mjs verify | serve | bench SECONDS\n');
  process.exit(2);
}
