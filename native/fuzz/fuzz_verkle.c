/*
 * fuzz_verkle.c - libFuzzer harness for the Verkle (EIP-6800) functions of spr.h.
 *
 * Input layout (make_seeds.py writes it from tests/vectors/verkle):
 *   byte 0   mode (mod 4):
 *     0  spr_verkle_verify_witness: 32-byte pre-state root, then the rest is the witness
 *        (the layout of spr.h);
 *     1  spr_banderwagon_decode of the next 32 bytes;
 *     2  spr_verkle_multiproof_verify: label length (mod 16) and label, n (mod 9), n x (32-byte
 *        commitment, z byte, 32-byte y), 576-byte proof;
 *     3  spr_verkle_transcript over the rest (the script layout of spr.h).
 * Every variable-length piece is copied into an exact-size heap buffer, so ASan and valgrind see
 * a read past its end.
 *
 * Invariants (abort = crash): every status is SPR_OK or one the function documents; a verified
 * witness outputs exactly its claims (flag and value of each key, in order) and verifies again
 * the same way; a decoded point re-encodes to the input bytes (encodings are canonical) and
 * decoding is deterministic; a transcript replay is deterministic.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int verkle_status_ok(int st)
{
    switch (st) {
    case SPR_OK:
    case SPR_ERR_VERKLE_ENCODING:
    case SPR_ERR_VERKLE_NONCANONICAL:
    case SPR_ERR_VERKLE_NOT_ON_CURVE:
    case SPR_ERR_VERKLE_INCONSISTENT:
    case SPR_ERR_VERKLE_PROOF_MISMATCH:
    case SPR_ERR_VERKLE_LIMIT:
        return 1;
    default:
        return 0;
    }
}

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    if (b != NULL && n > 0) {
        memcpy(b, p, n);
    }
    return b;
}

static void fuzz_witness(fz_reader *r)
{
    uint8_t root[32];
    fz_take(r, root, 32);
    uint8_t *w = dup_exact(r->p, r->n);
    if (w == NULL) {
        return;
    }
    size_t n = r->n;
    size_t n_keys = n >= 4 ? (size_t)w[0] | (size_t)w[1] << 8 | (size_t)w[2] << 16 | (size_t)w[3] << 24 : 0;
    size_t out_len = n_keys <= SPR_VERKLE_MAX_KEYS ? 33 * n_keys : 0;
    uint8_t *out = malloc(out_len ? out_len : 1);
    if (out == NULL) {
        free(w);
        return;
    }
    spr_verkle_stats stats;
    int st = spr_verkle_verify_witness(root, w, n, out, out_len, &stats);
    FZ_CHECK(verkle_status_ok(st) || (st == SPR_ERR_BUFFER && out_len < 33 * n_keys));
    if (st == SPR_OK) {
        FZ_CHECK(stats.n_keys == n_keys && stats.n_queries > 0 && stats.n_commitments > 0);
        for (size_t i = 0; i < n_keys; i++) {
            const uint8_t *rec = w + 4 + SPR_VERKLE_KEY_RECORD_LEN * i;
            FZ_CHECK(out[33 * i] == rec[32] && memcmp(out + 33 * i + 1, rec + 33, 32) == 0);
        }
        FZ_CHECK(spr_verkle_verify_witness(root, w, n, NULL, 0, NULL) == SPR_OK);
    }
    free(out);
    free(w);
}

static void fuzz_decode(fz_reader *r)
{
    uint8_t in[32], out[64], again[64], enc[32];
    fz_take(r, in, 32);
    int st = spr_banderwagon_decode(in, out);
    FZ_CHECK(st == SPR_OK || st == SPR_ERR_VERKLE_NONCANONICAL || st == SPR_ERR_VERKLE_NOT_ON_CURVE);
    if (st == SPR_OK) {
        FZ_CHECK(spr_banderwagon_encode(out, enc) == SPR_OK && memcmp(enc, in, 32) == 0);
        FZ_CHECK(spr_banderwagon_decode(enc, again) == SPR_OK && memcmp(again, out, 64) == 0);
        uint8_t m[32];
        FZ_CHECK(spr_banderwagon_map_to_field(out, m) == SPR_OK);
    }
}

static void fuzz_multiproof(fz_reader *r)
{
    uint8_t label[16];
    size_t ll = fz_u8(r) % 16u;
    fz_take(r, label, ll);
    size_t n = fz_u8(r) % 9u;
    uint8_t comms[8 * 32], zs[8], ys[8 * 32], proof[576];
    for (size_t i = 0; i < n; i++) {
        fz_take(r, comms + 32 * i, 32);
        zs[i] = (uint8_t)fz_u8(r);
        fz_take(r, ys + 32 * i, 32);
    }
    fz_take(r, proof, 576);
    uint8_t *c = dup_exact(comms, 32 * n), *z = dup_exact(zs, n), *y = dup_exact(ys, 32 * n);
    if (c != NULL && z != NULL && y != NULL) {
        int st = spr_verkle_multiproof_verify(label, ll, c, z, y, n, proof);
        FZ_CHECK(verkle_status_ok(st) && st != SPR_ERR_VERKLE_LIMIT && st != SPR_ERR_VERKLE_INCONSISTENT);
    }
    free(c);
    free(z);
    free(y);
}

static void fuzz_transcript(fz_reader *r)
{
    uint8_t *ops = dup_exact(r->p, r->n);
    if (ops == NULL) {
        return;
    }
    uint8_t a[32], b[32];
    int st = spr_verkle_transcript(ops, r->n, a);
    FZ_CHECK(st == SPR_OK || st == SPR_ERR_VERKLE_ENCODING || st == SPR_ERR_VERKLE_NONCANONICAL ||
             st == SPR_ERR_VERKLE_NOT_ON_CURVE);
    if (st == SPR_OK) {
        FZ_CHECK(spr_verkle_transcript(ops, r->n, b) == SPR_OK && memcmp(a, b, 32) == 0);
    }
    free(ops);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    switch (fz_u8(&r) % 4u) {
    case 0:
        fuzz_witness(&r);
        break;
    case 1:
        fuzz_decode(&r);
        break;
    case 2:
        fuzz_multiproof(&r);
        break;
    default:
        fuzz_transcript(&r);
        break;
    }
    return 0;
}
