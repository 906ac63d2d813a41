/*
 * fuzz_merkle.c - libFuzzer harness for the OpenZeppelin-compatible Merkle tree
 * (@openzeppelin/merkle-tree): spr_merkle_claim_leaves, spr_merkle_build_tree,
 * spr_merkle_tree_proof, spr_merkle_multiproof and spr_merkle_process_multiproof.
 *
 * Input layout (see fuzz_common.h for the reader; make_seeds.py writes it):
 *   u16 LE        n claims (mod FZ_MAX_CLAIMS, plus 1)
 *   1 byte        leaf source: bit 0 clear: claim leaves from n 20-byte accounts and n 32-byte
 *                 values (next in the input); set: n raw 32-byte leaves (bit 1 set: only their
 *                 first byte is read, the rest zero: many equal leaves and shared prefixes)
 *   rest          the subset: one byte per leaf, leaf i is in it when its byte is odd; then
 *                 tampering bytes (which element of the multiproof to change, and how)
 *
 * Invariants (abort = crash): claim leaves equal spr_merkle_leaves over the 64-byte
 * abi.encode(address, uint256) encodings; single proofs fold to the root; the
 * multiproof has n_flags = k + n_proof - 1 (k = subset size; for k = 0 the root alone), at
 * most max(n - k, 1) hashes, its leaf order is the subset by tree index descending, and
 * spr_merkle_process_multiproof of it gives the root; a tampered multiproof returns only
 * SPR_OK or SPR_ERR_MULTIPROOF (and a zero root with the latter); a changed leaf never
 * verifies (a keccak collision would be needed).
 */
#include "fuzz_common.h"

#define FZ_MAX_CLAIMS 100

/* One input's tree, subset and multiproof, with their buffers. */
typedef struct {
    size_t n; /* leaves */
    uint8_t *leaves, *tree, *proof, *flags, *mleaves, *hashes;
    size_t *positions, *indices, *order, *queue;
    uint64_t *scratch;
    size_t scratch_len;
    size_t k; /* leaves in the subset: indices[0..k) */
    size_t n_proof, n_flags;
    uint8_t is_in[FZ_MAX_CLAIMS];
} fz_merkle_case;

static int fz_merkle_alloc(fz_merkle_case *c, size_t n)
{
    memset(c, 0, sizeof *c);
    c->n = n;
    c->leaves = malloc(32 * n);
    c->tree = malloc(32 * (2 * n - 1));
    c->positions = malloc(n * sizeof *c->positions);
    c->scratch_len = spr_merkle_scratch_size(n);
    c->scratch = malloc(c->scratch_len);
    c->indices = malloc(n * sizeof *c->indices);
    c->order = malloc(n * sizeof *c->order);
    c->queue = malloc(n * sizeof *c->queue);
    c->proof = malloc(32 * n + 32);
    c->flags = malloc(n + 1);
    c->mleaves = malloc(32 * n);
    c->hashes = malloc(32 * (2 * n + 1));
    return c->leaves != NULL && c->tree != NULL && c->positions != NULL && c->scratch != NULL &&
           c->indices != NULL && c->order != NULL && c->queue != NULL && c->proof != NULL &&
           c->flags != NULL && c->mleaves != NULL && c->hashes != NULL;
}

static void fz_merkle_free(fz_merkle_case *c)
{
    free(c->leaves);
    free(c->tree);
    free(c->positions);
    free(c->scratch);
    free(c->indices);
    free(c->order);
    free(c->queue);
    free(c->proof);
    free(c->flags);
    free(c->mleaves);
    free(c->hashes);
}

/* Claim leaves of n accounts and values from the input: they equal spr_merkle_leaves over the
   64-byte abi.encode(address, uint256) encodings. 0 when out of memory. */
static int fz_merkle_claim_leaves(fz_reader *r, size_t n, uint8_t *leaves)
{
    uint8_t *accounts = malloc(20 * n);
    uint8_t *values = malloc(32 * n);
    uint8_t *encoded = malloc(64 * n);
    uint8_t *want = malloc(32 * n);
    const int ok = accounts != NULL && values != NULL && encoded != NULL && want != NULL;
    if (ok) {
        fz_take(r, accounts, 20 * n);
        fz_take(r, values, 32 * n);
        FZ_CHECK(spr_merkle_claim_leaves(accounts, values, n, leaves) == SPR_OK);
        memset(encoded, 0, 64 * n);
        for (size_t i = 0; i < n; i++) {
            memcpy(encoded + 64 * i + 12, accounts + 20 * i, 20);
            memcpy(encoded + 64 * i + 32, values + 32 * i, 32);
        }
        FZ_CHECK(spr_merkle_leaves(encoded, n, 64, want) == SPR_OK);
        FZ_CHECK(memcmp(leaves, want, 32 * n) == 0);
    }
    free(accounts);
    free(values);
    free(encoded);
    free(want);
    return ok;
}

/* The leaves from the input as `source` says (see the layout above), and their tree. 0 when out
   of memory. */
