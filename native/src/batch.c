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
 *
 * With scratch of spr_snapshot_scratch_size(all nodes), every distinct node is hashed before the
 * walks: nodes are deduplicated by content (a fingerprint table, memcmp on a candidate), the
 * distinct ones hashed eight at a time (AVX-512 lanes, grouped by their count of 136-byte
 * blocks) and entered into the cache; the walks then find each node there, knowing which
 * stored node holds the same bytes. A node whose hash is not the reference it is reached by
 * misses the cache and is hashed again by the walk, which then reports the mismatch.
 */
#include "spr_internal.h"

#include <stdalign.h>

#define CACHE_MIN_ENTRIES 16u
#define CACHE_MAX_ENTRIES ((size_t)1 << 20) /* 48 MiB of 48-byte entries */

static const uint8_t EMPTY_TRIE_ROOT[32] = {
    0x56, 0xe8, 0x1f, 0x17, 0x1b, 0xcc, 0x55, 0xa6, 0xff, 0x83, 0x45, 0xe6, 0x92, 0xc0, 0xf8, 0x6e,
    0x5b, 0x48, 0xe0, 0x1b, 0x99, 0x6c, 0xad, 0xc0, 0x01, 0x62, 0x2f, 0xb5, 0xe3, 0x63, 0xb4, 0x21,
};

#define PREHASH_MAX_NODES ((size_t)1 << 20) /* more nodes: no pre-hashing, the walks hash */
#define PREHASH_GROUPS 8                     /* nodes of 1..8 keccak blocks go eight at a time */
#define CONTENT_PROBES 16                    /* then a node is taken as distinct, unshared */

/* Bytes of the verified-node cache for n_nodes nodes (load factor under 3/4). */
static size_t cache_bytes(size_t n_nodes)
{
    size_t want = n_nodes + n_nodes / 3;
    size_t cap = CACHE_MIN_ENTRIES;
    while (cap < want && cap < CACHE_MAX_ENTRIES) {
        cap <<= 1;
    }
    return cap * sizeof(spr_cache_entry);
}

/* Entries of the content table for n_nodes nodes: a power of two, load factor under 1/2. */
static size_t content_entries(size_t n_nodes)
{
    size_t cap = CACHE_MIN_ENTRIES;
    while (cap < 2 * n_nodes) {
        cap <<= 1;
    }
    return cap;
}

size_t spr_snapshot_scratch_size(size_t n_nodes)
{
    if (n_nodes == 0 || n_nodes > PREHASH_MAX_NODES) {
        return cache_bytes(n_nodes);
    }
    return cache_bytes(n_nodes) + n_nodes * sizeof(const uint8_t *) +
           content_entries(n_nodes) * sizeof(uint32_t);
}

/* A cheap fingerprint of a node's bytes (its length and three 8-byte samples) for finding
   byte-identical nodes; equal fingerprints are confirmed by memcmp. */
static inline uint64_t fingerprint(const uint8_t *p, size_t len)
{
    uint64_t h = (uint64_t)len * 0x9E3779B97F4A7C15ULL;
    if (len < 8) {
        for (size_t i = 0; i < len; i++) {
            h = (h ^ p[i]) * 0xFF51AFD7ED558CCDULL;
        }
    } else {
        const size_t at[3] = {len >= 12 ? 4 : 0, (len - 8) / 2, len - 8};
        for (int k = 0; k < 3; k++) {
            uint64_t w;
            memcpy(&w, p + at[k], sizeof w);
            h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
            h ^= h >> 32;
        }
    }
    return h ^ (h >> 29);
}

/* Up to eight distinct nodes to hash together (the same count of 136-byte blocks, except in
   the final mixed groups). */
typedef struct {
    const uint8_t *in[8];
    size_t len[8];
    uint8_t *dst[8]; /* where the digest goes; NULL: into the cache (a proof node) */
    size_t n;
} lane_group;

