/* Crash with SIGSEGV at a known address with known register values, so a test
 * can check what `cdh inspect` reads from the core against what it put there. */
#include <stdio.h>

int main(void) {
    puts("about to crash");
    fflush(stdout);
#if defined(__x86_64__)
    __asm__ volatile(
        "movabs $0x1111111111111111, %%rbx\n\t"
        "movabs $0x1212121212121212, %%r12\n\t"
        "movabs $0x1313131313131313, %%r13\n\t"
        "movabs $0x1414141414141414, %%r14\n\t"
        "movabs $0x1515151515151515, %%r15\n\t"
        "movabs $0x1234deadbeef, %%rax\n\t"
        "movq (%%rax), %%rax\n\t"
        ::: "rax", "rbx", "r12", "r13", "r14", "r15", "memory");
#elif defined(__aarch64__)
    __asm__ volatile(
        "movz x19, #0x1919\n\t"
        "movz x20, #0x2020\n\t"
        "movz x0, #0xbeef\n\t"
        "movk x0, #0xdead, lsl #16\n\t"
        "movk x0, #0x1234, lsl #32\n\t"
        "ldr x0, [x0]\n\t"
        ::: "x0", "x19", "x20", "memory");
#else
    *(volatile int *)0 = 1;
#endif
    return 0;
}
