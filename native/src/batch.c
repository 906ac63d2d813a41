/*
 * batch.c - one snapshot in one call: an EIP-1186 account proof and many storage proofs
 * against the proven storageHash (Yellow Paper, appendix D), hashing each distinct node once.
 *
 * Storage proofs of many slots of one contract share their upper nodes (the root branch is in
 * every proof). A node referenced by hash H is accepted without hashing when it is
 * byte-identical to a node already hashed to H in this call; the table of such nodes is an
 * open-addressing hash table in caller-supplied scratch memory (see spr_internal.h). Soundness
 * does not depend on the table: a hit requires equal bytes and an equal full hash, and a full
 * or absent table only costs more hashing.
 */
#include "spr_internal.h"

#include <stdalign.h>

#define CACHE_MIN_ENTRIES 16u
#define CACHE_MAX_ENTRIES ((size_t)1 << 20) /* 48 MiB of 48-byte entries */

static const uint8_t EMPTY_TRIE_ROOT[32] = {
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
};

size_t spr_snapshot_scratch_size(size_t n_nodes)
{
    size_t want = n_nodes + n_nodes / 3; /* keep the load factor under 3/4 */
    size_t cap = CACHE_MIN_ENTRIES;
    while (cap < want && cap < CACHE_MAX_ENTRIES) {
        cap <<= 1;
    }
    return cap * sizeof(spr_cache_entry);
}

/* Sum of n lengths, or SIZE_MAX on overflow. */
static size_t sum_lens(const size_t *lens, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] > SIZE_MAX - 1 - total) {
            return SIZE_MAX;
        }
        total += lens[i];
    }
    return total;
}

int spr_verify_snapshot(const uint8_t state_root[32], const uint8_t address[20],
                        const uint8_t *account_nodes, size_t account_nodes_len,
                        const size_t *account_node_lens, size_t account_n_nodes,
                        const uint8_t *slots, size_t n_slots, const uint8_t *storage_nodes,
                        size_t storage_nodes_len, const size_t *storage_node_lens,
                        size_t storage_n_nodes, const size_t *proof_n_nodes, void *scratch,
                        size_t scratch_len, spr_account *account, uint8_t *values,
                        int *statuses, spr_snapshot_stats *stats)
{
    if (state_root == NULL || address == NULL || account == NULL ||
        (n_slots != 0 && (slots == NULL || values == NULL || statuses == NULL ||
                          proof_n_nodes == NULL)) ||
        (storage_nodes == NULL && storage_nodes_len != 0) ||
        (storage_node_lens == NULL && storage_n_nodes != 0) ||
        (scratch == NULL && scratch_len != 0) ||
        ((uintptr_t)scratch % alignof(spr_cache_entry)) != 0) {
        return SPR_ERR_ARG;
    }
    /* the proofs' node counts must partition the storage nodes, their lengths the bytes */
    size_t counted = 0;
    for (size_t i = 0; i < n_slots; i++) {
        if (proof_n_nodes[i] > storage_n_nodes - counted) {
            return SPR_ERR_ARG;
        }
        counted += proof_n_nodes[i];
    }
    if (counted != storage_n_nodes || sum_lens(storage_node_lens, storage_n_nodes) != storage_nodes_len) {
        return SPR_ERR_ARG;
    }

    spr_hash_cache cache = {0};
    size_t cap = scratch_len / sizeof(spr_cache_entry);
    if (cap > CACHE_MAX_ENTRIES) {
        cap = CACHE_MAX_ENTRIES;
    }
    if (cap > 0) {
        size_t pow2 = 1;
        while (pow2 <= cap / 2) {
            pow2 <<= 1;
        }
        cache.entries = (spr_cache_entry *)scratch;
        cache.mask = pow2 - 1;
        cache.limit = pow2 - 1 - pow2 / 4; /* < capacity: probing always meets a free entry */
        memset(cache.entries, 0, pow2 * sizeof(spr_cache_entry));
    }

    /* the account proof (spr_verify_account, with the cache) */
    memset(account, 0, sizeof *account);
    uint8_t path[32];
    spr_keccak256_unchecked(address, 20, path);
    size_t vo = 0;
    size_t vl = 0;
    int acc = spr_mpt_walk(state_root, path, 32, account_nodes, account_nodes_len,
                           account_node_lens, account_n_nodes, &vo, &vl, &cache);
    if (acc == SPR_ERR_ARG) {
        return acc;
    }
    if (acc == SPR_OK) {
        acc = spr_account_from_value(account_nodes + vo, vl, account);
    }
    if (n_slots != 0) {
        memset(values, 0, n_slots * 32);
    }
    if (acc < 0) {
        for (size_t i = 0; i < n_slots; i++) {
            statuses[i] = acc;
        }
    } else {
        const uint8_t *storage_root = acc == SPR_OK ? account->storage_hash : EMPTY_TRIE_ROOT;
        size_t node = 0; /* index of proof i's first node */
        size_t off = 0;  /* its offset in storage_nodes */
        uint8_t paths[8][32]; /* keccak(slot) of slots i .. i+7, hashed eight at a time */
        const int x8 = spr_keccak_x8_available();
        for (size_t i = 0; i < n_slots; i++) {
            const size_t n = proof_n_nodes[i];
            const size_t len = sum_lens(storage_node_lens + node, n);
            if (x8 && i % 8 == 0 && n_slots - i >= 8) {
                const uint8_t *in[8];
                uint8_t *out[8];
                for (size_t k = 0; k < 8; k++) {
                    in[k] = slots + 32 * (i + k);
                    out[k] = paths[k];
                }
                spr_keccak256_x8(in, 32, out);
            }
            if (x8 && n_slots - (i - i % 8) >= 8) {
                memcpy(path, paths[i % 8], 32);
            } else {
                spr_keccak256_unchecked(slots + 32 * i, 32, path);
            }
            int rc = spr_mpt_walk(storage_root, path, 32, storage_nodes + off, len,
                                  storage_node_lens + node, n, &vo, &vl, &cache);
            if (rc == SPR_OK) {
                rc = spr_storage_from_value(storage_nodes + off + vo, vl, values + 32 * i);
            }
            statuses[i] = rc;
            node += n;
            off += len;
        }
    }
    if (stats != NULL) {
        stats->hashed_nodes = cache.hashed_nodes;
        stats->hashed_bytes = cache.hashed_bytes;
        stats->cached_nodes = cache.cached_nodes;
    }
    return acc;
}
