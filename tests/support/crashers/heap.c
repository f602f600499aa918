/* A process with a realistic heap that then crashes, for the benchmarks' input cores.
 *
 *   heap MIB [SEED]
 *
 * Fills about MIB mebibytes of heap, deterministically for a given SEED, with
 * what real heaps hold, in interleaved 1-4 MiB regions (so no stretch of the
 * core is all one kind):
 *   35% zero pages (allocated, never written: the kernel dumps them as zeros)
 *   25% text records (log lines with varying fields)
 *   25% pointer arrays (linked nodes pointing into the heap, keys, small ints)
 *   15% random blobs (already compressed or encrypted data)
 * then dies of SIGSEGV.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static uint64_t rng;

static uint64_t next(void) {  /* xorshift64* */
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545F4914F6CDD1DULL;
}

static void fill_random(unsigned char *p, size_t n) {
    for (size_t i = 0; i + 8 <= n; i += 8) {
        uint64_t v = next();
        memcpy(p + i, &v, 8);
    }
}

static const char *LEVELS[] = {"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"};
static const char *PATHS[] = {"/api/v1/orders", "/api/v1/users", "/healthz", "/api/v2/search",
                              "/static/app.js", "/api/v1/cart/items", "/metrics", "/login"};
static const char *USERS[] = {"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"};

static void fill_text(unsigned char *p, size_t n) {
    size_t off = 0;
    char line[256];
    while (off < n) {
        uint64_t r = next();
        int len = snprintf(line, sizeof line,
                           "2024-06-10T%02u:%02u:%02u.%03uZ %-5s req=%016llx user=%s path=%s/%u "
                           "status=%u dur_ms=%u bytes=%u\n",
                           (unsigned)(r % 24), (unsigned)(r >> 8) % 60, (unsigned)(r >> 16) % 60,
                           (unsigned)(r >> 24) % 1000, LEVELS[(r >> 34) % 6],
                           (unsigned long long)next(), USERS[(r >> 37) % 8], PATHS[(r >> 40) % 8],
                           (unsigned)(r >> 43) % 100000, (r >> 60) ? 200u : 500u,
                           (unsigned)(r >> 47) % 2000, (unsigned)(r >> 50) % 65536);
        size_t take = (size_t)len < n - off ? (size_t)len : n - off;
        memcpy(p + off, line, take);
        off += take;
    }
}

struct node {
    struct node *next, *prev;
    void *value;
    uint64_t key;
    uint32_t refs, flags;
    double score;
};

static void fill_pointers(unsigned char *p, size_t n) {
    struct node *nodes = (struct node *)p;
    size_t count = n / sizeof(struct node);
    for (size_t i = 0; i < count; i++) {
        uint64_t r = next();
        nodes[i].next = &nodes[(i + 1 + r % 64) % count];
        nodes[i].prev = i ? &nodes[i - 1] : NULL;
        nodes[i].value = (r & 1) ? (void *)(p + (r >> 8) % n) : NULL;
        nodes[i].key = i * 7919;
        nodes[i].refs = 1 + (unsigned)(r >> 32) % 4;
        nodes[i].flags = (unsigned)(r >> 40) & 0x7;
        nodes[i].score = (double)(r % 1000) / 10.0;
    }
}

int main(int argc, char **argv) {
    size_t total = (size_t)atol(argc > 1 ? argv[1] : "64") << 20;
    rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)atol(argc > 2 ? argv[2] : "1");
    unsigned char *heap = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (heap == MAP_FAILED) return 2;
    /* Kinds by weight out of 20: zero 7, text 5, pointers 5, random 3. */
    static const char KINDS[20] = "ZZZZZZZTTTTTPPPPPRRR";
    size_t off = 0;
    while (off < total) {
        size_t len = ((size_t)1 + next() % 4) << 20;
        if (len > total - off) len = total - off;
        switch (KINDS[next() % 20]) {
            case 'T': fill_text(heap + off, len); break;
            case 'P': fill_pointers(heap + off, len); break;
            case 'R': fill_random(heap + off, len); break;
            default: break; /* zero: never written */
        }
        off += len;
    }
    printf("%zu\n", total);
    fflush(stdout);
    *(volatile int *)16 = 1;
    return 0;
}
