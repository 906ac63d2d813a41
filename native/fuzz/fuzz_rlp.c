/*
 * fuzz_rlp.c - libFuzzer harness for the strict RLP decoder (Yellow Paper, appendix B):
 * spr_rlp_decode and spr_rlp_check_seq over the raw input bytes.
 *
 * Invariants checked on every input (abort = crash):
 *  - the status is SPR_OK or one of SPR_ERR_RLP_* (never SPR_ERR_ARG / SPR_ERR_BUFFER with
 *    max_items = len, which the header promises always suffices);
 *  - on success the items form a pre-order tree: item 0 is the top level and spans the whole
 *    input, each parent is an earlier list, each payload lies inside its parent's payload, the
 *    children counts add up;
 *  - decoding with fewer item slots gives the same result or SPR_ERR_BUFFER;
 *  - a successfully decoded list's payload is a valid item sequence for spr_rlp_check_seq
 *    (or too deeply nested: SPR_ERR_MALFORMED_NODE).
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A successful decoding's n items form a pre-order tree over buf[0..size), and a top-level
   list's payload is a valid item sequence (or too deeply nested). */
static void fz_rlp_check_tree(const uint8_t *buf, size_t size, const spr_rlp_item *items,
                              size_t n)
{
    FZ_CHECK(n >= 1 && n <= size);
    FZ_CHECK(items[0].parent == SIZE_MAX);
    FZ_CHECK(items[0].offset + items[0].length == size);
    size_t children = 0;
    for (size_t i = 0; i < n; i++) {
        const spr_rlp_item *it = &items[i];
        FZ_CHECK(it->offset <= size && it->length <= size - it->offset);
        FZ_CHECK(it->is_list || it->count == 0);
        children += it->count;
        if (i > 0) {
            FZ_CHECK(it->parent < i);
            const spr_rlp_item *p = &items[it->parent];
            FZ_CHECK(p->is_list);
            FZ_CHECK(it->offset >= p->offset && it->offset + it->length <= p->offset + p->length);
        }
    }
    FZ_CHECK(children == n - 1);
    if (items[0].is_list) {
        int seq = spr_rlp_check_seq(buf, items[0].offset, items[0].offset + items[0].length);
        FZ_CHECK(seq == SPR_OK || seq == SPR_ERR_MALFORMED_NODE);
    }
}

/* Decoding with size / 4 item slots: the same answer (rc, n items), or "buffer too small". */
static void fz_rlp_check_fewer_slots(const uint8_t *buf, size_t size, spr_rlp_item *items,
                                     int rc, size_t n)
{
    size_t small = size / 4;
    size_t n2 = 0;
    int rc2 = spr_rlp_decode(buf, size, items, small, &n2);
    if (rc2 == SPR_ERR_BUFFER) {
        FZ_CHECK(rc == SPR_OK ? n > small : 1);
    } else {
        FZ_CHECK(rc2 == rc);
        FZ_CHECK(rc != SPR_OK || n2 == n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* an exact-size copy: reads past the input are caught even when libFuzzer's buffer is larger */
    uint8_t *buf = malloc(size ? size : 1);
    size_t cap = size ? size : 1;
    spr_rlp_item *items = malloc(cap * sizeof *items);
    if (buf == NULL || items == NULL) {
        free(buf);
        free(items);
        return 0;
    }
    if (size > 0) {
        memcpy(buf, data, size);
    }
    size_t n = 0;
    int rc = spr_rlp_decode(size ? buf : NULL, size, items, size, &n);
    FZ_CHECK(rc == SPR_OK || rc == SPR_ERR_RLP_TRUNCATED || rc == SPR_ERR_RLP_NONCANONICAL ||
             rc == SPR_ERR_RLP_TRAILING || rc == SPR_ERR_RLP_EMPTY);
    FZ_CHECK((rc == SPR_ERR_RLP_EMPTY) == (size == 0));
    if (rc == SPR_OK) {
        fz_rlp_check_tree(buf, size, items, n);
    }
    if (size > 1) {
        fz_rlp_check_fewer_slots(buf, size, items, rc, n);
    }
    /* the whole input as an item sequence: only RLP statuses or the nesting limit */
    int seq = spr_rlp_check_seq(buf, 0, size);
    FZ_CHECK(seq == SPR_OK || seq == SPR_ERR_RLP_TRUNCATED || seq == SPR_ERR_RLP_NONCANONICAL ||
             seq == SPR_ERR_MALFORMED_NODE);
    free(items);
    free(buf);
    return 0;
}
