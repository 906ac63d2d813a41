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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    const unsigned flags = fz_u8(&r);
    uint8_t root[32];
    uint8_t address[20];
    fz_take(&r, root, 32);
    fz_take(&r, address, 20);
    const size_t n_slots = fz_u8(&r) % (FZ_MAX_SLOTS + 1u);
    uint8_t slots[32 * FZ_MAX_SLOTS];
    fz_take(&r, slots, 32 * n_slots);

    fz_proof acc;
    fz_proof storage[FZ_MAX_SLOTS];
    size_t n_read = 0;
    int oom = fz_read_proof(&r, fz_u8(&r) % (FZ_MAX_NODES + 1u), &acc) != 0;
    for (; !oom && n_read < n_slots; n_read++) {
        oom = fz_read_proof(&r, fz_u8(&r) % (FZ_MAX_NODES + 1u), &storage[n_read]) != 0;
    }
    if ((flags & 4u) && !oom && acc.n > 0) {
        spr_keccak256(acc.bytes, acc.lens[0], root);
    }

    /* all storage proofs back to back, as the API takes them */
    size_t s_len = 0;
    size_t s_n = 0;
    for (size_t i = 0; i < n_read; i++) {
        s_len += storage[i].len;
        s_n += storage[i].n;
    }
    uint8_t *s_bytes = malloc(s_len ? s_len : 1);
    size_t *s_lens = malloc((s_n ? s_n : 1) * sizeof *s_lens);
    size_t counts[FZ_MAX_SLOTS];
    const size_t entries[4] = {0, 1, 4, 0};
    size_t scratch_len = (flags & 3u) == 3u ? spr_snapshot_scratch_size(acc.n + s_n)
                                            : entries[flags & 3u] * sizeof(spr_cache_entry);
    void *scratch = scratch_len ? malloc(scratch_len) : NULL;
    if (oom || s_bytes == NULL || s_lens == NULL || (scratch_len && scratch == NULL)) {
        goto out;
    }
    size_t off = 0;
    size_t k = 0;
    for (size_t i = 0; i < n_slots; i++) {
        if (storage[i].len > 0) {
            memcpy(s_bytes + off, storage[i].bytes, storage[i].len);
        }
        off += storage[i].len;
        for (size_t j = 0; j < storage[i].n; j++) {
            s_lens[k++] = storage[i].lens[j];
        }
        counts[i] = storage[i].n;
    }

    spr_account account;
    uint8_t values[32 * FZ_MAX_SLOTS];
    int statuses[FZ_MAX_SLOTS];
    spr_snapshot_stats stats;
    int rc = spr_verify_snapshot(root, address, acc.bytes, acc.len, acc.lens, acc.n, slots,
                                 n_slots, s_bytes, s_len, s_lens, s_n, counts, scratch,
                                 scratch_len, &account, values, statuses, &stats);

    /* the reference: one proof at a time, no cache */
    spr_account want;
    int want_rc = spr_verify_account(root, address, acc.bytes, acc.len, acc.lens, acc.n, &want);
    FZ_CHECK(fz_proof_status_ok(want_rc));
    FZ_CHECK(rc == want_rc);
    FZ_CHECK(memcmp(&account, &want, sizeof want) == 0);
    /* each walked node is a cache hit or hashed once; with full scratch every distinct node was
       also hashed once up front */
    const size_t prehashed = (flags & 3u) == 3u ? acc.n + s_n : 0;
    FZ_CHECK(stats.cached_nodes <= acc.n + s_n);
    FZ_CHECK(stats.hashed_nodes + stats.cached_nodes <= acc.n + s_n + prehashed);
    const uint8_t *storage_root = want_rc == SPR_OK ? want.storage_hash : FZ_EMPTY_TRIE_ROOT;
    for (size_t i = 0; i < n_slots; i++) {
        uint8_t value[32] = {0};
        int want_s = want_rc;
        if (want_rc >= 0) {
            want_s = spr_verify_storage(storage_root, slots + 32 * i, storage[i].bytes,
                                        storage[i].len, storage[i].lens, storage[i].n, value);
        }
        FZ_CHECK(fz_proof_status_ok(want_s));
        FZ_CHECK(statuses[i] == want_s);
        FZ_CHECK(memcmp(values + 32 * i, value, 32) == 0);
    }
out:
    free(scratch);
    free(s_lens);
    free(s_bytes);
    for (size_t i = 0; i < n_read; i++) {
        free(storage[i].bytes);
    }
    free(acc.bytes);
    return 0;
}
