/* A wall clock the tests can step: preloaded into herald (LD_PRELOAD), it adds to CLOCK_REALTIME
 * the number of seconds written in the file named by HERALD_TEST_CLOCK_SHIFT_FILE, read on every
 * call. Every other clock (the monotonic one herald's timers use) is left alone.
 *
 * Debian's libfaketime does this too, but deadlocks in a program linked with jemalloc: jemalloc
 * reads the clock while it initializes, and libfaketime allocates while it does. Here nothing
 * allocates: the real clock is read with the raw system call, the file with open/read/close. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long shift_seconds(void) {
    const char *path = getenv("HERALD_TEST_CLOCK_SHIFT_FILE");
    if (path == NULL) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char text[32];
    ssize_t got = read(fd, text, sizeof text - 1);
    close(fd);
    if (got <= 0) return 0;
    text[got] = '\0';
    return strtol(text, NULL, 10);
}

int clock_gettime(clockid_t clock, struct timespec *now) {
    long failed = syscall(SYS_clock_gettime, clock, now);
    if (failed == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) {
        now->tv_sec += shift_seconds();
    }
    return (int)failed;
}
