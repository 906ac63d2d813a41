// Batch form of tests/js/oz_merkle.mjs (one node process for many trees; same library calls).
// stdin:  {"encoding": ["uint256", ...], "cases": [[[...values of leaf 0], ...], ...]}
// stdout: [{"root": "0x..", "proofs": [["0x..", ...], ...]}, ...]   one entry per case
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { encoding, cases } = JSON.parse(input);
  const out = cases.map((values) => {
    const tree = StandardMerkleTree.of(values, encoding);
    return { root: tree.root, proofs: values.map((_, i) => tree.getProof(i)) };
  });
  process.stdout.write(JSON.stringify(out));
});
