/* One container lifecycle as a shim drives it, for scripts/bench.sh:
 * become a child subreaper, `create` (the init is re-parented to us when
 * the runtime exits), `start`, wait for the init's exit, `delete`.
 *
 *   bench-lifecycle RUNTIME STATE-ROOT BUNDLE ID [GLOBAL-OPTION...]
 *
 * GLOBAL-OPTIONs (at most 8) go to every runtime call after --root, e.g.
 * --systemd-cgroup for scripts/bench-systemd.sh.
 * Compiled by bench.sh with the system C compiler; exit status 0 on success.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* RUNTIME --root ROOT GLOBAL-OPTION... ARGS...: run it, its exit status */
static char **global;
static int nglobal;
static int call(char *rt, char *root, char *const args[])
{
    char *argv[24];
    int n = 0;
    argv[n++] = rt;
    argv[n++] = "--root";
    argv[n++] = root;
    for (int i = 0; i < nglobal; i++)
        argv[n++] = global[i];
    for (int i = 0; args[i] && n < 23; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return run(argv);
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 13) {
        fprintf(stderr, "usage: %s RUNTIME STATE-ROOT BUNDLE ID [GLOBAL-OPTION...]\n", argv[0]);
        return 2;
    }
    char *rt = argv[1], *root = argv[2], *bundle = argv[3], *id = argv[4];
    global = argv + 5;
    nglobal = argc - 5;
    char pidfile[4096];
    snprintf(pidfile, sizeof pidfile, "%s/%s.pid", root, id);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    char *create[] = {"create", "--pid-file", pidfile, "-b", bundle, id, NULL};
    if (call(rt, root, create) != 0) {
        fprintf(stderr, "create failed\n");
        return 1;
    }
    FILE *f = fopen(pidfile, "r");
    int init = 0;
    if (!f || fscanf(f, "%d", &init) != 1) {
        fprintf(stderr, "no pid file\n");
        return 1;
    }
    fclose(f);
    unlink(pidfile);
    char *start[] = {"start", id, NULL};
    if (call(rt, root, start) != 0) {
        fprintf(stderr, "start failed\n");
        return 1;
    }
    int st;
    pid_t p;
    while ((p = waitpid(-1, &st, 0)) > 0 && p != init)
        ;
    if (p != init) {
        fprintf(stderr, "init %d was not reaped here\n", init);
        return 1;
    }
    char *del[] = {"delete", id, NULL};
    if (call(rt, root, del) != 0) {
        fprintf(stderr, "delete failed\n");
        return 1;
    }
    return 0;
}
