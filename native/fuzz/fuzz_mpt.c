/*
 * fuzz_mpt.c - libFuzzer harness for Merkle-Patricia proof verification (Yellow Paper,
 * appendix D; EIP-1186): spr_mpt_verify, spr_verify_account, spr_verify_storage.
 *
 * Input layout (see fuzz_common.h for the reader; make_seeds.py writes it):
 *   byte 0        mode: bits 0-1 = 0 spr_mpt_verify, 1 spr_verify_account, 2 spr_verify_storage,
 *                 3 spr_mpt_verify; bit 2 set: use keccak(node 0) as the root, so mutated
 *                 proofs still get past the root check
 *   32 bytes      root (stateRoot / storageHash)
 *   key           mode 0/3: one length byte (mod 33) then the key; mode 1: a 20-byte address;
 *                 mode 2: a 32-byte storage slot
 *   rest          proof nodes, each a u16 LE length then the node bytes
 *
 * Invariants (abort = crash): the status is one the header documents for consistent
 * arguments; an inclusion's value lies inside the proof buffer; spr_mpt_walk with a verified-
 * node cache (batch.c's path) answers exactly as without; account / storage results equal
 * spr_mpt_verify on keccak(address / slot) followed by the value decoding, and outputs are
 * zero unless SPR_OK.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* spr_mpt_walk through a small verified-node cache; must equal the uncached walk. */
static int fz_mpt_cached_walk(const uint8_t root[32], const uint8_t *key, size_t key_len,
                              const fz_proof *pf, size_t *vo, size_t *vl)
{
    spr_cache_entry entries[16];
    memset(entries, 0, sizeof entries);
    spr_hash_cache cache = {0};
    cache.entries = entries;
    cache.mask = 15;
    cache.limit = 11;
    int rc = spr_mpt_walk(root, key, key_len, pf->bytes, pf->len, pf->lens, pf->n, vo, vl, &cache);
    FZ_CHECK(cache.hashed_nodes <= pf->n);
    return rc;
}

/* spr_mpt_verify: a documented status; an inclusion's value inside the proof buffer, else a
   zero (offset, length); the cached walk answers the same. */
static void fz_mpt_check_verify(const uint8_t root[32], const uint8_t *key, size_t key_len,
                                const fz_proof *pf)
{
    size_t vo = 0;
    size_t vl = 0;
    int rc = spr_mpt_verify(root, key, key_len, pf->bytes, pf->len, pf->lens, pf->n, &vo, &vl);
    FZ_CHECK(fz_proof_status_ok(rc) && rc != SPR_ERR_BAD_VALUE);
    if (rc == SPR_OK) {
        FZ_CHECK(vl > 0 && vo <= pf->len && vl <= pf->len - vo);
    } else {
        FZ_CHECK(vo == 0 && vl == 0);
    }
    size_t vo2 = 0;
    size_t vl2 = 0;
    int rc2 = fz_mpt_cached_walk(root, key, key_len, pf, &vo2, &vl2);
    FZ_CHECK(rc2 == rc && vo2 == vo && vl2 == vl);
}

/* spr_verify_account equals spr_mpt_verify on keccak(address) and the account decoding; the
   account is zero unless SPR_OK. */
static void fz_mpt_check_account(const uint8_t root[32], const uint8_t address[20],
                                 const fz_proof *pf)
{
    spr_account acc;
    int rc = spr_verify_account(root, address, pf->bytes, pf->len, pf->lens, pf->n, &acc);
    FZ_CHECK(fz_proof_status_ok(rc));
    uint8_t path[32];
    spr_keccak256(address, 20, path);
    size_t vo = 0;
    size_t vl = 0;
    int raw = spr_mpt_verify(root, path, 32, pf->bytes, pf->len, pf->lens, pf->n, &vo, &vl);
    spr_account again;
    memset(&again, 0, sizeof again);
    if (raw == SPR_OK) {
        raw = spr_account_from_value(pf->bytes + vo, vl, &again);
    }
    FZ_CHECK(raw == rc);
    FZ_CHECK(memcmp(&acc, &again, sizeof acc) == 0);
    if (rc != SPR_OK) {
        FZ_CHECK(fz_is_zero((const uint8_t *)&acc, sizeof acc));
    }
}

/* spr_verify_storage equals spr_mpt_verify on keccak(slot) and the value decoding; the value is
   zero unless SPR_OK, and zero with SPR_OK only from a leaf holding rlp(0) = 0x80 (anvil's
   zeroed slot). */
static void fz_mpt_check_storage(const uint8_t root[32], const uint8_t slot[32],
                                 const fz_proof *pf)
{
    uint8_t value[32];
    int rc = spr_verify_storage(root, slot, pf->bytes, pf->len, pf->lens, pf->n, value);
    FZ_CHECK(fz_proof_status_ok(rc));
    uint8_t path[32];
    spr_keccak256(slot, 32, path);
    size_t vo = 0;
    size_t vl = 0;
    int raw = spr_mpt_verify(root, path, 32, pf->bytes, pf->len, pf->lens, pf->n, &vo, &vl);
    uint8_t again[32] = {0};
    if (raw == SPR_OK) {
        raw = spr_storage_from_value(pf->bytes + vo, vl, again);
    }
    FZ_CHECK(raw == rc);
    FZ_CHECK(memcmp(value, again, 32) == 0);
    FZ_CHECK(rc == SPR_OK ? (!fz_is_zero(value, 32) || (vl == 1 && pf->bytes[vo] == 0x80))
                          : fz_is_zero(value, 32));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    const unsigned mode = fz_u8(&r);
    uint8_t root[32];
    fz_take(&r, root, 32);
    uint8_t key[32];
    size_t key_len = 32;
    const unsigned kind = mode & 3u;
    if (kind == 0 || kind == 3) {
        key_len = fz_u8(&r) % 33u;
        fz_take(&r, key, key_len);
    } else if (kind == 1) {
        key_len = 20;
        fz_take(&r, key, 20);
    } else {
        fz_take(&r, key, 32);
    }
    fz_proof pf;
    if (fz_read_proof(&r, SIZE_MAX, &pf) != 0) {
        return 0;
    }
    if ((mode & 4u) && pf.n > 0) {
        spr_keccak256(pf.bytes, pf.lens[0], root);
    }
    if (kind == 0 || kind == 3) {
        fz_mpt_check_verify(root, key, key_len, &pf);
    } else if (kind == 1) {
        fz_mpt_check_account(root, key, &pf);
    } else {
        fz_mpt_check_storage(root, key, &pf);
    }
    free(pf.bytes);
    return 0;
}
