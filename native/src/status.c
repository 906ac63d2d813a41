/* status.c - the interface version and the messages for the status codes of spr.h. */
#include "spr_internal.h"
#include "verkle_internal.h"

int spr_version(void)
{
    return SPR_VERSION;
}

const char *spr_strerror(int status)
{
    switch (status) {
    case SPR_OK:
        return "ok";
    case SPR_ABSENT:
        return "key proven absent (valid exclusion proof)";
    case SPR_ERR_ARG:
        return "invalid argument";
    case SPR_ERR_BUFFER:
        return "output buffer too small";
    case SPR_ERR_RLP_TRUNCATED:
        return "RLP item runs past the end of its enclosing list or buffer";
    case SPR_ERR_RLP_NONCANONICAL:
        return "non-canonical RLP encoding";
    case SPR_ERR_RLP_TRAILING:
        return "trailing bytes after the RLP item";
    case SPR_ERR_RLP_EMPTY:
        return "empty RLP input";
    case SPR_ERR_HASH_MISMATCH:
        return "proof node hash does not match its reference";
    case SPR_ERR_MISSING_NODE:
        return "proof node referenced by hash is missing from the proof";
    case SPR_ERR_TRAILING_NODES:
        return "proof has unused trailing nodes";
    case SPR_ERR_TOO_DEEP:
        return "proof deeper than any trie path (depth > 64)";
    case SPR_ERR_MALFORMED_NODE:
        return "malformed trie node";
    case SPR_ERR_BAD_VALUE:
        return "proven value is not a canonical account or storage value";
    case SPR_ERR_MULTIPROOF:
        return "invalid Merkle multiproof (lengths, or proof hashes missing or unused)";
    default:
        return vk_strerror(status); /* Verkle statuses, else "unknown status" */
    }
}
