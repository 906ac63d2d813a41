/*
 * spr.h - the state-proof relayer's native core, and its whole public interface.
 *
 * A small interface over byte buffers: every function takes pointers and lengths, returns an
 * integer status (SPR_OK = 0, SPR_ABSENT = 1, negative = error) and allocates nothing (the
 * Verkle verifiers excepted: see their section). spr_strerror() turns a status into a static
 * message. Every function is reentrant and thread-safe (no global state).
 *
 *  - keccak-256 as used by Ethereum (original Keccak padding 0x01, not FIPS-202 SHA3's 0x06).
 *  - strict RLP (Yellow Paper, appendix B): canonical encodings only.
 *  - Merkle-Patricia proof verification (Yellow Paper, appendix D; EIP-1186 proofs),
 *    inclusion and exclusion, one proof or a whole eth_getProof snapshot at once.
 *  - an OpenZeppelin StandardMerkleTree-compatible Merkle tree (@openzeppelin/merkle-tree):
 *    leaves, the tree, single proofs and multiproofs read from it, proof checking.
 *  - Verkle (EIP-6800) execution-witness verification over Banderwagon (section at the end).
 *
 * What is public: exactly the functions declared here, each marked SPR_API, and the #define
 * constants. They are what the Python binding (native/__init__.py, native/verkle.py), the
 * benchmarks and the tests call; nothing else is. The library is built with
 * -fvisibility=hidden, so only SPR_API functions are exported (tests/native/test_interface.py
 * compares the built module's dynamic symbols with this header); the helpers shared between
 * the sources (spr_internal.h, verkle_internal.h) stay hidden, for the fuzz harnesses and the
 * memcheck driver to call by compiling the sources in native/src themselves. The cffi
 * declarations are generated from this file (native/build_ffi.py), so a declaration here must
 * stay within what cffi's cdef parses: plain prototypes, typedef'd structs and integer
 * #define constants.
 *
 * Versions: SPR_VERSION (below) and spr_version(); the binding refuses to import a library
 * whose major differs from, or whose minor is below, the version it was written for.
 */
#ifndef SPR_H
#define SPR_H

#include <stddef.h>
#include <stdint.h>

/* Marks a function of the public interface: exported from the library built with
   -fvisibility=hidden (everything without it, all of spr_internal.h and verkle_internal.h,
   stays inside). */
#if defined(__GNUC__) || defined(__clang__)
#define SPR_API __attribute__((visibility("default")))
#else
#define SPR_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ---------------------------------------------------------------------- */
#define SPR_OK 0                    /* success; for proofs: the key is present (inclusion) */
#define SPR_ABSENT 1                /* valid exclusion proof: the key is proven absent */
#define SPR_ERR_ARG (-1)            /* bad argument (null pointer, wrong length, inconsistent sizes) */
#define SPR_ERR_BUFFER (-2)         /* caller's output buffer too small */
#define SPR_ERR_RLP_TRUNCATED (-10) /* RLP: an item's length runs past its enclosing buffer/list */
#define SPR_ERR_RLP_NONCANONICAL (-11) /* RLP: non-canonical encoding of a length or a byte */
#define SPR_ERR_RLP_TRAILING (-12)  /* RLP: bytes after the top-level item */
#define SPR_ERR_RLP_EMPTY (-13)     /* RLP: empty input */
#define SPR_ERR_HASH_MISMATCH (-20) /* MPT: a proof node's keccak differs from the reference to it */
#define SPR_ERR_MISSING_NODE (-21)  /* MPT: a node is referenced by hash but the proof has no more nodes */
#define SPR_ERR_TRAILING_NODES (-22) /* MPT: proof nodes left over after the walk ended */
#define SPR_ERR_TOO_DEEP (-23)      /* MPT: more nodes than a path can have (depth > SPR_MPT_MAX_DEPTH) */
#define SPR_ERR_MALFORMED_NODE (-24) /* MPT: valid RLP but not a canonical trie node */
#define SPR_ERR_BAD_VALUE (-25)     /* MPT: the proven value is not a canonical account / storage value */
#define SPR_ERR_MULTIPROOF (-30)    /* Merkle: multiproof shape invalid (lengths, or hashes missing/unused) */

