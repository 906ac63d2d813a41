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

/* order: leaf hash, then caller index (makes the unstable heapsort equal to a stable sort) */
static inline int leaf_less(const uint8_t *leaves, size_t a, size_t b)
{
    const int c = memcmp(leaves + 32 * a, leaves + 32 * b, 32);
    return c < 0 || (c == 0 && a < b);
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

/* ---- bulk interface: many leaves in one call, the tree, proofs read from it ---------------- */

int spr_merkle_leaves(const uint8_t *encoded, size_t n_leaves, size_t stride, uint8_t *leaves)
{
    if (leaves == NULL || (encoded == NULL && n_leaves != 0 && stride != 0) ||
        (stride != 0 && n_leaves > SIZE_MAX / stride)) {
        return SPR_ERR_ARG;
    }
    size_t i = 0;
    if (stride != 0 && spr_keccak_x8_available()) {
        for (; n_leaves - i >= 8; i += 8) { /* eight leaves per pass */
            uint8_t inner[8][32];
            const uint8_t *in[8];
            uint8_t *mid[8];
            uint8_t *out[8];
            for (int k = 0; k < 8; k++) {
                in[k] = encoded + (i + (size_t)k) * stride;
                mid[k] = inner[k];
                out[k] = leaves + 32 * (i + (size_t)k);
            }
            spr_keccak256_x8(in, stride, mid);
            spr_keccak256_x8((const uint8_t *const *)mid, 32, out);
        }
    }
    for (; i < n_leaves; i++) {
        uint8_t inner[32];
        spr_keccak256_unchecked(stride != 0 ? encoded + i * stride : NULL, stride, inner);
        spr_keccak256_unchecked(inner, 32, leaves + 32 * i);
    }
    return SPR_OK;
}

/* Sort key of a leaf: its first 8 bytes as a big-endian integer, so that key order is the
   order of memcmp on those bytes. */
typedef struct {
    uint64_t key;
    size_t index;
} leaf_key;

static inline uint64_t load64_be(const uint8_t *p)
{
    return ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
}

static inline int key_less(const uint8_t *leaves, const leaf_key *a, const leaf_key *b)
{
    if (a->key != b->key) {
        return a->key < b->key;
    }
    return leaf_less(leaves, a->index, b->index);
}

static void key_sift_down(const uint8_t *leaves, leaf_key *k, size_t root, size_t end)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= end) {
            return;
        }
        if (child + 1 < end && key_less(leaves, &k[child], &k[child + 1])) {
            child++;
        }
        if (!key_less(leaves, &k[root], &k[child])) {
            return;
        }
        const leaf_key tmp = k[root];
        k[root] = k[child];
        k[child] = tmp;
        root = child;
    }
}

/* Sort a run of keys sharing their first 8 bytes by (full hash, caller index). */
static void sort_run(const uint8_t *leaves, leaf_key *k, size_t n)
{
    if (n <= 16) { /* insertion sort */
        for (size_t i = 1; i < n; i++) {
            const leaf_key x = k[i];
            size_t j = i;
            while (j > 0 && key_less(leaves, &x, &k[j - 1])) {
                k[j] = k[j - 1];
                j--;
            }
            k[j] = x;
        }
        return;
    }
    for (size_t start = n / 2; start-- > 0;) { /* heapsort: O(n log n) even for equal leaves */
        key_sift_down(leaves, k, start, n);
    }
    for (size_t end = n - 1; end > 0; end--) {
        const leaf_key tmp = k[0];
        k[0] = k[end];
        k[end] = tmp;
        key_sift_down(leaves, k, 0, end);
    }
}

/* Stable order of the leaves by (hash, caller index): LSD radix sort on the first 8 bytes
   (8 passes of one byte, stable), then runs with equal first 8 bytes sorted in full.
   keys and tmp: n entries each. Returns the sorted array (keys or tmp). */
