// OpenZeppelin oracle for claim trees and multiproofs (one node process for many trees).
// stdin:  {"cases": [{"values": [[account, value], ...], "subsets": [[index, ...], ...],
//                     "checks": [{"leaves": [[account, value], ...], "proof": ["0x..", ...],
//                                 "proofFlags": [true, ...]}, ...]}, ...]}
// stdout: [{"root": "0x..", "proofs": [[...], ...],
//           "multi": [{"leaves": [index, ...], "proof": [...], "proofFlags": [...], "valid": true}, ...],
//           "checks": [true | false, ...]}, ...]
// Trees are StandardMerkleTree.of(values, ["address", "uint256"]); "leaves" of a multiproof are
// the positions in `values` of the leaves getMultiProof returns (in its order); a check is
// StandardMerkleTree.verifyMultiProof, false when it returns false or throws.
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

const ENCODING = ["address", "uint256"];
const key = (v) => `${v[0].toLowerCase()}:${BigInt(v[1])}`;

const verify = (root, multiproof) => {
  try {
    return StandardMerkleTree.verifyMultiProof(root, ENCODING, multiproof);
  } catch {
    return false;
  }
};

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { cases } = JSON.parse(input);
  const out = cases.map(({ values, subsets, checks }) => {
    const tree = StandardMerkleTree.of(values, ENCODING);
    const position = new Map(values.map((v, i) => [key(v), i]));
    const multi = subsets.map((indices) => {
      const mp = tree.getMultiProof(indices);
      return {
        leaves: mp.leaves.map((v) => position.get(key(v))),
        proof: mp.proof,
        proofFlags: mp.proofFlags,
        valid: verify(tree.root, mp),
      };
    });
    return {
      root: tree.root,
      proofs: values.map((_, i) => tree.getProof(i)),
      multi,
      checks: (checks || []).map((c) => verify(tree.root, c)),
    };
  });
  process.stdout.write(JSON.stringify(out));
});