/* ---- limits ------------------------------------------------------------------------------ */
#define SPR_HASH_LEN 32
#define SPR_MPT_MAX_KEY_LEN 32      /* keys (paths) of at most 32 bytes = 64 nibbles */
#define SPR_MPT_MAX_DEPTH 64        /* deepest node on a path; depth 0 is the root node, so a
                                       path visits at most SPR_MPT_MAX_DEPTH + 1 nodes */
#define SPR_MERKLE_MAX_LEAVES 0x40000000u /* 2^30 leaves */

/* ---- version ------------------------------------------------------------------------------ */
/* The interface's version, SPR_VERSION = major * 10000 + minor * 100 + patch. A binding written
   for version M.m.p works with a library of version M.n.q when n >= m: the major changes when
   a function is removed or changes its signature or meaning, the minor when one is added, the
   patch for fixes that change no interface. */
#define SPR_VERSION_MAJOR 1
#define SPR_VERSION_MINOR 0
#define SPR_VERSION_PATCH 0
#define SPR_VERSION (SPR_VERSION_MAJOR * 10000 + SPR_VERSION_MINOR * 100 + SPR_VERSION_PATCH)

/* SPR_VERSION of the spr.h the library was compiled from (native/__init__.py checks it at
   import: a binding newer than its compiled library fails with a clear ImportError). */
SPR_API int spr_version(void);

/* Message for a status code; never NULL; static storage. */
SPR_API const char *spr_strerror(int status);

/* ---- keccak-256 -------------------------------------------------------------------------- */
/* out = keccak256(data[0..len)). data may be NULL when len == 0. */
SPR_API int spr_keccak256(const uint8_t *data, size_t len, uint8_t out[32]);

/* out[32i .. 32i + 32) = keccak256 of message i, for n messages back to back in data (lengths
   in lens): eight at a time in AVX-512 lanes when the CPU has it (a group of eight costs the
   permutations of its longest message), one by one otherwise. */
SPR_API int spr_keccak256_many(const uint8_t *data, const size_t *lens, size_t n, uint8_t *out);

/* ---- RLP (Yellow Paper, appendix B) ------------------------------------------------------ */
/* One decoded item in pre-order. For a string, [offset, offset+length) is its payload inside the
   input; for a list, the payload of its encoding and `count` is the number of direct children.
   `parent` is the index of the enclosing list, SIZE_MAX for the top-level item. */
typedef struct {
    size_t offset;
    size_t length;
    size_t count;
    size_t parent;
    int is_list;
} spr_rlp_item;

/* Strictly decode exactly one RLP item spanning data[0..len). Writes the items in pre-order to
   items[0..*n_items). Any input decodes to at most `len` items, so max_items = len always
   suffices; fewer slots than needed give SPR_ERR_BUFFER. Errors: SPR_ERR_RLP_* (see above).
   Iterative: nesting depth costs no stack. */
SPR_API int spr_rlp_decode(const uint8_t *data, size_t len, spr_rlp_item *items, size_t max_items,
                           size_t *n_items);

/* ---- Merkle-Patricia proofs (Yellow Paper, appendix D; EIP-1186) ------------------------- */
/* A proof is n_nodes RLP-encoded trie nodes, root first, concatenated in `nodes` (nodes_len
   bytes in total, node i being node_lens[i] bytes long; the lengths must sum to nodes_len).
   Only nodes referenced by hash are in the proof; nodes whose RLP is shorter than 32 bytes are
   embedded in their parent, as eth_getProof returns them.

   spr_mpt_verify walks from `root` along the nibbles of key[0..key_len) (key_len <= 32; for the
   state and storage tries the key is keccak(address) / keccak(slot)).
   Returns SPR_OK with the value at nodes[*value_off .. *value_off + *value_len) (inclusion),
   SPR_ABSENT for a valid exclusion proof (empty branch slot, diverging leaf or extension path,
   or the empty-trie root keccak(rlp("")) with an empty proof or with the empty trie's root
   node 0x80 as the only node, as anvil and Hardhat return it), or an error:
   SPR_ERR_RLP_*, SPR_ERR_HASH_MISMATCH, SPR_ERR_MISSING_NODE, SPR_ERR_TRAILING_NODES,
   SPR_ERR_TOO_DEEP, SPR_ERR_MALFORMED_NODE, SPR_ERR_ARG. */
