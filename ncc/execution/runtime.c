/* ncc's profile runtime: writes the counters of an instrumented program when it exits.
 *
 * The instrumented IR defines __ncc_counters (uint64 array) and __ncc_counter_total (its length). At start-up
 * the constructor remembers the process id and the path in $NCC_PROFILE_OUTPUT; at exit (after atexit handlers
 * and C++ static destructors, from .fini_array) the destructor of the first process writes
 * "NCCPROF1", the count and the counters (little-endian uint64) to that path. Forked children write nothing.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern uint64_t __ncc_counters[];
extern const uint64_t __ncc_counter_total;

static char ncc_output_path[4096];
static pid_t ncc_owner;

__attribute__((constructor(101))) static void ncc_profile_start(void) {
    const char *path = getenv("NCC_PROFILE_OUTPUT");
    if (path != NULL && strlen(path) < sizeof ncc_output_path) {
        strcpy(ncc_output_path, path);
    }
    ncc_owner = getpid();
}

static int ncc_write_all(int fd, const void *data, size_t size) {
    const char *bytes = data;
    while (size > 0) {
        ssize_t written = write(fd, bytes, size);
        if (written <= 0) {
            return -1;
        }
        bytes += written;
        size -= (size_t)written;
    }
    return 0;
}

__attribute__((destructor(101))) static void ncc_profile_write(void) {
    if (ncc_output_path[0] == '\0' || getpid() != ncc_owner) {
        return;
    }
    int fd = open(ncc_output_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        return;
    }
    uint64_t total = __ncc_counter_total;
    if (ncc_write_all(fd, "NCCPROF1", 8) == 0 && ncc_write_all(fd, &total, sizeof total) == 0) {
        ncc_write_all(fd, __ncc_counters, (size_t)(total * sizeof(uint64_t)));
    }
    close(fd);
}
