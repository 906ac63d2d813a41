// Reference check: OpenZeppelin's StandardMerkleTree.verify on each given (root, encoding, value, proof).
// stdin:  [{"root": "0x..", "encoding": ["address", "uint256"], "value": [...], "proof": ["0x..", ...]}, ...]
//         (numbers as decimal strings)
// stdout: [true | false, ...]
import { StandardMerkleTree } from "@openzeppelin/merkle-tree";

let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const checks = JSON.parse(input);
  const out = checks.map(({ root, encoding, value, proof }) => StandardMerkleTree.verify(root, encoding, value, proof));
  process.stdout.write(JSON.stringify(out));
});
