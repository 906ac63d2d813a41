/*
 * merkle.c - Merkle trees compatible with OpenZeppelin's StandardMerkleTree
 * (@openzeppelin/merkle-tree 1.x) and MerkleProof.sol.
 *
 * Leaves are 32-byte hashes keccak256(keccak256(abi.encode(...))); inner nodes are
 * keccak256(min(a, b) || max(a, b)). StandardMerkleTree.of sorts the leaf hashes (a stable
 * sort, so equal hashes keep the caller's order), then lays out a complete binary tree in an
 * array of 2n-1 nodes: tree[i] has children tree[2i+1] and tree[2i+2], and the k-th sorted
 * leaf sits at tree[2n-2-k]. A leaf's proof lists the siblings on its way up to tree[0].
 */
#include "spr_internal.h"

int spr_merkle_leaf(const uint8_t *data, size_t len, uint8_t out[32])
{
    if (out == NULL || (data == NULL && len != 0)) {
        return SPR_ERR_ARG;
    }
    uint8_t inner[32];
    spr_keccak256_unchecked(data, len, inner);
    spr_keccak256_unchecked(inner, 32, out);
    return SPR_OK;
}

static inline void hash_pair(const uint8_t *a, const uint8_t *b, uint8_t *out)
{
    uint8_t buf[64];
    if (memcmp(a, b, 32) <= 0) {
        memcpy(buf, a, 32);
        memcpy(buf + 32, b, 32);
    } else {
        memcpy(buf, b, 32);
        memcpy(buf + 32, a, 32);
    }
    spr_keccak256_unchecked(buf, 64, out);
}

int spr_merkle_hash_pair(const uint8_t a[32], const uint8_t b[32], uint8_t out[32])
{
    if (a == NULL || b == NULL || out == NULL) {
        return SPR_ERR_ARG;
    }
    hash_pair(a, b, out);
    return SPR_OK;
}

static inline size_t floor_log2(size_t v)
{
    size_t r = 0;
    while (v >>= 1) {
        r++;
    }
    return r;
}

size_t spr_merkle_proofs_size(size_t n_leaves)
{
    if (n_leaves == 0 || n_leaves > SPR_MERKLE_MAX_LEAVES) {
        return 0;
    }
    /* leaf positions t = n-1 .. 2n-2 have depth floor(log2(t + 1)), i.e. floor(log2(u)) for
       u = n .. 2n-1: k = floor(log2(n)) for all, plus one for the u >= 2^(k+1) */
    const size_t k = floor_log2(n_leaves);
    return n_leaves * k + (2 * n_leaves - ((size_t)2 << k));
}

/* order: leaf hash, then caller index (makes the unstable heapsort equal to a stable sort) */
static inline int leaf_less(const uint8_t *leaves, size_t a, size_t b)
{
    const int c = memcmp(leaves + 32 * a, leaves + 32 * b, 32);
    return c < 0 || (c == 0 && a < b);
}

static void sift_down(const uint8_t *leaves, size_t *order, size_t root, size_t end)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= end) {
            return;
        }
        if (child + 1 < end && leaf_less(leaves, order[child], order[child + 1])) {
            child++;
        }
        if (!leaf_less(leaves, order[root], order[child])) {
            return;
        }
        const size_t tmp = order[root];
        order[root] = order[child];
        order[child] = tmp;
        root = child;
    }
}

int spr_merkle_build(const uint8_t *leaves, size_t n_leaves, uint8_t *tree, uint8_t *proofs,
                     size_t *proof_lens, size_t *scratch)
{
    if (leaves == NULL || tree == NULL || proof_lens == NULL || scratch == NULL ||
        n_leaves == 0 || n_leaves > SPR_MERKLE_MAX_LEAVES || (proofs == NULL && n_leaves > 1)) {
        return SPR_ERR_ARG;
    }
    const size_t n = n_leaves;
    size_t *order = scratch;         /* order[k] = caller index of the k-th smallest leaf */
    size_t *position = scratch + n;  /* position[i] = tree index of leaves[i] */

    /* heapsort (no recursion, no allocation) */
    for (size_t i = 0; i < n; i++) {
        order[i] = i;
    }
    for (size_t start = n / 2; start-- > 0;) {
        sift_down(leaves, order, start, n);
    }
    for (size_t end = n - 1; end > 0; end--) {
        const size_t tmp = order[0];
        order[0] = order[end];
        order[end] = tmp;
        sift_down(leaves, order, 0, end);
    }

    const size_t size = 2 * n - 1;
    for (size_t k = 0; k < n; k++) {
        const size_t t = size - 1 - k;
        memcpy(tree + 32 * t, leaves + 32 * order[k], 32);
        position[order[k]] = t;
    }
    for (size_t i = size - n; i-- > 0;) {
        hash_pair(tree + 32 * (2 * i + 1), tree + 32 * (2 * i + 2), tree + 32 * i);
    }

    uint8_t *out = proofs;
    for (size_t i = 0; i < n; i++) {
        size_t t = position[i];
        size_t count = 0;
        while (t > 0) {
            const size_t sibling = (t & 1) ? t + 1 : t - 1;
            memcpy(out, tree + 32 * sibling, 32);
            out += 32;
            count++;
            t = (t - 1) / 2;
        }
        proof_lens[i] = count;
    }
    return SPR_OK;
}

int spr_merkle_process_proof(const uint8_t leaf[32], const uint8_t *proof, size_t n_proof,
                             uint8_t root_out[32])
{
    if (leaf == NULL || root_out == NULL || (proof == NULL && n_proof != 0)) {
        return SPR_ERR_ARG;
    }
    uint8_t acc[32];
    memcpy(acc, leaf, 32);
    for (size_t i = 0; i < n_proof; i++) {
        hash_pair(acc, proof + 32 * i, acc);
    }
    memcpy(root_out, acc, 32);
    return SPR_OK;
}
