/* Crashes with known call stacks, for the stack trace and signature tests (cdh/stack/).
 *
 *   stack segv | abort_a | abort_b | assert | handler | threads | deep [N]
 *
 * segv     main -> outer -> middle -> inner: a NULL store three calls deep.
 * abort_a  main -> path_a -> site_a -> abort();  abort_b: the same through path_b -> site_b.
 * assert   main -> check_value -> assert() fails (__assert_fail -> abort).
 * handler  a SIGSEGV handler that calls abort(), as the JVM and Python's faulthandler do: the
 *          trace crosses the signal frame to the real fault in inner().
 * threads  three threads blocked in different places; a fourth faults in outer() as segv does.
 * deep N   N frames of recurse() before the fault (default 200).
 *
 * Every function is noinline and does work after its call, so -O2 keeps one frame per function
 * (no tail calls). One byte on stdout just before the crash.
 */
#include <assert.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))
volatile int sink;
int *volatile null_ptr;  /* 0 at run time, unknown to the compiler (a literal NULL store becomes ud2) */

NOINLINE void inner(int x) { *null_ptr = x; sink = x; }
NOINLINE void middle(int x) { inner(x + 1); sink += x; }
NOINLINE void outer(int x) { middle(x + 1); sink += x; }

NOINLINE void site_a(int x) { if (x >= 0) abort(); sink = x; }
NOINLINE void path_a(int x) { site_a(x + 1); sink += x; }
NOINLINE void site_b(int x) { if (x >= 0) abort(); sink = x; }
NOINLINE void path_b(int x) { site_b(x + 2); sink += x; }

NOINLINE void check_value(int x) { assert(x < 0); sink = x; }

NOINLINE int recurse(int n) {
    if (n <= 0) { inner(n); return 0; }
    int r = recurse(n - 1);
    sink += r;
    return r + 1;
}

static void on_segv(int sig) {
    static const char m[] = "handler: fatal signal\n";
    (void)sig;
    if (write(2, m, sizeof m - 1) < 0) sink = -1;
    abort();
}

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
NOINLINE void *worker_wait(void *a) { pthread_mutex_lock(&mu); for (;;) pthread_cond_wait(&cv, &mu); return a; }
NOINLINE void *worker_sleep(void *a) { for (;;) sleep(100); return a; }
NOINLINE void *worker_spin(void *a) { for (;;) sink++; return a; }
NOINLINE void *worker_crash(void *a) { usleep(20000); outer(1); sink += 1; return a; }

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "segv";
    if (write(1, "!", 1) < 0) sink = -1;
    if (!strcmp(mode, "segv")) outer(1);
    else if (!strcmp(mode, "abort_a")) path_a(1);
    else if (!strcmp(mode, "abort_b")) path_b(1);
    else if (!strcmp(mode, "assert")) check_value(1);
    else if (!strcmp(mode, "handler")) { signal(SIGSEGV, on_segv); outer(1); }
    else if (!strcmp(mode, "deep")) recurse(argc > 2 ? atoi(argv[2]) : 200);
    else if (!strcmp(mode, "threads")) {
        pthread_t t[4];
        pthread_create(&t[0], NULL, worker_wait, NULL);
        pthread_create(&t[1], NULL, worker_sleep, NULL);
        pthread_create(&t[2], NULL, worker_spin, NULL);
        pthread_create(&t[3], NULL, worker_crash, NULL);
        pthread_join(t[3], NULL);
    }
    return 0;
}
