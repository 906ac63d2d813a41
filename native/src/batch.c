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

/* The nodes of one call, numbered account nodes first, then storage nodes: node g >= account_n
   is storage node g - account_n. */
typedef struct {
    const uint8_t *account;
    const size_t *account_lens;
    size_t account_n;
    const uint8_t *storage;
    const size_t *storage_lens;
    size_t storage_n;
} node_sets;

static inline size_t node_len(const node_sets *s, size_t g)
{
    return g < s->account_n ? s->account_lens[g] : s->storage_lens[g - s->account_n];
}

/* Scratch beyond the cache, for pre-hashing: reps[g] = the first node (pointer) with the bytes
   of node g, and the content table (table_entries, a power of two) finding it. */
typedef struct {
    const uint8_t **reps; /* NULL: no pre-hashing (too little scratch, or too many nodes) */
    uint32_t *table;
    size_t table_entries;
} prehash_space;

/* Enter node g (len bytes at p) into the content table: 1 when it is the first node of the call
   with these bytes (reps[g] = p), else 0 (reps[g] = that first node). After CONTENT_PROBES
   occupied probes a node counts as first, unshared. */
static inline int first_of_its_bytes(const node_sets *s, const prehash_space *sp, size_t g,
                                     const uint8_t *p, size_t len)
{
    const size_t mask = sp->table_entries - 1;
    sp->reps[g] = p;
    size_t i = (size_t)fingerprint(p, len) & mask;
    for (int probe = 0; probe < CONTENT_PROBES; probe++, i = (i + 1) & mask) {
        if (sp->table[i] == 0) {
            sp->table[i] = (uint32_t)(g + 1);
            return 1;
        }
        const size_t r = sp->table[i] - 1;
        if (node_len(s, r) == len && memcmp(sp->reps[r], p, len) == 0) {
            sp->reps[g] = sp->reps[r];
            return 0;
        }
    }
    return 1;
}

/* Hash every distinct node of the call into the cache, filling sp's reps. The short messages of
   `extra` (trie paths, each with its destination) are hashed in lanes left idle. */