static void flush_group(lane_group *g, spr_hash_cache *cache, int x8)
{
    uint8_t hashes[8][32];
    uint8_t *out[8];
    for (size_t k = 0; k < 8; k++) {
        out[k] = hashes[k];
    }
    if (g->n == 1 || (g->n > 0 && !x8)) {
        for (size_t k = 0; k < g->n; k++) {
            spr_keccak256_unchecked(g->in[k], g->len[k], hashes[k]);
        }
    } else if (g->n > 1) {
        for (size_t k = g->n; k < 8; k++) { /* idle lanes repeat lane 0 */
            g->in[k] = g->in[0];
            g->len[k] = g->len[0];
        }
        spr_keccak256_x8v(g->in, g->len, out);
    }
    for (size_t k = 0; k < g->n; k++) {
        if (g->dst[k] != NULL) {
            memcpy(g->dst[k], hashes[k], 32);
            continue;
        }
        cache->hashed_nodes++;
        cache->hashed_bytes += g->len[k];
        (void)spr_cache_insert(cache, hashes[k], g->in[k], g->len[k]); /* full: walks hash */
    }
    g->n = 0;
}

static void group_add(lane_group *g, const uint8_t *in, size_t len, uint8_t *dst,
                      spr_hash_cache *cache, int x8)
{
    g->in[g->n] = in;
    g->len[g->n] = len;
    g->dst[g->n] = dst;
    if (++g->n == 8) {
        flush_group(g, cache, x8);
    }
}

/* Hash every distinct node of the call into the cache; reps[g] = the first node (pointer) with
   the bytes of node g, where nodes are numbered account nodes first, then storage nodes. The
   n_extra short messages extra_in[k] (extra_len[k] bytes: trie paths) are hashed in lanes left
   idle, into extra_out[k]. */
