/* runner REPORT_FD ARGV...: run ARGV, then write its rusage to REPORT_FD.
 *
 * Why a C program: a child forked by Python inherits Python's peak RSS
 * (ru_maxrss survives exec; CPython spawns with vfork), so `cat` would show
 * 12 MiB. Forked from this small process, the child's figure is its own.
 * The report line: "<exit status> <user s> <system s> <max RSS KiB>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc < 3) return 127;
    FILE *report = fdopen(atoi(argv[1]), "w");
    if (!report) return 127;
    pid_t pid = fork();
    if (pid < 0) return 127;
    if (pid == 0) {
        fclose(report);
        execvp(argv[2], argv + 2);
        _exit(127);
    }
    int status;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) return 127;
    fprintf(report, "%d %ld.%06ld %ld.%06ld %ld\n", status, (long)ru.ru_utime.tv_sec,
            (long)ru.ru_utime.tv_usec, (long)ru.ru_stime.tv_sec, (long)ru.ru_stime.tv_usec, ru.ru_maxrss);
    fclose(report);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