static void prehash(const node_sets *s, const prehash_space *sp, spr_hash_cache *cache,
                    const lane_group *extra)
{
    const int x8 = spr_keccak_x8_available();
    const size_t n = s->account_n + s->storage_n;
    lane_group groups[PREHASH_GROUPS];
    for (size_t b = 0; b < PREHASH_GROUPS; b++) {
        groups[b].n = 0;
    }
    memset(sp->table, 0, sp->table_entries * sizeof *sp->table);
    const uint8_t *p = s->account;
    for (size_t g = 0; g < n; g++) {
        if (g == s->account_n) {
            p = s->storage;
        }
        const size_t len = node_len(s, g);
        if (first_of_its_bytes(s, sp, g, p, len)) {
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
    for (size_t k = 0; k < extra->n; k++) {
        group_add(&mixed, extra->in[k], extra->len[k], extra->dst[k], cache, x8);
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

/* The node counts and lengths add up: the proofs' node counts partition the storage nodes, the
   lengths of each set its bytes. */
static int sizes_consistent(const node_sets *s, size_t account_nodes_len,
                            size_t storage_nodes_len, const size_t *proof_n_nodes, size_t n_slots)
{
    size_t counted = 0;
    for (size_t i = 0; i < n_slots; i++) {
        if (proof_n_nodes[i] > s->storage_n - counted) {
            return 0;
        }
        counted += proof_n_nodes[i];
    }
    if (counted != s->storage_n || sum_lens(s->storage_lens, s->storage_n) != storage_nodes_len) {
        return 0;
    }
    return (s->account != NULL || account_nodes_len == 0) &&
           (s->account_lens != NULL || s->account_n == 0) &&
           sum_lens(s->account_lens, s->account_n) == account_nodes_len;
}

/* Lay out the scratch (cache entries | reps | content table) and set up the cache in it. With
   more than PREHASH_MAX_NODES nodes in all (spr_snapshot_scratch_size then counts the cache
   only), or too little scratch for pre-hashing them, all of it goes to the cache. */
static prehash_space scratch_layout(void *scratch, size_t scratch_len, const node_sets *s,
                                    spr_hash_cache *cache)
{
    prehash_space sp = {NULL, NULL, 0};
    const size_t n = s->account_n + s->storage_n;
    if (s->account_n <= PREHASH_MAX_NODES && s->storage_n <= PREHASH_MAX_NODES - s->account_n &&
        n > 0 && scratch_len >= spr_snapshot_scratch_size(n)) {
        sp.reps = (const uint8_t **)(void *)((uint8_t *)scratch + cache_bytes(n));
        sp.table = (uint32_t *)(void *)(sp.reps + n);
        sp.table_entries = content_entries(n);
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
        cache->entries = (spr_cache_entry *)scratch;
        cache->mask = pow2 - 1;
        cache->limit = pow2 - 1 - pow2 / 4; /* < capacity: probing always meets a free entry */
        memset(cache->entries, 0, pow2 * sizeof(spr_cache_entry));
    }
    return sp;
}

/* keccak(slot) of the call's slots: eight at a time with AVX-512 (`batch`, refilled at every
   eighth slot), except the last n_slots % 8 (from tail_start), which pre-hashing fits into idle
   lanes (`tail`, when tail_ready). */
typedef struct {
    int x8;
    int tail_ready;
    size_t tail_start;
    uint8_t batch[8][32];
    uint8_t tail[8][32];
} slot_paths;

/* The trie path keccak(address) of the account into path[32], and with pre-hashing every
   distinct node into the cache and (x8) the tail of the slots' paths into paths->tail. */
static void hash_ahead(const node_sets *s, const prehash_space *sp, spr_hash_cache *cache,
                       const uint8_t address[20], uint8_t path[32], const uint8_t *slots,
                       size_t n_slots, slot_paths *paths)
{
    if (sp->reps == NULL || cache->entries == NULL) {
        spr_keccak256_unchecked(address, 20, path);
        return;
    }
    lane_group extra = {.in = {address}, .len = {20}, .dst = {path}, .n = 1};
    if (paths->x8) {
        for (size_t i = paths->tail_start; i < n_slots; i++, extra.n++) {
            extra.in[extra.n] = slots + 32 * i;
            extra.len[extra.n] = 32;
            extra.dst[extra.n] = paths->tail[i - paths->tail_start];
        }
        paths->tail_ready = 1;
    }
    prehash(s, sp, cache, &extra);
}

/* The trie path keccak(slot i) into path[32] (slots are taken in order). */
static inline void slot_path(slot_paths *paths, const uint8_t *slots, size_t n_slots, size_t i,
                             uint8_t path[32])
{
    if (paths->x8 && i % 8 == 0 && n_slots - i >= 8) {
        const uint8_t *in[8];
        uint8_t *out[8];
        for (size_t k = 0; k < 8; k++) {
            in[k] = slots + 32 * (i + k);
            out[k] = paths->batch[k];
        }
        spr_keccak256_x8(in, 32, out);
    }
    if (paths->x8 && i < paths->tail_start) {
        memcpy(path, paths->batch[i % 8], 32);
    } else if (paths->tail_ready) {
        memcpy(path, paths->tail[i - paths->tail_start], 32);
    } else {
        spr_keccak256_unchecked(slots + 32 * i, 32, path);
    }
}

/* Each slot's storage proof against storage_root (with the cache): its value into values[32 i],
   its status into statuses[i]. */
static void walk_storage_proofs(const uint8_t storage_root[32], const node_sets *s,
                                const prehash_space *sp, spr_hash_cache *cache,
                                const uint8_t *slots, size_t n_slots, const size_t *proof_n_nodes,
                                slot_paths *paths, uint8_t *values, int *statuses)
{
    size_t node = 0; /* index of proof i's first node */
    size_t off = 0;  /* its offset in the storage nodes */
    for (size_t i = 0; i < n_slots; i++) {
        const size_t n = proof_n_nodes[i];
        const size_t len = sum_lens(s->storage_lens + node, n);
        uint8_t path[32];
        slot_path(paths, slots, n_slots, i, path);
        cache->reps = sp->reps != NULL ? sp->reps + s->account_n + node : NULL;
        size_t vo = 0;
        size_t vl = 0;
        int rc = spr_mpt_walk(storage_root, path, 32, s->storage + off, len,
                              s->storage_lens + node, n, &vo, &vl, cache);
        if (rc == SPR_OK) {
            rc = spr_storage_from_value(s->storage + off + vo, vl, values + 32 * i);
        }
        statuses[i] = rc;
        node += n;
        off += len;
    }
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
    const node_sets s = {account_nodes,   account_node_lens, account_n_nodes,
                         storage_nodes,   storage_node_lens, storage_n_nodes};
    if (state_root == NULL || address == NULL || account == NULL ||
        (n_slots != 0 && (slots == NULL || values == NULL || statuses == NULL ||
                          proof_n_nodes == NULL)) ||
        (storage_nodes == NULL && storage_nodes_len != 0) ||
        (storage_node_lens == NULL && storage_n_nodes != 0) ||
        (scratch == NULL && scratch_len != 0) ||
        ((uintptr_t)scratch % alignof(spr_cache_entry)) != 0 ||
        !sizes_consistent(&s, account_nodes_len, storage_nodes_len, proof_n_nodes, n_slots)) {
        return SPR_ERR_ARG;
    }
    spr_hash_cache cache = {0};
    const prehash_space sp = scratch_layout(scratch, scratch_len, &s, &cache);
    slot_paths paths = {.x8 = spr_keccak_x8_available(), .tail_start = n_slots - n_slots % 8};
    uint8_t path[32];
    hash_ahead(&s, &sp, &cache, address, path, slots, n_slots, &paths);

    /* the account proof (spr_verify_account, with the cache) */
    cache.reps = sp.reps;
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
        walk_storage_proofs(acc == SPR_OK ? account->storage_hash : EMPTY_TRIE_ROOT, &s, &sp,
                            &cache, slots, n_slots, proof_n_nodes, &paths, values, statuses);
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