static int fz_merkle_leaves(fz_merkle_case *c, fz_reader *r, unsigned source)
{
    const size_t n = c->n;
    if ((source & 1u) == 0) {
        if (!fz_merkle_claim_leaves(r, n, c->leaves)) {
            return 0;
        }
    } else if (source & 2u) {
        memset(c->leaves, 0, 32 * n);
        for (size_t i = 0; i < n; i++) {
            c->leaves[32 * i] = (uint8_t)fz_u8(r);
        }
    } else {
        fz_take(r, c->leaves, 32 * n);
    }
    FZ_CHECK(spr_merkle_build_tree(c->leaves, n, c->tree, 32 * (2 * n - 1), c->positions,
                                   c->scratch, c->scratch_len) == SPR_OK);
    return 1;
}

/* The subset from the input; single proofs of (the first eight of) its leaves fold to the
   root. */
static void fz_merkle_subset(fz_merkle_case *c, fz_reader *r)
{
    c->k = 0;
    for (size_t i = 0; i < c->n; i++) {
        c->is_in[i] = fz_u8(r) & 1u;
        if (c->is_in[i]) {
            c->indices[c->k++] = i;
        }
    }
    for (size_t j = 0; j < c->k && j < 8; j++) {
        uint8_t single[32 * 64];
        uint8_t root[32];
        const size_t at = c->indices[j];
        const int count = spr_merkle_tree_proof(c->tree, c->n, c->positions[at], single,
                                                sizeof single);
        FZ_CHECK(count >= 0);
        FZ_CHECK(spr_merkle_process_proof(c->leaves + 32 * at, single, (size_t)count, root) ==
                 SPR_OK);
        FZ_CHECK(memcmp(root, c->tree, 32) == 0);
    }
}

/* The subset's multiproof: its shape, its leaf order (tree index descending), and that it
   processes to the root. */
static void fz_merkle_multiproof(fz_merkle_case *c)
{
    const size_t n = c->n;
    const size_t k = c->k;
    const size_t proof_cap = n - k > 1 ? n - k : 1;
    FZ_CHECK(spr_merkle_multiproof(c->tree, n, c->positions, c->indices, k, c->order, c->proof,
                                   proof_cap, &c->n_proof, c->flags, n, &c->n_flags,
                                   c->queue) == SPR_OK);
    FZ_CHECK(c->n_proof <= proof_cap);
    if (k == 0) {
        FZ_CHECK(c->n_proof == 1 && c->n_flags == 0 && memcmp(c->proof, c->tree, 32) == 0);
    } else {
        FZ_CHECK(c->n_flags == k + c->n_proof - 1);
    }
    for (size_t j = 0; j < k; j++) {
        FZ_CHECK(c->order[j] < n && c->is_in[c->order[j]]);
        FZ_CHECK(j == 0 || c->positions[c->order[j]] < c->positions[c->order[j - 1]]);
        memcpy(c->mleaves + 32 * j, c->leaves + 32 * c->order[j], 32);
    }
    for (size_t j = 0; j < c->n_flags; j++) {
        FZ_CHECK(c->flags[j] <= 1);
    }
    uint8_t root[32];
    FZ_CHECK(spr_merkle_process_multiproof(c->mleaves, k, c->proof, c->n_proof, c->flags,
                                           c->n_flags, c->hashes, root) == SPR_OK);
    FZ_CHECK(memcmp(root, c->tree, 32) == 0);
}

/* Tamper with the multiproof as the input says: 0 flip a flag, 1 drop the last flag, 2 add a
   proof hash, 3 drop a proof hash, 4 change a leaf byte, 5 drop the last leaf. */
static void fz_merkle_tamper(fz_merkle_case *c, fz_reader *r)
{
    const unsigned how = fz_u8(r) % 6u;
    const size_t at = fz_u16(r);
    size_t tk = c->k;
    size_t tp = c->n_proof;
    size_t tf = c->n_flags;
    int changed_leaf = 0;
    if (how == 0 && tf > 0) {
        c->flags[at % tf] ^= 1u;
    } else if (how == 1 && tf > 0) {
        tf--;
    } else if (how == 2) {
        memset(c->proof + 32 * tp, (int)(at & 0xff), 32);
        tp++;
    } else if (how == 3 && tp > 0) {
        tp--;
    } else if (how == 4 && tk > 0) {
        c->mleaves[32 * (at % tk) + (at >> 8) % 32] ^= 1u;
        changed_leaf = 1;
    } else if (how == 5 && tk > 0) {
        tk--;
    }
    uint8_t root[32];
    const int rc =
        spr_merkle_process_multiproof(c->mleaves, tk, c->proof, tp, c->flags, tf, c->hashes, root);
    FZ_CHECK(rc == SPR_OK || rc == SPR_ERR_MULTIPROOF);
    if (rc == SPR_ERR_MULTIPROOF) {
        FZ_CHECK(fz_is_zero(root, 32));
    }
    if (changed_leaf) {
        FZ_CHECK(rc != SPR_OK || memcmp(root, c->tree, 32) != 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    const size_t n = fz_u16(&r) % FZ_MAX_CLAIMS + 1;
    const unsigned source = fz_u8(&r);
    fz_merkle_case c;
    if (fz_merkle_alloc(&c, n) && fz_merkle_leaves(&c, &r, source)) {
        fz_merkle_subset(&c, &r);
        fz_merkle_multiproof(&c);
        fz_merkle_tamper(&c, &r);
    }
    fz_merkle_free(&c);
    return 0;
}