SPR_API int spr_mpt_verify(const uint8_t root[32], const uint8_t *key, size_t key_len,
                           const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                           size_t n_nodes, size_t *value_off, size_t *value_len);

/* Account state (Yellow Paper 4.1): nonce and balance as 32-byte big-endian integers. */
typedef struct {
    uint8_t nonce[32];
    uint8_t balance[32];
    uint8_t storage_hash[32];
    uint8_t code_hash[32];
} spr_account;

/* Account proof against a stateRoot, along keccak(address). SPR_OK fills *account; SPR_ABSENT
   (account proven absent) leaves it zeroed. The value must be a canonical
   rlp([nonce, balance, storageRoot, codeHash]) or SPR_ERR_BAD_VALUE. */
SPR_API int spr_verify_account(const uint8_t state_root[32], const uint8_t address[20],
                               const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                               size_t n_nodes, spr_account *account);

/* Storage proof against a storageHash, along keccak(slot). value_out: 32-byte big-endian word,
   zero when SPR_ABSENT. The leaf value must be a canonical RLP integer of at most 32 bytes, or
   SPR_ERR_BAD_VALUE. A leaf holding rlp(0) = 0x80 (a slot set back to zero that the node
   kept as a leaf instead of deleting it, as anvil does) is SPR_OK with a zero word. */
SPR_API int spr_verify_storage(const uint8_t storage_hash[32], const uint8_t slot[32],
                               const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                               size_t n_nodes, uint8_t value_out[32]);

/* ---- batch: one snapshot (one account, many storage slots) ------------------------------ */
/* Work counters of one spr_verify_snapshot call (may be NULL). */
typedef struct {
    uint64_t hashed_nodes; /* keccak-256 calls made on proof nodes */
    uint64_t hashed_bytes; /* bytes hashed by those calls */
    uint64_t cached_nodes; /* node references satisfied from the verified-node cache */
} spr_snapshot_stats;

/* Bytes of scratch with which spr_verify_snapshot pre-hashes every distinct node of n_nodes
   proof nodes (account plus storage proofs) and caches them all: the cache (at most 48 MiB)
   plus 16 to 24 bytes per node. Pre-hashing applies up to 2^20 nodes. */
SPR_API size_t spr_snapshot_scratch_size(size_t n_nodes);

/* Verify one EIP-1186 eth_getProof result: the account proof of `address` against
   `state_root`, then n_slots storage proofs against the proven account's storageHash (the
   empty-trie root if the account is proven absent, so its storage proofs must be empty or
   the lone node 0x80, as spr_mpt_verify).

   Each distinct proof node is hashed once: a node referenced by hash H is accepted without
   hashing when it is byte-identical (memcmp) to a node already hashed to H in this call; a
   branch node already checked as canonical in this call is not checked again (only the
   headers up to the child on the key's path are read). With scratch_len of at least
   spr_snapshot_scratch_size(account_n_nodes + storage_n_nodes), every distinct node (by
   content) is hashed before the walks, eight at a time in AVX-512 lanes where the CPU has
   them, together with the trie paths keccak(address) and keccak(slot); the results are the
   same, only faster.
   The cache of verified nodes lives in `scratch` (scratch_len bytes, 8-byte aligned, cleared by
   this function; size it with spr_snapshot_scratch_size; any size works, 0 disables the cache,
   a full cache only means more hashing). Nothing is allocated.

   account proof: account_n_nodes nodes in account_nodes, lengths in account_node_lens (as
                  spr_mpt_verify).
   slots:         n_slots 32-byte storage keys, back to back.
   storage proofs: all storage proofs' nodes back to back in storage_nodes (storage_n_nodes
                  nodes, lengths in storage_node_lens); proof i is the next proof_n_nodes[i] of
                  them. The counts must sum to storage_n_nodes and the lengths to
                  storage_nodes_len.
   account:       out; filled when the return value is SPR_OK, zero otherwise.
   values:        out, n_slots * 32 bytes: slot i's value as a 32-byte big-endian word, zero
                  when absent or rejected.
   statuses:      out, n_slots ints: SPR_OK (present), SPR_ABSENT (proven absent, value 0) or
                  the error rejecting storage proof i (as spr_verify_storage). If the account
                  proof is rejected, every status is the account proof's error.

   Returns the account proof's status: SPR_OK (present), SPR_ABSENT, or its error (as
   spr_verify_account); SPR_ERR_ARG for bad arguments (outputs then unspecified). A snapshot is
   sound only if the return value and every status are >= 0. */
