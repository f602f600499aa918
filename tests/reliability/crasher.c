/* Processes that crash on purpose, for the reliability suite (real kernel, real cores).
 *
 *   crasher segv                 crash at once (SIGSEGV)
 *   crasher big MIB [random]     fill MIB MiB of heap first (compressible text-like pages, or
 *                                 incompressible with "random"), then crash: a core of about MIB MiB
 *   crasher name COMM            set comm to COMM (prctl PR_SET_NAME: any bytes but NUL, 15 kept)
 *   crasher host NAME            new UTS namespace with hostname NAME (what %h reports), then crash
 *   crasher wait FILE            crash once FILE exists (crash storms start together)
 *
 * Modes combine left to right: `crasher name x big 64 wait /tmp/go` renames, fills, waits, crashes.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static void segv(void) {
    volatile int *p = (volatile int *)16;
    *p = 1;
}

static void fill(size_t mib, int random) {
    size_t n = mib << 20;
    volatile unsigned char *m = malloc(n);
    if (!m) abort();
    unsigned long x = 88172645463325252ul;
    for (size_t i = 0; i < n; i++) {
        if (random) {  /* xorshift64: no compressor finds anything */
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            m[i] = (unsigned char)x;
        } else {       /* text-like: a line with a counter every 64 bytes, compresses ~10:1 */
            m[i] = (i % 64 == 0) ? (unsigned char)('0' + (i >> 6) % 10) : "stack frame 0x7f "[i % 17];
        }
    }
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "segv")) {
            segv();
        } else if (!strcmp(argv[i], "big") && i + 1 < argc) {
            size_t mib = (size_t)atol(argv[++i]);
            int random = i + 1 < argc && !strcmp(argv[i + 1], "random");
            if (random) i++;
            fill(mib, random);
        } else if (!strcmp(argv[i], "name") && i + 1 < argc) {
            prctl(PR_SET_NAME, argv[++i], 0, 0, 0);
        } else if (!strcmp(argv[i], "host") && i + 1 < argc) {
            const char *h = argv[++i];
            if (unshare(CLONE_NEWUTS) || sethostname(h, strlen(h))) { perror("host"); return 2; }
        } else if (!strcmp(argv[i], "wait") && i + 1 < argc) {
            const char *f = argv[++i];
            while (access(f, F_OK)) usleep(2000);
        } else {
            fprintf(stderr, "crasher: unknown mode %s\n", argv[i]);
            return 2;
        }
    }
    segv();
    return 0;
}