static leaf_key *sort_leaves(const uint8_t *leaves, size_t n, leaf_key *keys, leaf_key *tmp)
{
    for (size_t i = 0; i < n; i++) {
        keys[i].key = load64_be(leaves + 32 * i);
        keys[i].index = i;
    }
    leaf_key *src = keys;
    leaf_key *dst = tmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++) {
            count[(src[i].key >> shift) & 0xff]++;
        }
        if (count[(src[0].key >> shift) & 0xff] == n) {
            continue; /* every key has this byte: the pass would not move anything */
        }
        size_t sum = 0;
        for (size_t b = 0; b < 256; b++) {
            const size_t c = count[b];
            count[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++) {
            dst[count[(src[i].key >> shift) & 0xff]++] = src[i];
        }
        leaf_key *t = src;
        src = dst;
        dst = t;
    }
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && src[j].key == src[i].key) {
            j++;
        }
        if (j - i > 1) {
            sort_run(leaves, src + i, j - i);
        }
        i = j;
    }
    return src;
}

size_t spr_merkle_scratch_size(size_t n_leaves)
{
    if (n_leaves == 0 || n_leaves > SPR_MERKLE_MAX_LEAVES) {
        return 0;
    }
    return 2 * n_leaves * sizeof(leaf_key);
}

int spr_merkle_build_tree(const uint8_t *leaves, size_t n_leaves, uint8_t *tree, size_t tree_len,
                          size_t *positions, void *scratch, size_t scratch_len)
{
    if (leaves == NULL || tree == NULL || positions == NULL || scratch == NULL ||
        n_leaves == 0 || n_leaves > SPR_MERKLE_MAX_LEAVES ||
        ((uintptr_t)scratch % _Alignof(leaf_key)) != 0) {
        return SPR_ERR_ARG;
    }
    const size_t n = n_leaves;
    const size_t size = 2 * n - 1;
    if (tree_len < 32 * size || scratch_len < spr_merkle_scratch_size(n)) {
        return SPR_ERR_BUFFER;
    }
    leaf_key *keys = (leaf_key *)scratch;
    const leaf_key *sorted = sort_leaves(leaves, n, keys, keys + n);

    /* the k-th smallest leaf at tree[2n-2-k] */
    for (size_t k = 0; k < n; k++) {
        const size_t t = size - 1 - k;
        memcpy(tree + 32 * t, leaves + 32 * sorted[k].index, 32);
        positions[sorted[k].index] = t;
    }
    size_t i = size - n; /* inner nodes i-1 .. 0 are still to hash, children first */
    if (spr_keccak_x8_available()) {
        /* eight at a time while their children (>= 2(i-8)+1) are all above the batch (>= i) */
        while (i >= 8 && 2 * (i - 8) + 1 >= i) {
            uint8_t pairs[8][64];
            const uint8_t *in[8];
            uint8_t *dst[8];
            for (size_t k = 0; k < 8; k++) {
                const size_t j = i - 1 - k;
                const uint8_t *a = tree + 32 * (2 * j + 1);
                const uint8_t *b = tree + 32 * (2 * j + 2);
                const int swap = memcmp(a, b, 32) > 0;
                memcpy(pairs[k], swap ? b : a, 32);
                memcpy(pairs[k] + 32, swap ? a : b, 32);
                in[k] = pairs[k];
                dst[k] = tree + 32 * j;
            }
            spr_keccak256_x8(in, 64, dst);
            i -= 8;
        }
    }
    while (i-- > 0) {
        hash_pair(tree + 32 * (2 * i + 1), tree + 32 * (2 * i + 2), tree + 32 * i);
    }
    return SPR_OK;
}

int spr_merkle_tree_proof(const uint8_t *tree, size_t n_leaves, size_t position, uint8_t *out,
                          size_t out_len)
{
    if (tree == NULL || out == NULL || n_leaves == 0 || n_leaves > SPR_MERKLE_MAX_LEAVES ||
        position >= 2 * n_leaves - 1 || position < n_leaves - 1) {
        return SPR_ERR_ARG;
    }
    size_t count = 0;
    for (size_t t = position; t > 0; t = (t - 1) / 2) {
        if (32 * (count + 1) > out_len) {
            return SPR_ERR_BUFFER;
        }
        const size_t sibling = (t & 1) ? t + 1 : t - 1;
        memcpy(out + 32 * count, tree + 32 * sibling, 32);
        count++;
    }
    return (int)count;
}