static void prehash(const uint8_t *account_nodes, const size_t *account_node_lens,
                    size_t account_n_nodes, const uint8_t *storage_nodes,
                    const size_t *storage_node_lens, size_t storage_n_nodes,
                    const uint8_t **reps, uint32_t *table, size_t table_entries,
                    spr_hash_cache *cache, const uint8_t *const *extra_in,
                    const size_t *extra_len, uint8_t *const *extra_out, size_t n_extra)
{
    const int x8 = spr_keccak_x8_available();
    const size_t mask = table_entries - 1;
    const size_t n = account_n_nodes + storage_n_nodes;
    lane_group groups[PREHASH_GROUPS];
    for (size_t b = 0; b < PREHASH_GROUPS; b++) {
        groups[b].n = 0;
    }
    memset(table, 0, table_entries * sizeof *table);
    const uint8_t *p = account_nodes;
    for (size_t g = 0; g < n; g++) {
        const int in_account = g < account_n_nodes;
        if (g == account_n_nodes) {
            p = storage_nodes;
        }
        const size_t len = in_account ? account_node_lens[g] : storage_node_lens[g - account_n_nodes];
        reps[g] = p;
        int distinct = 1;
        size_t i = (size_t)fingerprint(p, len) & mask;
        for (int probe = 0; probe < CONTENT_PROBES; probe++, i = (i + 1) & mask) {
            if (table[i] == 0) {
                table[i] = (uint32_t)(g + 1);
                break;
            }
            const size_t r = table[i] - 1;
            const size_t rlen = r < account_n_nodes ? account_node_lens[r]
                                                    : storage_node_lens[r - account_n_nodes];
            if (rlen == len && memcmp(reps[r], p, len) == 0) {
                reps[g] = reps[r];
                distinct = 0;
                break;
            }
        }
        if (distinct) {
            const size_t b = len / 136;
            if (b >= PREHASH_GROUPS) {
                lane_group one = {.in = {p}, .len = {len}, .dst = {NULL}, .n = 1};
                flush_group(&one, cache, x8);
            } else {
                group_add(&groups[b], p, len, NULL, cache, x8);
            }
        }
        p += len;
    }
    /* the partial groups, longest nodes first, share lanes (a lane group costs the
       permutations of its longest node) */
    lane_group mixed = {.n = 0};
    for (size_t b = PREHASH_GROUPS; b-- > 0;) {
        for (size_t k = 0; k < groups[b].n; k++) {
            group_add(&mixed, groups[b].in[k], groups[b].len[k], NULL, cache, x8);
        }
    }
    for (size_t k = 0; k < n_extra; k++) {
        group_add(&mixed, extra_in[k], extra_len[k], extra_out[k], cache, x8);
    }
    flush_group(&mixed, cache, x8);
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

    if ((account_nodes == NULL && account_nodes_len != 0) ||
        (account_node_lens == NULL && account_n_nodes != 0) ||
        sum_lens(account_node_lens, account_n_nodes) != account_nodes_len) {
        return SPR_ERR_ARG;
    }

    spr_hash_cache cache = {0};
    const uint8_t **reps = NULL;
    uint32_t *table = NULL;
    size_t table_entries = 0;
    if (account_n_nodes <= PREHASH_MAX_NODES && storage_n_nodes <= PREHASH_MAX_NODES &&
        account_n_nodes + storage_n_nodes > 0 &&
        scratch_len >= spr_snapshot_scratch_size(account_n_nodes + storage_n_nodes)) {
        /* layout: cache entries | reps | content table */
        const size_t n = account_n_nodes + storage_n_nodes;
        reps = (const uint8_t **)(void *)((uint8_t *)scratch + cache_bytes(n));
        table = (uint32_t *)(void *)(reps + n);
        table_entries = content_entries(n);
        scratch_len = cache_bytes(n);
    }
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

    /* trie paths: keccak(address); keccak(slot) eight at a time with AVX-512, except the last
       n_slots % 8 (tail) ones, which the pre-hashing fits into idle lanes */
    const int x8 = spr_keccak_x8_available();
    const size_t tail_start = n_slots - n_slots % 8;
    uint8_t path[32];
    uint8_t tail_paths[8][32];
    int tail_ready = 0;
    if (reps != NULL && cache.entries != NULL) {
        const uint8_t *extra_in[8] = {address};
        size_t extra_len[8] = {20};
        uint8_t *extra_out[8] = {path};
        size_t n_extra = 1;
        if (x8) {
            for (size_t i = tail_start; i < n_slots; i++, n_extra++) {
                extra_in[n_extra] = slots + 32 * i;
                extra_len[n_extra] = 32;
                extra_out[n_extra] = tail_paths[i - tail_start];
            }
            tail_ready = 1;
        }
        prehash(account_nodes, account_node_lens, account_n_nodes, storage_nodes,
                storage_node_lens, storage_n_nodes, reps, table, table_entries, &cache,
                extra_in, extra_len, extra_out, n_extra);
    } else {
        spr_keccak256_unchecked(address, 20, path);
    }

    /* the account proof (spr_verify_account, with the cache) */
    cache.reps = reps;
    memset(account, 0, sizeof *account);
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
            if (x8 && i < tail_start) {
                memcpy(path, paths[i % 8], 32);
            } else if (tail_ready) {
                memcpy(path, tail_paths[i - tail_start], 32);
            } else {
                spr_keccak256_unchecked(slots + 32 * i, 32, path);
            }
            cache.reps = reps != NULL ? reps + account_n_nodes + node : NULL;
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

int spr_verify_snapshot_packed(const uint8_t state_root[32], const uint8_t address[20],
                               const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                               size_t n_nodes, size_t account_n_nodes, const uint8_t *slots,
                               size_t n_slots, const size_t *proof_n_nodes, void *scratch,
                               size_t scratch_len, uint8_t *out, int *statuses,
                               spr_snapshot_stats *stats)
{
    if (out == NULL || account_n_nodes > n_nodes || (node_lens == NULL && n_nodes != 0) ||
        (nodes == NULL && nodes_len != 0)) {
        return SPR_ERR_ARG;
    }
    const size_t acc_len = sum_lens(node_lens, account_n_nodes);
    if (acc_len > nodes_len) {
        return SPR_ERR_ARG;
    }
    spr_account account;
    memset(&account, 0, sizeof account);
    const int rc = spr_verify_snapshot(
        state_root, address, nodes, acc_len, node_lens, account_n_nodes, slots, n_slots,
        nodes_len != 0 ? nodes + acc_len : NULL, nodes_len - acc_len,
        n_nodes != 0 ? node_lens + account_n_nodes : NULL, n_nodes - account_n_nodes,
        proof_n_nodes, scratch, scratch_len, &account, out + sizeof account, statuses, stats);
    memcpy(out, &account, sizeof account);
    return rc;
}
