/* One container lifecycle as a shim drives it, for scripts/bench.sh:
 * become a child subreaper, `create` (the init is re-parented to us when
 * the runtime exits), `start`, wait for the init's exit, `delete`.
 *
 *   bench-lifecycle RUNTIME STATE-ROOT BUNDLE ID
 *
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

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s RUNTIME STATE-ROOT BUNDLE ID\n", argv[0]);
        return 2;
    }
    char *rt = argv[1], *root = argv[2], *bundle = argv[3], *id = argv[4];
    char pidfile[4096];
    snprintf(pidfile, sizeof pidfile, "%s/%s.pid", root, id);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("PR_SET_CHILD_SUBREAPER");
        return 1;
    }
    char *create[] = {rt, "--root", root, "create", "--pid-file", pidfile, "-b", bundle, id, NULL};
    if (run(create) != 0) {
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
    char *start[] = {rt, "--root", root, "start", id, NULL};
    if (run(start) != 0) {
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
    char *del[] = {rt, "--root", root, "delete", id, NULL};
    if (run(del) != 0) {
        fprintf(stderr, "delete failed\n");
        return 1;
    }
    return 0;
}
