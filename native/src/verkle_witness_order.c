/* verkle_witness_order.c - the orderings and binary searches of the execution witness check
 * (verkle_witness.c): paths byte-lexicographic with a prefix first, openings by (path, z), keys
 * and stems by their bytes; and the opening list it builds (push_item). */
#include "verkle_witness.h"

int cmp_path(const uint8_t *a, size_t la, const uint8_t *b, size_t lb)
{
    size_t n = la < lb ? la : lb;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return (la > lb) - (la < lb);
}

int cmp_item(const void *pa, const void *pb)
{
    const vk_item *a = pa, *b = pb;
    int c = cmp_path(a->path, a->plen, b->path, b->plen);
    if (c != 0) {
        return c;
    }
    return (a->z > b->z) - (a->z < b->z);
}

int cmp_key(const void *pa, const void *pb)
{
    const key_ref *a = pa, *b = pb;
    return memcmp(a->rec, b->rec, 32);
}

int cmp_stem31(const void *pa, const void *pb)
{
    return memcmp(pa, pb, 31);
}

/* First index of the sorted stems whose first `len` bytes are >= key's. */
size_t prefix_lower_bound(const stem_info *stems, size_t n, const uint8_t *key, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(stems[mid].stem, key, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* The same over the sorted other stems (31 bytes each, back to back). */
size_t other_lower_bound(const uint8_t *others, size_t n, const uint8_t *key, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (memcmp(others + 31 * mid, key, len) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

void push_item(vk_item *items, size_t *n, const uint8_t *stem, size_t plen, int tail,
                      uint8_t z, const fe *y)
{
    vk_item *it = &items[(*n)++];
    memset(it->path, 0, sizeof it->path);
    memcpy(it->path, stem, plen);
    it->plen = (uint8_t)plen;
    if (tail >= 0) {
        it->path[plen] = (uint8_t)tail;
        it->plen = (uint8_t)(plen + 1);
    }
    it->z = z;
    it->explicit_y = y != NULL;
    if (y != NULL) {
        it->y = *y;
    } else {
        memset(&it->y, 0, sizeof it->y);
    }
}

/* Index of the distinct path equal to (p, len) in the sorted path list, or -1. */
long find_path(uint8_t (*paths)[33], size_t n, const uint8_t *p, size_t len)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_path(paths[mid], paths[mid][32], p, len);
        if (c == 0) {
            return (long)mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return -1;
}
