// Reference oracle: build an OpenZeppelin StandardMerkleTree and print its root and proofs.
// stdin:  {"encoding": ["uint256", ...], "values": [[...], ...]}   (numbers as decimal strings)
// stdout: {"root": "0x..", "proofs": [["0x..", ...], ...]}   proofs[i] is the proof of values[i]
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const { encoding, values } = JSON.parse(input);
  const tree = StandardMerkleTree.of(values, encoding);
  const proofs = values.map((_, i) => tree.getProof(i));
  process.stdout.write(JSON.stringify({ root: tree.root, proofs }));
});
