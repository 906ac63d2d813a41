/*
 * driver.c - replay driver for the fuzz harnesses without libFuzzer: runs each harness's
 * LLVMFuzzerTestOneInput (native/fuzz/fuzz_{rlp,mpt,snapshot,merkle,verkle}.c, with every invariant they
 * check) over files. Built with -g -O1 and run under valgrind memcheck over the seed corpus
 * that native/fuzz/make_seeds.py derives from every vector (RLP fixtures, block RLP, proofs);
 * built with -fsanitize=address,undefined it replays tests/native/regressions/.
 *
 *   driver DIR                   DIR/{rlp,mpt,snapshot,merkle,verkle}/ *: each file through its harness
 *   driver KIND PATH...          KIND in rlp|mpt|snapshot|merkle|verkle; PATH a file or a directory
 *
 * Prints how many inputs of each kind ran; exits 1 if none ran (an empty corpus must not pass),
 * 2 on a usage or I/O error. An invariant violation aborts.
 */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LLVMFuzzerTestOneInput fz_rlp_one
#include "../fuzz/fuzz_rlp.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_mpt_one
#include "../fuzz/fuzz_mpt.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_snapshot_one
#include "../fuzz/fuzz_snapshot.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_merkle_one
#include "../fuzz/fuzz_merkle.c"
#undef LLVMFuzzerTestOneInput
#define LLVMFuzzerTestOneInput fz_verkle_one
#include "../fuzz/fuzz_verkle.c"
#undef LLVMFuzzerTestOneInput

typedef int (*fz_entry)(const uint8_t *, size_t);

static const struct {
    const char *name;
    fz_entry run;
} KINDS[] = {{"rlp", fz_rlp_one}, {"mpt", fz_mpt_one}, {"snapshot", fz_snapshot_one},
             {"merkle", fz_merkle_one}, {"verkle", fz_verkle_one}};

static int run_file(fz_entry run, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t cap = 4096;
    size_t len = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (buf == NULL) {
            fclose(f);
            return -1;
        }
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap) {
            break;
        }
        cap *= 2;
        uint8_t *grown = realloc(buf, cap);
        if (grown == NULL) {
            free(buf);
        }
        buf = grown;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return -1;
    }
    run(buf, len);
    free(buf);
    return 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run a file, or every regular file of a directory (sorted, not recursive). Returns the count
   run, or -1 on error. A missing directory counts as empty. */
static long run_path(fz_entry run, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        return run_file(run, path) == 0 ? 1 : -1;
    }
    DIR *dir = opendir(path);
    if (dir == NULL) {
        perror(path);
        return -1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char **grown = realloc(names, (n + 1) * sizeof *names);
        size_t plen = strlen(path) + strlen(e->d_name) + 2;
        char *full = malloc(plen);
        if (grown == NULL || full == NULL) {
            free(full);
            free(grown ? grown : names);
            closedir(dir);
            return -1;
        }
        names = grown;
        snprintf(full, plen, "%s/%s", path, e->d_name);
        names[n++] = full;
    }
    closedir(dir);
    if (n > 0) {
        qsort(names, n, sizeof *names, cmp_names);
    }
    long count = 0;
    for (size_t i = 0; i < n; i++) {
        struct stat fst;
        if (count >= 0 && stat(names[i], &fst) == 0 && S_ISREG(fst.st_mode)) {
            count = run_file(run, names[i]) == 0 ? count + 1 : -1;
        }
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv)
{
    long total = 0;
    if (argc == 2) {
        for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
            size_t plen = strlen(argv[1]) + strlen(KINDS[k].name) + 2;
            char *sub = malloc(plen);
            if (sub == NULL) {
                return 2;
            }
            snprintf(sub, plen, "%s/%s", argv[1], KINDS[k].name);
            long c = run_path(KINDS[k].run, sub);
            free(sub);
            if (c < 0) {
                return 2;
            }
            printf("%s: %ld inputs\n", KINDS[k].name, c);
            total += c;
        }
    } else if (argc >= 3) {
        fz_entry run = NULL;
        for (size_t k = 0; k < sizeof KINDS / sizeof KINDS[0]; k++) {
            if (strcmp(argv[1], KINDS[k].name) == 0) {
                run = KINDS[k].run;
            }
        }
        if (run == NULL) {
            fprintf(stderr, "unknown kind %s (rlp, mpt, snapshot, verkle)\n", argv[1]);
            return 2;
        }
        for (int i = 2; i < argc; i++) {
            long c = run_path(run, argv[i]);
            if (c < 0) {
                return 2;
            }
            total += c;
        }
        printf("%s: %ld inputs\n", argv[1], total);
    } else {
        fprintf(stderr, "usage: %s CORPUS_DIR | %s rlp|mpt|snapshot|verkle PATH...\n", argv[0], argv[0]);
        return 2;
    }
    printf("total: %ld inputs\n", total);
    return total > 0 ? 0 : 1;
}