int spr_merkle_claim_leaves(const uint8_t *accounts, const uint8_t *values, size_t n,
                            uint8_t *leaves)
{
    if (leaves == NULL || (n != 0 && (accounts == NULL || values == NULL)) ||
        n > SPR_MERKLE_MAX_LEAVES) {
        return SPR_ERR_ARG;
    }
    uint8_t chunk[8][64]; /* eight Claim encodings: 12 zero bytes | account | value */
    memset(chunk, 0, sizeof chunk);
    for (size_t i = 0; i < n; i += 8) {
        const size_t m = n - i < 8 ? n - i : 8;
        for (size_t k = 0; k < m; k++) {
            memcpy(chunk[k] + 12, accounts + 20 * (i + k), 20);
            memcpy(chunk[k] + 32, values + 32 * (i + k), 32);
        }
        (void)spr_merkle_leaves(&chunk[0][0], m, 64, leaves + 32 * i);
    }
    return SPR_OK;
}

/* ---- multiproofs (OpenZeppelin core getMultiProof / processMultiProof) -------------------- */

/* order[] (caller indices) by tree position descending: heapsort, no recursion */
static void mp_sift_down(const size_t *positions, size_t *order, size_t root, size_t end)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= end) {
            return;
        }
        /* a max-heap on "comes later in the descending order", i.e. smaller position */
        if (child + 1 < end && positions[order[child + 1]] < positions[order[child]]) {
            child++;
        }
        if (positions[order[root]] <= positions[order[child]]) {
            return;
        }
        const size_t tmp = order[root];
        order[root] = order[child];
        order[child] = tmp;
        root = child;
    }
}

/* order[0..k) by tree position descending (heapsort: build a heap whose top is the smallest
   position, move it to the end); SPR_ERR_ARG if a position is there twice (the same leaf). */
static int mp_sort_descending(const size_t *positions, size_t *order, size_t k)
{
    for (size_t start = k / 2; start-- > 0;) {
        mp_sift_down(positions, order, start, k);
    }
    for (size_t end = k - 1; end > 0; end--) {
        const size_t tmp = order[0];
        order[0] = order[end];
        order[end] = tmp;
        mp_sift_down(positions, order, 0, end);
    }
    for (size_t i = 1; i < k; i++) {
        if (positions[order[i]] == positions[order[i - 1]]) {
            return SPR_ERR_ARG; /* the same leaf twice */
        }
    }
    return SPR_OK;
}

/* From the k leaves' tree indices (queue, descending) up to the root: a flag per step (1 when
   the sibling is the next queued node, else 0 and the sibling goes into the proof). *np and *nf
   are the proof hashes and flags written; SPR_ERR_BUFFER when either buffer is too small. The
   queue is a ring of k entries: it never holds more than k, and stays sorted descending
   because a parent is smaller than every node behind it. */
static int mp_walk_queue(const uint8_t *tree, size_t *queue, size_t k, uint8_t *proof,
                         size_t proof_cap, size_t *np, uint8_t *flags, size_t flags_cap,
                         size_t *nf)
{
    size_t head = 0;
    size_t len = k;
    while (len > 0 && queue[head] > 0) {
        const size_t j = queue[head];
        head = head + 1 == k ? 0 : head + 1;
        len--;
        const size_t s = (j & 1) ? j + 1 : j - 1;
        const size_t p = (j - 1) / 2;
        if (*nf == flags_cap) {
            return SPR_ERR_BUFFER;
        }
        if (len > 0 && queue[head] == s) {
            flags[(*nf)++] = 1;
            head = head + 1 == k ? 0 : head + 1;
            len--;
        } else {
            if (*np == proof_cap) {
                return SPR_ERR_BUFFER;
            }
            flags[(*nf)++] = 0;
            memcpy(proof + 32 * *np, tree + 32 * s, 32);
            (*np)++;
        }
        size_t tail = head + len;
        if (tail >= k) {
            tail -= k;
        }
        queue[tail] = p;
        len++;
    }
    return SPR_OK;
}

