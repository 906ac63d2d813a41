/*
 * account.c - the values an EIP-1186 proof proves: an account rlp([nonce, balance, storageRoot,
 * codeHash]) (Yellow Paper 4.1) at keccak256(address) in the state trie, a storage word rlp(value)
 * at keccak256(slot) in the account's storage trie; each proof walked by mpt.c.
 */
#include "spr_internal.h"

/* A canonical RLP integer (no leading zero byte) of at most 32 bytes, as a 32-byte word. */
static int canonical_uint(const uint8_t *d, const spr_rlp_head *h, uint8_t out[32])
{
    if (h->is_list || h->len > 32 || (h->len > 0 && d[h->off] == 0)) {
        return SPR_ERR_BAD_VALUE;
    }
    memset(out, 0, 32);
    memcpy(out + 32 - h->len, d + h->off, h->len);
    return SPR_OK;
}

int spr_verify_account(const uint8_t state_root[32], const uint8_t address[20],
                       const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                       size_t n_nodes, spr_account *account)
{
    if (state_root == NULL || address == NULL || account == NULL) {
        return SPR_ERR_ARG;
    }
    memset(account, 0, sizeof *account);
    uint8_t path[32];
    spr_keccak256_unchecked(address, 20, path);
    size_t vo;
    size_t vl;
    int rc = spr_mpt_verify(state_root, path, 32, nodes, nodes_len, node_lens, n_nodes, &vo, &vl);
    if (rc != SPR_OK) {
        return rc;
    }
    return spr_account_from_value(nodes + vo, vl, account);
}

int spr_account_from_value(const uint8_t *v, size_t vl, spr_account *account)
{
    /* rlp([nonce, balance, storageRoot, codeHash]) (Yellow Paper 4.1) */
    memset(account, 0, sizeof *account);
    spr_rlp_head top;
    spr_rlp_head f[4];
    if (spr_rlp_head_parse(v, 0, vl, &top) != SPR_OK || !top.is_list || top.end != vl) {
        return SPR_ERR_BAD_VALUE;
    }
    size_t pos = top.off;
    for (int i = 0; i < 4; i++) {
        if (spr_rlp_head_parse(v, pos, top.end, &f[i]) != SPR_OK) {
            return SPR_ERR_BAD_VALUE;
        }
        pos = f[i].end;
    }
    if (pos != top.end) {
        return SPR_ERR_BAD_VALUE;
    }
    if (canonical_uint(v, &f[0], account->nonce) != SPR_OK ||
        canonical_uint(v, &f[1], account->balance) != SPR_OK) {
        memset(account, 0, sizeof *account);
        return SPR_ERR_BAD_VALUE;
    }
    if (f[2].is_list || f[2].len != 32 || f[3].is_list || f[3].len != 32) {
        memset(account, 0, sizeof *account);
        return SPR_ERR_BAD_VALUE;
    }
    memcpy(account->storage_hash, v + f[2].off, 32);
    memcpy(account->code_hash, v + f[3].off, 32);
    return SPR_OK;
}

int spr_verify_storage(const uint8_t storage_hash[32], const uint8_t slot[32],
                       const uint8_t *nodes, size_t nodes_len, const size_t *node_lens,
                       size_t n_nodes, uint8_t value_out[32])
{
    if (storage_hash == NULL || slot == NULL || value_out == NULL) {
        return SPR_ERR_ARG;
    }
    memset(value_out, 0, 32);
    uint8_t path[32];
    spr_keccak256_unchecked(slot, 32, path);
    size_t vo;
    size_t vl;
    int rc =
        spr_mpt_verify(storage_hash, path, 32, nodes, nodes_len, node_lens, n_nodes, &vo, &vl);
    if (rc != SPR_OK) {
        return rc;
    }
    return spr_storage_from_value(nodes + vo, vl, value_out);
}

int spr_storage_from_value(const uint8_t *v, size_t vl, uint8_t value_out[32])
{
    /* the leaf holds rlp(value) with value a non-zero 256-bit word (zero slots are deleted),
       or rlp(0) = 0x80 alone: a slot set back to zero that the node kept as a leaf (anvil
       does), value 0 */
    memset(value_out, 0, 32);
    spr_rlp_head h;
    if (spr_rlp_head_parse(v, 0, vl, &h) != SPR_OK || h.end != vl ||
        canonical_uint(v, &h, value_out) != SPR_OK) {
        memset(value_out, 0, 32);
        return SPR_ERR_BAD_VALUE;
    }
    return SPR_OK;
}
