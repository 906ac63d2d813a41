/*
 * rlp.c - strict RLP decoding (Yellow Paper, appendix B "Recursive Length Prefix").
 *
 * Only the canonical encoding of each value is accepted: a single byte below 0x80 must encode
 * itself, payloads shorter than 56 bytes must use the short form, length fields have no leading
 * zero bytes, every length stays inside its enclosing list or buffer, and nothing follows the
 * top-level item. Decoding is iterative: nesting depth never costs stack.
 */
#include "spr_internal.h"

int spr_rlp_decode(const uint8_t *data, size_t len, spr_rlp_item *items, size_t max_items,
                   size_t *n_items)
{
    if (n_items == NULL || (data == NULL && len != 0) || (items == NULL && max_items != 0)) {
        return SPR_ERR_ARG;
    }
    *n_items = 0;
    if (len == 0) {
        return SPR_ERR_RLP_EMPTY;
    }
    size_t n = 0;
    size_t pos = 0;
    size_t limit = len;     /* end of the innermost open list (or of the input) */
    size_t cur = SIZE_MAX;  /* index of the innermost open list */
    for (;;) {
        spr_rlp_head h;
        int rc = spr_rlp_head_parse(data, pos, limit, &h);
        if (rc != SPR_OK) {
            return rc;
        }
        if (n == max_items) {
            return SPR_ERR_BUFFER;
        }
        items[n].offset = h.off;
        items[n].length = h.len;
        items[n].count = 0;
        items[n].parent = cur;
        items[n].is_list = h.is_list;
        if (cur != SIZE_MAX) {
            items[cur].count++;
        }
        if (h.is_list && h.len > 0) {
            cur = n;
            limit = h.end;
            pos = h.off;
        } else {
            pos = h.end;
            /* close every list that this item completes */
            while (cur != SIZE_MAX && pos == items[cur].offset + items[cur].length) {
                cur = items[cur].parent;
            }
            limit = cur == SIZE_MAX ? len : items[cur].offset + items[cur].length;
        }
        n++;
        if (cur == SIZE_MAX) {
            break;
        }
    }
    if (pos != len) {
        return SPR_ERR_RLP_TRAILING;
    }
    *n_items = n;
    return SPR_OK;
}

int spr_rlp_check_seq(const uint8_t *d, size_t start, size_t end)
{
    size_t stack[SPR_NODE_MAX_NEST];
    size_t sp = 0;
    size_t pos = start;
    size_t limit = end;
    for (;;) {
        while (pos == limit) {
            if (sp == 0) {
                return SPR_OK;
            }
            limit = stack[--sp];
        }
        spr_rlp_head h;
        int rc = spr_rlp_head_parse(d, pos, limit, &h);
        if (rc != SPR_OK) {
            return rc;
        }
        if (h.is_list && h.len > 0) {
            if (sp == SPR_NODE_MAX_NEST) {
                return SPR_ERR_MALFORMED_NODE;
            }
            stack[sp++] = limit;
            limit = h.end;
            pos = h.off;
        } else {
            pos = h.end;
        }
    }
}
