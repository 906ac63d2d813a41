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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    const size_t n = fz_u16(&r) % FZ_MAX_CLAIMS + 1;
    const unsigned source = fz_u8(&r);
    uint8_t *leaves = malloc(32 * n);
    uint8_t *tree = malloc(32 * (2 * n - 1));
    size_t *positions = malloc(n * sizeof *positions);
    const size_t scratch_len = spr_merkle_scratch_size(n);
    uint64_t *scratch = malloc(scratch_len);
    size_t *indices = malloc(n * sizeof *indices);
    size_t *order = malloc(n * sizeof *order);
    size_t *queue = malloc(n * sizeof *queue);
    uint8_t *proof = malloc(32 * n + 32);
    uint8_t *flags = malloc(n + 1);
    uint8_t *mleaves = malloc(32 * n);
    uint8_t *hashes = malloc(32 * (2 * n + 1));
    uint8_t *accounts = malloc(20 * n);
    uint8_t *values = malloc(32 * n);
    uint8_t *encoded = malloc(64 * n);
    uint8_t *want = malloc(32 * n);
    uint8_t is_in[FZ_MAX_CLAIMS];
    if (leaves == NULL || tree == NULL || positions == NULL || scratch == NULL ||
        indices == NULL || order == NULL || queue == NULL || proof == NULL || flags == NULL ||
        mleaves == NULL || hashes == NULL || accounts == NULL || values == NULL ||
        encoded == NULL || want == NULL) {
        goto out;
    }

    if ((source & 1u) == 0) {
        fz_take(&r, accounts, 20 * n);
        fz_take(&r, values, 32 * n);
        FZ_CHECK(spr_merkle_claim_leaves(accounts, values, n, leaves) == SPR_OK);
        memset(encoded, 0, 64 * n);
        for (size_t i = 0; i < n; i++) {
            memcpy(encoded + 64 * i + 12, accounts + 20 * i, 20);
            memcpy(encoded + 64 * i + 32, values + 32 * i, 32);
        }
        FZ_CHECK(spr_merkle_leaves(encoded, n, 64, want) == SPR_OK);
        FZ_CHECK(memcmp(leaves, want, 32 * n) == 0);
    } else if (source & 2u) {
        memset(leaves, 0, 32 * n);
        for (size_t i = 0; i < n; i++) {
            leaves[32 * i] = (uint8_t)fz_u8(&r);
        }
    } else {
        fz_take(&r, leaves, 32 * n);
    }
    FZ_CHECK(spr_merkle_build_tree(leaves, n, tree, 32 * (2 * n - 1), positions, scratch,
                                   scratch_len) == SPR_OK);

    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        is_in[i] = fz_u8(&r) & 1u;
        if (is_in[i]) {
            indices[k++] = i;
        }
    }
    /* single proofs of (the first eight of) the subset's leaves fold to the root */
    for (size_t j = 0; j < k && j < 8; j++) {
        uint8_t single[32 * 64];
        uint8_t root[32];
        const int count = spr_merkle_tree_proof(tree, n, positions[indices[j]], single, sizeof single);
        FZ_CHECK(count >= 0);
        FZ_CHECK(spr_merkle_process_proof(leaves + 32 * indices[j], single, (size_t)count, root) ==
                 SPR_OK);
        FZ_CHECK(memcmp(root, tree, 32) == 0);
    }

    const size_t proof_cap = n - k > 1 ? n - k : 1;
    size_t n_proof = 0;
    size_t n_flags = 0;
    FZ_CHECK(spr_merkle_multiproof(tree, n, positions, indices, k, order, proof, proof_cap,
                                   &n_proof, flags, n, &n_flags, queue) == SPR_OK);
    FZ_CHECK(n_proof <= proof_cap);
    if (k == 0) {
        FZ_CHECK(n_proof == 1 && n_flags == 0 && memcmp(proof, tree, 32) == 0);
    } else {
        FZ_CHECK(n_flags == k + n_proof - 1);
    }
    for (size_t j = 0; j < k; j++) {
        FZ_CHECK(order[j] < n && is_in[order[j]]);
        FZ_CHECK(j == 0 || positions[order[j]] < positions[order[j - 1]]);
        memcpy(mleaves + 32 * j, leaves + 32 * order[j], 32);
    }
    for (size_t j = 0; j < n_flags; j++) {
        FZ_CHECK(flags[j] <= 1);
    }
    uint8_t root[32];
    FZ_CHECK(spr_merkle_process_multiproof(mleaves, k, proof, n_proof, flags, n_flags, hashes,
                                           root) == SPR_OK);
    FZ_CHECK(memcmp(root, tree, 32) == 0);

    /* tamper: 0 flip a flag, 1 drop the last flag, 2 add a proof hash, 3 drop a proof hash,
       4 change a leaf byte, 5 drop the last leaf */
    const unsigned how = fz_u8(&r) % 6u;
    const size_t at = fz_u16(&r);
    size_t tk = k;
    size_t tp = n_proof;
    size_t tf = n_flags;
    int changed_leaf = 0;
    if (how == 0 && tf > 0) {
        flags[at % tf] ^= 1u;
    } else if (how == 1 && tf > 0) {
        tf--;
    } else if (how == 2) {
        memset(proof + 32 * tp, (int)(at & 0xff), 32);
        tp++;
    } else if (how == 3 && tp > 0) {
        tp--;
    } else if (how == 4 && tk > 0) {
        mleaves[32 * (at % tk) + (at >> 8) % 32] ^= 1u;
        changed_leaf = 1;
    } else if (how == 5 && tk > 0) {
        tk--;
    }
    const int rc = spr_merkle_process_multiproof(mleaves, tk, proof, tp, flags, tf, hashes, root);
    FZ_CHECK(rc == SPR_OK || rc == SPR_ERR_MULTIPROOF);
    if (rc == SPR_ERR_MULTIPROOF) {
        FZ_CHECK(fz_is_zero(root, 32));
    }
    if (changed_leaf) {
        FZ_CHECK(rc != SPR_OK || memcmp(root, tree, 32) != 0);
    }
out:
    free(leaves);
    free(tree);
    free(positions);
    free(scratch);
    free(indices);
    free(order);
    free(queue);
    free(proof);
    free(flags);
    free(mleaves);
    free(hashes);
    free(accounts);
    free(values);
    free(encoded);
    free(want);
    return 0;
}