SPR_API int spr_verify_snapshot(const uint8_t state_root[32], const uint8_t address[20],
                                const uint8_t *account_nodes, size_t account_nodes_len,
                                const size_t *account_node_lens, size_t account_n_nodes,
                                const uint8_t *slots, size_t n_slots, const uint8_t *storage_nodes,
                                size_t storage_nodes_len, const size_t *storage_node_lens,
                                size_t storage_n_nodes, const size_t *proof_n_nodes, void *scratch,
                                size_t scratch_len, spr_account *account, uint8_t *values,
                                int *statuses, spr_snapshot_stats *stats);

/* spr_verify_snapshot with every node in one buffer: the account proof's account_n_nodes nodes
   first, then the storage proofs' (n_nodes in all, lengths in node_lens, summing to nodes_len).
   out: 128 + 32 * n_slots bytes: the account (nonce, balance, storageHash, codeHash as 32-byte
   words; zero unless the return value is SPR_OK), then each slot's value as a 32-byte
   big-endian word. Other arguments and the return value as spr_verify_snapshot. */
SPR_API int spr_verify_snapshot_packed(const uint8_t state_root[32], const uint8_t address[20],
                                       const uint8_t *nodes, size_t nodes_len,
                                       const size_t *node_lens, size_t n_nodes,
                                       size_t account_n_nodes, const uint8_t *slots,
                                       size_t n_slots, const size_t *proof_n_nodes, void *scratch,
                                       size_t scratch_len, uint8_t *out, int *statuses,
                                       spr_snapshot_stats *stats);

/* ---- OpenZeppelin StandardMerkleTree (@openzeppelin/merkle-tree 1.x) --------------------- */
/* out = keccak256(keccak256(data)): the standard leaf hash of ABI-encoded values. */
SPR_API int spr_merkle_leaf(const uint8_t *data, size_t len, uint8_t out[32]);

/* out = keccak256(sort(a, b)): commutative pair hash (OpenZeppelin MerkleProof). */
SPR_API int spr_merkle_hash_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[32]);

/* Bulk leaves: n_leaves ABI encodings of `stride` bytes each, back to back in
   encoded[0 .. n_leaves * stride) (a Claim, abi.encode of two static words, is 64 bytes);
   leaves[32i .. 32i + 32) = keccak256(keccak256(encoding i)), as spr_merkle_leaf.
   leaves: n_leaves * 32 bytes out. On CPUs with AVX-512F, eight leaves are hashed at once
   (eight keccak-f[1600] states in the lanes of 512-bit registers); the results are the same. */
SPR_API int spr_merkle_leaves(const uint8_t *encoded, size_t n_leaves, size_t stride,
                              uint8_t *leaves);

/* Bytes of scratch (8-byte aligned) that spr_merkle_build_tree needs: 2 * n * 16 on LP64;
   0 when n is 0 or above SPR_MERKLE_MAX_LEAVES. */
SPR_API size_t spr_merkle_scratch_size(size_t n_leaves);

/* Build the tree over n_leaves 32-byte leaf hashes exactly as StandardMerkleTree.of does:
   leaves sorted by hash (stable), a complete binary tree in an array of 2n-1 nodes with the
   children of tree[i] at 2i+1 and 2i+2, sorted leaves placed at the end in reverse order.
   tree:      (2n-1)*32 bytes out (tree_len at least that); tree[0..32) is the root.
   positions: n out: positions[i] is the tree index of the caller's leaves[i]; its proof is
              then read with spr_merkle_tree_proof.
   scratch:   scratch_len bytes, at least spr_merkle_scratch_size(n), 8-byte aligned.
   Sorting is a radix sort on the hashes' first 8 bytes (ties broken by the full hash, then
   the caller's index), O(n) for distinct leaves. SPR_ERR_BUFFER when tree_len or
   scratch_len is too small; SPR_ERR_ARG for NULL pointers, misaligned scratch or n_leaves 0
   or above SPR_MERKLE_MAX_LEAVES. */
