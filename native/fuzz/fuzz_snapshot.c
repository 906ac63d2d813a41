/*
 * fuzz_snapshot.c - libFuzzer harness for spr_verify_snapshot (one EIP-1186 eth_getProof
 * result: an account proof and its storage proofs, with the verified-node cache of batch.c).
 *
 * Input layout (see fuzz_common.h for the reader; make_seeds.py writes it):
 *   byte 0        flags: bits 0-1 scratch = 0 none, 1 one cache entry, 2 four entries,
 *                 3 spr_snapshot_scratch_size(all nodes); bit 2 set: use keccak(account node 0)
 *                 as the stateRoot
 *   32 bytes      stateRoot
 *   20 bytes      address
 *   1 byte        n_slots (mod 9), then n_slots 32-byte storage slots
 *   1 byte        account proof node count (mod FZ_MAX_NODES + 1), then those nodes
 *   per slot      1 byte node count (mod FZ_MAX_NODES + 1), then that proof's nodes
 *   (nodes: a u16 LE length then the bytes)
 *
 * Invariant (abort = crash): the snapshot answers exactly as spr_verify_account followed by
 * spr_verify_storage of each slot against the proven storageHash (the empty-trie root when the
 * account is absent; the account's error for every slot when it is rejected), whatever the
 * scratch size: the cache changes the work done, never the answer. Outputs are zero unless
 * SPR_OK, and the stats count no more hashing than there are nodes.
 */
#include "fuzz_common.h"

#define FZ_MAX_SLOTS 8

/* One input's snapshot: the proofs as read, then packed as the API takes them. */
typedef struct {
    unsigned flags;
    uint8_t root[32];
    uint8_t address[20];
    size_t n_slots;
    uint8_t slots[32 * FZ_MAX_SLOTS];
    fz_proof acc;
    fz_proof storage[FZ_MAX_SLOTS];
    size_t n_read; /* storage proofs read (each to be freed) */
    uint8_t *s_bytes; /* all storage proofs back to back: s_len bytes, s_n nodes */
    size_t s_len;
    size_t *s_lens;
    size_t s_n;
    size_t counts[FZ_MAX_SLOTS];
    void *scratch;
    size_t scratch_len;
} fz_snapshot_case;

/* The input as its layout says. 0 when out of memory. */
static int fz_snapshot_read(fz_snapshot_case *c, fz_reader *r)
{
    c->flags = fz_u8(r);
    fz_take(r, c->root, 32);
    fz_take(r, c->address, 20);
    c->n_slots = fz_u8(r) % (FZ_MAX_SLOTS + 1u);
    fz_take(r, c->slots, 32 * c->n_slots);
    int oom = fz_read_proof(r, fz_u8(r) % (FZ_MAX_NODES + 1u), &c->acc) != 0;
    for (; !oom && c->n_read < c->n_slots; c->n_read++) {
        oom = fz_read_proof(r, fz_u8(r) % (FZ_MAX_NODES + 1u), &c->storage[c->n_read]) != 0;
    }
    if ((c->flags & 4u) && !oom && c->acc.n > 0) {
        spr_keccak256(c->acc.bytes, c->acc.lens[0], c->root);
    }
    return !oom;
}

/* The storage proofs back to back, and the scratch the flags ask for. 0 when out of memory. */
static int fz_snapshot_pack(fz_snapshot_case *c)
{
    for (size_t i = 0; i < c->n_slots; i++) {
        c->s_len += c->storage[i].len;
        c->s_n += c->storage[i].n;
    }
    c->s_bytes = malloc(c->s_len ? c->s_len : 1);
    c->s_lens = malloc((c->s_n ? c->s_n : 1) * sizeof *c->s_lens);
    const size_t entries[4] = {0, 1, 4, 0};
    c->scratch_len = (c->flags & 3u) == 3u ? spr_snapshot_scratch_size(c->acc.n + c->s_n)
                                           : entries[c->flags & 3u] * sizeof(spr_cache_entry);
    c->scratch = c->scratch_len ? malloc(c->scratch_len) : NULL;
    if (c->s_bytes == NULL || c->s_lens == NULL || (c->scratch_len && c->scratch == NULL)) {
        return 0;
    }
    size_t off = 0;
    size_t k = 0;
    for (size_t i = 0; i < c->n_slots; i++) {
        if (c->storage[i].len > 0) {
            memcpy(c->s_bytes + off, c->storage[i].bytes, c->storage[i].len);
        }
        off += c->storage[i].len;
        for (size_t j = 0; j < c->storage[i].n; j++) {
            c->s_lens[k++] = c->storage[i].lens[j];
        }
        c->counts[i] = c->storage[i].n;
    }
    return 1;
}

/* spr_verify_snapshot answers as the reference (one proof at a time, no cache) does. */
static void fz_snapshot_check(fz_snapshot_case *c)
{
    const fz_proof *acc = &c->acc;
    spr_account account;
    uint8_t values[32 * FZ_MAX_SLOTS];
    int statuses[FZ_MAX_SLOTS];
    spr_snapshot_stats stats;
    int rc = spr_verify_snapshot(c->root, c->address, acc->bytes, acc->len, acc->lens, acc->n,
                                 c->slots, c->n_slots, c->s_bytes, c->s_len, c->s_lens, c->s_n,
                                 c->counts, c->scratch, c->scratch_len, &account, values,
                                 statuses, &stats);
    spr_account want;
    int want_rc =
        spr_verify_account(c->root, c->address, acc->bytes, acc->len, acc->lens, acc->n, &want);
    FZ_CHECK(fz_proof_status_ok(want_rc));
    FZ_CHECK(rc == want_rc);
    FZ_CHECK(memcmp(&account, &want, sizeof want) == 0);
    /* each walked node is a cache hit or hashed once; with full scratch every distinct node was
       also hashed once up front */
    const size_t prehashed = (c->flags & 3u) == 3u ? acc->n + c->s_n : 0;
    FZ_CHECK(stats.cached_nodes <= acc->n + c->s_n);
    FZ_CHECK(stats.hashed_nodes + stats.cached_nodes <= acc->n + c->s_n + prehashed);
    const uint8_t *storage_root = want_rc == SPR_OK ? want.storage_hash : FZ_EMPTY_TRIE_ROOT;
    for (size_t i = 0; i < c->n_slots; i++) {
        const fz_proof *pf = &c->storage[i];
        uint8_t value[32] = {0};
        int want_s = want_rc;
        if (want_rc >= 0) {
            want_s = spr_verify_storage(storage_root, c->slots + 32 * i, pf->bytes, pf->len,
                                        pf->lens, pf->n, value);
        }
        FZ_CHECK(fz_proof_status_ok(want_s));
        FZ_CHECK(statuses[i] == want_s);
        FZ_CHECK(memcmp(values + 32 * i, value, 32) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    fz_snapshot_case c;
    memset(&c, 0, sizeof c);
    if (fz_snapshot_read(&c, &r) && fz_snapshot_pack(&c)) {
        fz_snapshot_check(&c);
    }
    free(c.scratch);
    free(c.s_lens);
    free(c.s_bytes);
    for (size_t i = 0; i < c.n_read; i++) {
        free(c.storage[i].bytes);
    }
    free(c.acc.bytes);
    return 0;
}
