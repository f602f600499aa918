/* Several threads; one worker crashes with SIGSEGV while the others wait.
 * On x86_64 the crashing worker puts its own thread id in r12 first, so a test
 * can check that the core's first NT_PRSTATUS is the crashing thread. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WORKERS 4
static pthread_barrier_t started;

static void crash(void) {
    long tid = syscall(SYS_gettid);
#if defined(__x86_64__)
    __asm__ volatile("movq %0, %%r12\n\t"
                     "xorl %%eax, %%eax\n\t"
                     "movq (%%rax), %%rax\n\t"
                     :: "r"(tid) : "rax", "r12", "memory");
#else
    (void)tid;
    *(volatile int *)0 = 1;
#endif
}

static void *worker(void *arg) {
    long n = (long)(intptr_t)arg;
    pthread_barrier_wait(&started);
    if (n == WORKERS - 1)
        crash();
    for (;;)
        pause();
    return NULL;
}

int main(void) {
    pthread_t t[WORKERS];
    pthread_barrier_init(&started, NULL, WORKERS + 1);
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    printf("started %d workers\n", WORKERS);
    fflush(stdout);
    pthread_barrier_wait(&started);
    for (;;)
        pause();
}