SPR_API int spr_merkle_build_tree(const uint8_t *leaves, size_t n_leaves, uint8_t *tree,
                                  size_t tree_len, size_t *positions, void *scratch,
                                  size_t scratch_len);

/* The proof of the leaf at tree index `position` (n_leaves - 1 <= position < 2n - 1) of a tree
   built by spr_merkle_build_tree: sibling hashes from the leaf up, 32 bytes each, into out.
   Returns their count (at most 64 for any n), SPR_ERR_BUFFER when out_len is too small. */
SPR_API int spr_merkle_tree_proof(const uint8_t *tree, size_t n_leaves, size_t position,
                                  uint8_t *out, size_t out_len);

/* Leaves of n Claims (DESIGN section 3: Claim = (address account, uint256 value)):
   accounts n 20-byte addresses back to back, values n 32-byte big-endian words back to back.
   leaves[32i .. 32i + 32) = keccak256(keccak256(abi.encode(account i, value i))), the 64-byte
   encoding 12 zero bytes | account | value, as spr_merkle_leaves over those encodings (eight at
   a time in AVX-512 lanes). leaves: n * 32 bytes out. SPR_ERR_ARG for NULL pointers (accounts
   and values may be NULL when n is 0) or n above SPR_MERKLE_MAX_LEAVES. */
SPR_API int spr_merkle_claim_leaves(const uint8_t *accounts, const uint8_t *values, size_t n,
                                    uint8_t *leaves);

/* OpenZeppelin multiproof (core getMultiProof of @openzeppelin/merkle-tree 1.x, as
   StandardMerkleTree.getMultiProof uses it) of the caller's leaves indices[0..n_indices) of a
   tree built by spr_merkle_build_tree (tree: (2n-1)*32 bytes, positions: its n tree indices).
   order:   n_indices out: the caller indices in the multiproof's leaf order (tree index
            descending, which is leaf hash ascending).
   proof:   proof_cap 32-byte hashes out, *n_proof written; at most max(n - n_indices, 1) are
            needed (the proof and the leaves are the leaves of a subtree with
            n_indices + n_proof - 1 <= n - 1 inner nodes).
   flags:   flags_cap bytes out (0 or 1), *n_flags = n_indices + *n_proof - 1 written (0 when
            n_indices is 0); at most n - 1 are needed.
   scratch: n_indices size_t (the queue of the algorithm).
   n_indices == 0 is allowed, as in OpenZeppelin: the proof is the root alone, no flags.
   O(k log k + k log n) for k = n_indices. SPR_ERR_ARG for NULL pointers, an index >= n, the
   same index twice or n_indices > n; SPR_ERR_BUFFER when proof_cap or flags_cap is too small. */
SPR_API int spr_merkle_multiproof(const uint8_t *tree, size_t n_leaves, const size_t *positions,
                                  const size_t *indices, size_t n_indices, size_t *order,
                                  uint8_t *proof, size_t proof_cap, size_t *n_proof, uint8_t *flags,
                                  size_t flags_cap, size_t *n_flags, size_t *scratch);

/* The root a multiproof leads to (OpenZeppelin MerkleProof.processMultiProof and the JS
   library's processMultiProof): n_leaves 32-byte leaf hashes in the multiproof's order,
   n_proof 32-byte proof hashes, n_flags flags (bytes, 0 or 1).
   hashes: 32 * n_flags bytes of scratch. root_out: 32 bytes out (zero unless SPR_OK).
   SPR_ERR_MULTIPROOF unless n_flags == n_leaves + n_proof - 1, every step finds a leaf or
   hash to take, and the proof is used exactly (no flags: the root is the lone leaf, or the
   lone proof hash when there is no leaf); SPR_ERR_ARG for NULL pointers or a flag byte
   other than 0 and 1. */
SPR_API int spr_merkle_process_multiproof(const uint8_t *leaves, size_t n_leaves,
                                          const uint8_t *proof, size_t n_proof,
                                          const uint8_t *flags, size_t n_flags, uint8_t *hashes,
                                          uint8_t root_out[32]);

