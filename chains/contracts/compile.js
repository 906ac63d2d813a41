#!/usr/bin/env node
// Compile chains/contracts/**/*.sol with the npm `solc` (solc-js, standard JSON) and write
// chains/contracts/build/<Contract>.json = {"abi", "bytecode", "storageLayout"} for every
// contract defined in those files. `@openzeppelin/contracts/...` imports resolve from node_modules.
// Exit status is non-zero on any compiler error (all diagnostics go to stderr).
"use strict";

const fs = require("fs");
const path = require("path");

const HERE = __dirname;
const BUILD = path.join(HERE, "build");
const EVM_VERSION = "cancun"; // runs on anvil 1.7.1 (default hardfork: latest) and on every Cancun+ chain

function fail(message) {
  process.stderr.write(`compile.js: ${message}\n`);
  process.exit(1);
}

let solc;
try {
  solc = require("solc");
} catch (err) {
  fail(`npm package "solc" not found (${err.message}); run \`make setup\` (npm ci)`);
}

// node_modules folders from the contracts dir upwards (the repository root holds one).
function nodeModulesDirs() {
  const dirs = [];
  for (let dir = HERE; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "node_modules");
    if (fs.existsSync(candidate)) dirs.push(candidate);
    if (path.dirname(dir) === dir) break;
  }
  return dirs;
}

const MODULE_DIRS = nodeModulesDirs();

function findImports(importPath) {
  const candidates = [path.join(HERE, importPath), ...MODULE_DIRS.map((d) => path.join(d, importPath))];
  for (const file of candidates) {
    if (fs.existsSync(file)) return { contents: fs.readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${importPath} (looked in ${candidates.join(", ")})` };
}

// Source unit names are paths relative to this folder ("MarginSettlement.sol", "anchors/X.sol").
function solFiles(dir, prefix) {
  const out = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name !== "build") out.push(...solFiles(path.join(dir, entry.name), `${prefix}${entry.name}/`));
    else if (entry.isFile() && entry.name.endsWith(".sol")) out.push(`${prefix}${entry.name}`);
  }
  return out;
}

const files = solFiles(HERE, "").sort();
if (files.length === 0) fail(`no .sol files in ${HERE}`);

const sources = {};
const outputSelection = {};
for (const f of files) {
  sources[f] = { content: fs.readFileSync(path.join(HERE, f), "utf8") };
  outputSelection[f] = { "*": ["abi", "evm.bytecode.object", "storageLayout"] };
}

const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: EVM_VERSION,
    outputSelection,
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const diagnostics = output.errors || [];
// Warnings located in dependencies (node_modules) are counted, not printed; errors always are.
const fromDependency = (d) => d.sourceLocation && !Object.hasOwn(sources, d.sourceLocation.file);
let hidden = 0;
for (const d of diagnostics) {
  if (d.severity !== "error" && fromDependency(d)) hidden += 1;
  else process.stderr.write(`${d.formattedMessage || d.message}\n`);
}
if (hidden > 0) process.stderr.write(`compile.js: ${hidden} warning(s) in dependencies not shown\n`);
const errors = diagnostics.filter((d) => d.severity === "error");
if (errors.length > 0) fail(`${errors.length} compiler error(s), nothing written`);

fs.mkdirSync(BUILD, { recursive: true });
let written = 0;
for (const f of files) {
  const contracts = (output.contracts || {})[f] || {};
  for (const [name, c] of Object.entries(contracts)) {
    const bytecode = c.evm.bytecode.object;
    if (!bytecode) continue; // abstract contracts and interfaces have no creation code
    const artifact = { abi: c.abi, bytecode: `0x${bytecode}`, storageLayout: c.storageLayout };
    const target = path.join(BUILD, `${name}.json`);
    const tmp = `${target}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(artifact, null, 1) + "\n");
    fs.renameSync(tmp, target);
    written += 1;
  }
}
if (written === 0) fail("no deployable contract in the sources");
process.stdout.write(`compiled ${written} contract(s) with solc ${solc.version()} (evm ${EVM_VERSION}) -> ${path.relative(process.cwd(), BUILD) || BUILD}\n`);