int spr_merkle_multiproof(const uint8_t *tree, size_t n_leaves, const size_t *positions,
                          const size_t *indices, size_t n_indices, size_t *order,
                          uint8_t *proof, size_t proof_cap, size_t *n_proof, uint8_t *flags,
                          size_t flags_cap, size_t *n_flags, size_t *scratch)
{
    if (tree == NULL || positions == NULL || n_proof == NULL || n_flags == NULL ||
        proof == NULL || n_leaves == 0 || n_leaves > SPR_MERKLE_MAX_LEAVES ||
        n_indices > n_leaves ||
        (n_indices != 0 && (indices == NULL || order == NULL || scratch == NULL)) ||
        (flags == NULL && flags_cap != 0)) {
        return SPR_ERR_ARG;
    }
    const size_t n = n_leaves;
    const size_t k = n_indices;
    *n_proof = 0;
    *n_flags = 0;
    for (size_t i = 0; i < k; i++) {
        if (indices[i] >= n || positions[indices[i]] < n - 1 ||
            positions[indices[i]] >= 2 * n - 1) {
            return SPR_ERR_ARG;
        }
        order[i] = indices[i];
    }
    if (k == 0) { /* OpenZeppelin: no leaves, the proof is the root itself */
        if (proof_cap < 1) {
            return SPR_ERR_BUFFER;
        }
        memcpy(proof, tree, 32);
        *n_proof = 1;
        return SPR_OK;
    }
    int rc = mp_sort_descending(positions, order, k);
    if (rc != SPR_OK) {
        return rc;
    }
    size_t *queue = scratch; /* the queue of tree indices */
    for (size_t i = 0; i < k; i++) {
        queue[i] = positions[order[i]];
    }
    size_t np = 0;
    size_t nf = 0;
    rc = mp_walk_queue(tree, queue, k, proof, proof_cap, &np, flags, flags_cap, &nf);
    if (rc != SPR_OK) {
        return rc;
    }
    *n_proof = np;
    *n_flags = nf;
    return SPR_OK;
}

int spr_merkle_process_multiproof(const uint8_t *leaves, size_t n_leaves, const uint8_t *proof,
                                  size_t n_proof, const uint8_t *flags, size_t n_flags,
                                  uint8_t *hashes, uint8_t root_out[32])
{
    if (root_out == NULL || (leaves == NULL && n_leaves != 0) ||
        (proof == NULL && n_proof != 0) || (flags == NULL && n_flags != 0) ||
        (hashes == NULL && n_flags != 0) || n_leaves > SIZE_MAX - n_proof) {
        return SPR_ERR_ARG;
    }
    memset(root_out, 0, 32);
    if (n_leaves + n_proof != n_flags + 1) {
        return SPR_ERR_MULTIPROOF;
    }
    if (n_flags == 0) { /* one leaf that is the root, or no leaf and the root as the proof */
        memcpy(root_out, n_leaves != 0 ? leaves : proof, 32);
        return SPR_OK;
    }
    /* a queue: the leaves, then the hashes as they are made (hashes[i] by step i) */
    size_t leaf_pos = 0;
    size_t hash_pos = 0;
    size_t proof_pos = 0;
    for (size_t i = 0; i < n_flags; i++) {
        const uint8_t *a;
        const uint8_t *b;
        if (leaf_pos < n_leaves) {
            a = leaves + 32 * leaf_pos++;
        } else if (hash_pos < i) {
            a = hashes + 32 * hash_pos++;
        } else {
            return SPR_ERR_MULTIPROOF; /* nothing left to hash */
        }
        if (flags[i] > 1) {
            return SPR_ERR_ARG;
        }
        if (flags[i]) {
            if (leaf_pos < n_leaves) {
                b = leaves + 32 * leaf_pos++;
            } else if (hash_pos < i) {
                b = hashes + 32 * hash_pos++;
            } else {
                return SPR_ERR_MULTIPROOF;
            }
        } else if (proof_pos < n_proof) {
            b = proof + 32 * proof_pos++;
        } else {
            return SPR_ERR_MULTIPROOF; /* more proof hashes asked for than given */
        }
        hash_pair(a, b, hashes + 32 * i);
    }
    if (proof_pos != n_proof) {
        return SPR_ERR_MULTIPROOF; /* proof hashes left unused */
    }
    memcpy(root_out, hashes + 32 * (n_flags - 1), 32);
    return SPR_OK;
}