/* Fold a proof: root_out = hash_pair(...hash_pair(leaf, proof[0])..., proof[n-1]). */
SPR_API int spr_merkle_process_proof(const uint8_t leaf[32], const uint8_t *proof, size_t n_proof,
                                     uint8_t root_out[32]);

/* ---- Verkle state proofs (EIP-6800 execution witnesses; Banderwagon IPA multiproofs) -------
 * Sources: EIP-6800; the Verkle multiproof and IPA as specified by crate-crypto/verkle-spec and
 * implemented in go-ipa / rust-verkle (transcript labels "multiproof", "ipa", challenges over
 * SHA-256); Banderwagon (the quotient of Bandersnatch by its 2-torsion point (0, -1)).
 * Encodings: a compressed point is 32 bytes big-endian (x, or -x when y is not
 * lexicographically largest); an uncompressed point is x || y, 32 bytes little-endian each; a
 * scalar is 32 bytes little-endian. Decoding is strict: a coordinate not below p, a scalar not
 * below r, a point off the curve or outside the subgroup (1 + 5x^2 not a square) is rejected.
 * Unlike the functions above, the Verkle verifiers allocate working memory (malloc), freed
 * before they return; SPR_ERR_VERKLE_NOMEM when that fails. */
#define SPR_ERR_VERKLE_ENCODING (-40)     /* malformed witness or proof layout (counts, flags,
                                             depth / extension byte, duplicate keys, commitments
                                             that do not match the proof's paths) */
#define SPR_ERR_VERKLE_NONCANONICAL (-41) /* a field element >= p or a scalar >= r */
#define SPR_ERR_VERKLE_NOT_ON_CURVE (-42) /* a point not on the curve or not in Banderwagon */
#define SPR_ERR_VERKLE_INCONSISTENT (-43) /* claims contradict the proof's hints (a value for a
                                             key proven absent, an unused or ambiguous other stem,
                                             two different openings of one slot) */
#define SPR_ERR_VERKLE_PROOF_MISMATCH (-44) /* the multiproof does not open the commitments
                                               (rooted at the given pre-state root) to the
                                               claimed values: wrong root, value or proof */
#define SPR_ERR_VERKLE_LIMIT (-45)        /* more keys than SPR_VERKLE_MAX_KEYS or commitments
                                             than SPR_VERKLE_MAX_COMMITMENTS */
#define SPR_ERR_VERKLE_NOMEM (-46)        /* out of memory */

#define SPR_VERKLE_MAX_KEYS 16384         /* (stem, suffix) keys in one witness */
#define SPR_VERKLE_MAX_COMMITMENTS 65536  /* commitmentsByPath entries (each costs two square
                                             roots to decode: this bounds the work, about 2 s) */
#define SPR_VERKLE_PROOF_LEN 576          /* D || L[8] || R[8] || a (a little-endian) */
#define SPR_VERKLE_KEY_RECORD_LEN 65      /* stem[31] || suffix || present flag || value[32] */

/* Decode a compressed point into its uncompressed form (y lexicographically largest). */
SPR_API int spr_banderwagon_decode(const uint8_t in[32], uint8_t out[64]);
/* Compressed encoding of an uncompressed point (checked to be on the curve: else
   SPR_ERR_VERKLE_NOT_ON_CURVE; coordinates must be canonical). */
SPR_API int spr_banderwagon_encode(const uint8_t in[64], uint8_t out[32]);
/* out = a + b, uncompressed in and out (inputs checked on the curve). */
SPR_API int spr_banderwagon_add(const uint8_t a[64], const uint8_t b[64], uint8_t out[64]);
/* out = scalar * p (scalar < r, little-endian). */
SPR_API int spr_banderwagon_mul(const uint8_t p[64], const uint8_t scalar[32], uint8_t out[64]);
/* map_to_field(P) = x / y in Fp, reduced into Fr, 32 bytes little-endian ("hash_commitment"). */
SPR_API int spr_banderwagon_map_to_field(const uint8_t p[64], uint8_t out[32]);

