// Reference oracle: build an OpenZeppelin StandardMerkleTree and print its root, proofs and multiproofs.
// stdin:  {"encoding": ["uint256", ...], "values": [[...], ...],    (numbers as decimal strings)
//          "proofs": true,                                           (optional, default true)
//          "multiproofs": [[i, j, ...], ...]}                        (optional: value indices)
// stdout: {"root": "0x..", "proofs": [["0x..", ...], ...],   proofs[i] is the proof of values[i] ([] if off)
//          "multiproofs": [{"order": [...], "proof": [...], "proofFlags": [...]}, ...],
//          "treeIndex": [...]}                                      treeIndex[i]: tree index of values[i]
//          `order` lists the requested value indices in the multiproof's leaf order (tree index
//          descending), i.e. the order `getMultiProof` returns its `leaves` in.
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { encoding, values, proofs: wantProofs = true, multiproofs = [] } = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, encoding);
  const proofs = wantProofs ? values.map((_, i) => tree.getProof(i)) : [];
  // value index -> tree index, from the tree's own dump (leaves are sorted when the tree is built)
  const treeIndex = tree.dump().values.map((v) => v.treeIndex);
  const multi = multiproofs.map((indices) => {
    const mp = tree.getMultiProof(indices);
    const order = [...indices].sort((a, b) => treeIndex[b] - treeIndex[a]);
    const same = order.every((i, k) => JSON.stringify(values[i]) === JSON.stringify(mp.leaves[k]));
    if (!same) throw new Error("multiproof leaf order differs from tree-index-descending order");
    return { order, proof: mp.proof, proofFlags: mp.proofFlags };
  });
  process.stdout.write(JSON.stringify({ root: tree.root, proofs, multiproofs: multi, treeIndex }));
});
