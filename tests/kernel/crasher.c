/* A process that crashes on purpose, for the kernel tests.
 *
 *   crasher segv | abort | evil | threads | big MIB
 *
 * evil: renames itself "../../evil" (PR_SET_NAME) first, so %e tries to escape CORE_DIR
 *       (the kernel writes it as "..!..!evil"; the composer must not need that help).
 * threads: four threads; a non-main thread crashes while the others run.
 * big: touches MIB mebibytes of non-zero memory first, for a larger core.
 */
#include <pthread.h>
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

static void *spin(void *arg) {
    (void)arg;
    for (;;) pause();
    return NULL;
}

static void *crash_later(void *arg) {
    (void)arg;
    usleep(10000);
    segv();
    return NULL;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "segv";
    if (!strcmp(mode, "abort")) abort();
    if (!strcmp(mode, "evil")) {
        prctl(PR_SET_NAME, "../../evil", 0, 0, 0);
        segv();
    }
    if (!strcmp(mode, "threads")) {
        pthread_t t[4];
        for (int i = 0; i < 3; i++) pthread_create(&t[i], NULL, spin, NULL);
        pthread_create(&t[3], NULL, crash_later, NULL);
        pthread_join(t[3], NULL);
    }
    if (!strcmp(mode, "big")) {
        size_t n = (size_t)atol(argc > 2 ? argv[2] : "64") << 20;
        volatile unsigned char *m = malloc(n);  /* volatile: the stores must not be optimised away */
        for (size_t i = 0; i < n; i++) m[i] = (unsigned char)(i * 2654435761u >> 13);
    }
    segv();
    return 0;
}