/* Pedersen vector commitment sum_i s_i * G_i over the CRS (G_0..G_255 derived from the seed
   "eth_verkle_oct_2021"), n <= 256 scalars (32 bytes LE each, < r). out: uncompressed. */
SPR_API int spr_verkle_commit(const uint8_t *scalars, size_t n, uint8_t out[64]);

/* EIP-6800 tree key: the first 31 bytes of map_to_field(commit(2 + 256 * 64, address[0:16],
   address[16:32], tree_index[0:16], tree_index[16:32])) (16-byte halves read little-endian),
   then sub_index. address: 32 bytes (an address left-padded with zeros); tree_index: 32 bytes
   little-endian. */
SPR_API int spr_verkle_tree_key(const uint8_t address[32], const uint8_t tree_index[32],
                                uint8_t sub_index, uint8_t out[32]);

/* Replay a transcript script and return its last challenge (32 bytes LE). ops: records
   kind(1) || label_len(1) || label || payload, kind 1 = new (first record only), 2 =
   domain_sep, 3 = append_scalar (32-byte LE payload, < r), 4 = append_point (32-byte
   compressed payload), 5 = challenge. SPR_ERR_VERKLE_ENCODING for a malformed script. */
SPR_API int spr_verkle_transcript(const uint8_t *ops, size_t ops_len, uint8_t out[32]);

/* IPA opening check: commitment (compressed) opens to `output` at `input` (both 32-byte LE
   scalars), proof = L[8] || R[8] || a (544 bytes, a little-endian), transcript label. SPR_OK or
   SPR_ERR_VERKLE_PROOF_MISMATCH (or a decoding error). */
SPR_API int spr_verkle_ipa_verify(const uint8_t *label, size_t label_len,
                                  const uint8_t commitment[32], const uint8_t input[32],
                                  const uint8_t output[32], const uint8_t proof[544]);

/* Multiproof check of n queries (commitment i compressed at commitments[32i], opened at domain
   point zs[i] in 0..255 to ys[32i] (LE scalar)), proof of SPR_VERKLE_PROOF_LEN bytes,
   transcript label (the execution witness uses "vt"). */
SPR_API int spr_verkle_multiproof_verify(const uint8_t *label, size_t label_len,
                                         const uint8_t *commitments, const uint8_t *zs,
                                         const uint8_t *ys, size_t n, const uint8_t proof[576]);

/* Counters of one spr_verkle_verify_witness call (may be NULL). */
typedef struct {
    uint64_t n_keys;
    uint64_t n_commitments; /* commitments opened, the root included */
    uint64_t n_queries;     /* openings checked by the multiproof */
    uint64_t total_ns;      /* wall time of the call */
    uint64_t msm_ns;        /* of which multi-scalar multiplications */
    uint64_t decode_ns;     /* of which point decompression */
} spr_verkle_stats;

/* Verify an EIP-6800 execution witness against pre_state_root (compressed root commitment).
   witness (witness_len bytes, little-endian counts, nothing after the proof):
     u32 n_keys, n_keys records of SPR_VERKLE_KEY_RECORD_LEN bytes
         (stem[31] || suffix || flag: 0 absent (value all zero) / 1 present || value[32]),
     u32 n_hints, n_hints bytes: depthExtensionPresent, one per distinct stem in sorted order
         (bits 0-1: 0 empty slot, 1 other stem, 2 present; bit 2 zero; bits 3-7: depth >= 1),
     u32 n_other, n_other stems of 31 bytes (otherStems, distinct, each used),
     u32 n_comms, n_comms compressed commitments (commitmentsByPath, sorted by path),
     the multiproof, SPR_VERKLE_PROOF_LEN bytes.
   Queries as the Verkle spec (rust-verkle create_verifier_queries), checked with one
   multiproof under transcript label "vt". Keys must be distinct; their order is free.
   out: n_keys * 33 bytes (flag || value of each key in witness order), written only on SPR_OK.
   Returns SPR_OK or an SPR_ERR_VERKLE_* status. */
SPR_API int spr_verkle_verify_witness(const uint8_t pre_state_root[32], const uint8_t *witness,
                                      size_t witness_len, uint8_t *out, size_t out_len,
                                      spr_verkle_stats *stats);

#ifdef __cplusplus
}
#endif

#endif /* SPR_H */
