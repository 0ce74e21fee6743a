/* probe: makes syscalls from inside a container and prints what happened,
 * one `name=ok:RET` or `name=err:ERRNO` line per call (seccomp tests).
 *
 *   probe sys NAME [ARG...]    raw syscall NAME with up to 6 numeric args
 *   probe each NAME IDX V...   NAME once per value V, V as argument IDX
 *   probe mkdir PATH...        mkdir(PATH, 0755), then whether PATH exists
 *   probe sigmkdir PATH        mkdir(PATH, 0755) with a SIGUSR1 handler
 *                              (no SA_RESTART), then "sigusr1=COUNT"
 *   probe trap NAME            NAME under a SIGSYS handler: prints siginfo
 *   probe thread NAME          NAME in a second thread, then "main alive"
 *   probe keys                 add_key, keyctl, request_key
 *   probe loop NAME N [ARG...] N raw NAME calls: "ns_per_call=X"
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const struct { const char *name; long nr; } calls[] = {
    {"getppid", SYS_getppid}, {"getpid", SYS_getpid}, {"getuid", SYS_getuid},
    {"gettid", SYS_gettid}, {"getpgrp", SYS_getpgrp}, {"sched_yield", SYS_sched_yield},
    {"getcpu", SYS_getcpu}, {"close_range", SYS_close_range}, {"mkdir", SYS_mkdir},
    {"mkdirat", SYS_mkdirat}, {"add_key", SYS_add_key}, {"keyctl", SYS_keyctl},
    {"request_key", SYS_request_key}, {"clone3", SYS_clone3}, {"unshare", SYS_unshare},
    {"personality", SYS_personality}, {"ptrace", SYS_ptrace}, {"bpf", SYS_bpf},
    {"perf_event_open", SYS_perf_event_open}, {"kexec_load", SYS_kexec_load},
    {"kexec_file_load", SYS_kexec_file_load}, {"init_module", SYS_init_module},
    {"finit_module", SYS_finit_module}, {"delete_module", SYS_delete_module},
    {"open_by_handle_at", SYS_open_by_handle_at}, {"mount", SYS_mount},
    {"umount2", SYS_umount2}, {"setns", SYS_setns}, {"userfaultfd", SYS_userfaultfd},
    {"io_uring_setup", SYS_io_uring_setup}, {"syslog", SYS_syslog},
    {"settimeofday", SYS_settimeofday}, {"getrandom", SYS_getrandom},
    {"membarrier", SYS_membarrier}, {"uname", SYS_uname}, {"kcmp", SYS_kcmp},
};

static long nr_of(const char *name) {
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        if (!strcmp(calls[i].name, name)) return calls[i].nr;
    fprintf(stderr, "probe: unknown syscall %s\n", name);
    exit(2);
}

static void report(const char *name, long r) {
    if (r < 0) printf("%s=err:%d\n", name, errno);
    else printf("%s=ok:%ld\n", name, r);
    fflush(stdout);
}

static long call(long nr, const unsigned long *a) {
    errno = 0;
    return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

static volatile sig_atomic_t got_code = -1, got_syscall = -1, got_errno = -1;
static volatile unsigned got_arch;

static void on_sigsys(int sig, siginfo_t *si, void *uc) {
    (void)sig; (void)uc;
    got_code = si->si_code;
    got_syscall = si->si_syscall;
    got_errno = si->si_errno;
    got_arch = si->si_arch;
}

static volatile sig_atomic_t usr1_count;
static void on_usr1(int sig) { (void)sig; usr1_count++; }

static const char *thread_call;
static void *thread_main(void *arg) {
    (void)arg;
    unsigned long a[6] = {0};
    report(thread_call, call(nr_of(thread_call), a));
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *mode = argv[1];
    unsigned long a[6] = {0};
    if (!strcmp(mode, "sys") && argc >= 3) {
        for (int i = 3; i < argc && i < 9; i++) a[i - 3] = strtoull(argv[i], NULL, 0);
        report(argv[2], call(nr_of(argv[2]), a));
    } else if (!strcmp(mode, "each") && argc >= 4) {
        long nr = nr_of(argv[2]);
        int idx = atoi(argv[3]);
        for (int i = 4; i < argc; i++) {
            a[idx] = strtoull(argv[i], NULL, 0);
            long r = call(nr, a);
            if (r < 0) printf("%s=err:%d\n", argv[i], errno);
            else printf("%s=ok\n", argv[i]);
        }
    } else if (!strcmp(mode, "mkdir")) {
        for (int i = 2; i < argc; i++) {
            errno = 0;
            report("mkdir", mkdir(argv[i], 0755));
            struct stat st;
            printf("exists=%d\n", stat(argv[i], &st) == 0);
        }
    } else if (!strcmp(mode, "sigmkdir") && argc == 3) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sigaction(SIGUSR1, &sa, NULL);
        errno = 0;
        report("mkdir", mkdir(argv[2], 0755));
        printf("sigusr1=%d\n", (int)usr1_count);
    } else if (!strcmp(mode, "trap") && argc == 3) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigsys;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSYS, &sa, NULL);
        long nr = nr_of(argv[2]);
        report(argv[2], call(nr, a));
        printf("sigsys code=%d syscall=%d nr=%ld errno=%d arch=%#x\n", (int)got_code,
               (int)got_syscall, nr, (int)got_errno, got_arch);
    } else if (!strcmp(mode, "thread") && argc == 3) {
        pthread_t t;
        thread_call = argv[2];
        if (pthread_create(&t, NULL, thread_main, NULL)) return 3;
        pthread_join(t, NULL);
        printf("main alive\n");
    } else if (!strcmp(mode, "keys")) {
        errno = 0;
        report("add_key", syscall(SYS_add_key, "user", "oxit", "x", 1, -2 /* session */));
        errno = 0;
        report("keyctl", syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -2, 0));
        errno = 0;
        report("request_key", syscall(SYS_request_key, "user", "oxit", NULL, 0));
    } else if (!strcmp(mode, "loop") && argc >= 4) {
        long nr = nr_of(argv[2]);
        long n = atol(argv[3]);
        for (int i = 4; i < argc && i < 10; i++) a[i - 4] = strtoull(argv[i], NULL, 0);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < n; i++) syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
        printf("ns_per_call=%.2f\n", ns / n);
    } else {
        fprintf(stderr, "probe: bad arguments\n");
        return 2;
    }
    return 0;
}
