/* The seccomp sysinfo suite's probe, built static by tests/seccomp_sysinfo.rs and run inside runc
 * containers (whose busybox root has no libc):
 *   probe values       sysinfo(2)'s fields and sysconf(_SC_PHYS_PAGES), one "name value" a line
 *   probe hostile      NULL, read-only, unmapped and munmap-racing buffers: each errno, one a line
 *   probe loop N       N calls; prints "ns_per_call <ns>"
 *   probe threads T N  T threads making N calls each; prints "failed <count>"
 *   probe survive TOTALRAM STOPFILE
 *                      calls sysinfo in a loop until STOPFILE exists (at most 120 s): prints "ready" once
 *                      the first call returned, then at the end "calls", "failed" (not 0), "wrong"
 *                      (totalram != TOTALRAM) and "max_stall_ns", and before them a line
 *                      "stall <start ns, CLOCK_REALTIME> <ns>" for each call that took over 20 ms */
#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <time.h>
#include <unistd.h>

static int call(void *buffer) {
    return sysinfo(buffer) == 0 ? 0 : errno;
}

static volatile int racing = 1;
static void *volatile race_page;

static void *remap(void *unused) {
    (void)unused;
    long size = sysconf(_SC_PAGESIZE);
    while (racing) {
        munmap(race_page, size);
        mmap(race_page, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    }
    return NULL;
}

static long calls_each;
static volatile long failures;

static void *hammer(void *unused) {
    (void)unused;
    struct sysinfo info;
    for (long i = 0; i < calls_each; i++)
        if (sysinfo(&info) != 0 || info.totalram == 0)
            __atomic_add_fetch(&failures, 1, __ATOMIC_RELAXED);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "values") == 0) {
        struct sysinfo s;
        if (sysinfo(&s) != 0) {
            printf("error %d\n", errno);
            return 1;
        }
        printf("uptime %ld\nload1 %lu\nload5 %lu\nload15 %lu\n", s.uptime, s.loads[0], s.loads[1], s.loads[2]);
        printf("totalram %lu\nfreeram %lu\nsharedram %lu\nbufferram %lu\n", s.totalram, s.freeram, s.sharedram, s.bufferram);
        printf("totalswap %lu\nfreeswap %lu\nprocs %u\nmem_unit %u\n", s.totalswap, s.freeswap, s.procs, s.mem_unit);
        printf("phys_pages %ld\npage_size %ld\n", sysconf(_SC_PHYS_PAGES), sysconf(_SC_PAGESIZE));
        return 0;
    }
    if (strcmp(argv[1], "hostile") == 0) {
        long size = sysconf(_SC_PAGESIZE);
        printf("null %d\n", call(NULL));
        void *ro = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        printf("readonly %d\n", call(ro));
        void *gone = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(gone, size);
        printf("unmapped %d\n", call(gone));
        /* The struct straddling the end of a writable page into an unmapped one. */
        char *two = mmap(NULL, 2 * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(two + size, size);
        printf("straddling %d\n", call(two + size - 16));
        race_page = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        pthread_t thread;
        pthread_create(&thread, NULL, remap, NULL);
        long ok = 0, fault = 0, other = 0;
        for (int i = 0; i < 5000; i++) {
            int e = call(race_page);
            if (e == 0) ok++; else if (e == EFAULT) fault++; else other++;
        }
        racing = 0;
        pthread_join(thread, NULL);
        printf("race_ok %ld\nrace_efault %ld\nrace_other %ld\n", ok, fault, other);
        struct sysinfo s;
        printf("valid %d\n", call(&s));
        return 0;
    }
    if (strcmp(argv[1], "loop") == 0 && argc > 2) {
        long n = atol(argv[2]);
        struct sysinfo s;
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++)
            sysinfo(&s);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
        printf("ns_per_call %.0f\n", ns / n);
        return 0;
    }
    if (strcmp(argv[1], "survive") == 0 && argc > 3) {
        unsigned long expected = strtoul(argv[2], NULL, 10);
        const char *stop = argv[3];
        struct sysinfo s;
        struct timespec begin, a, b, wall;
        long calls = 0, failed = 0, wrong = 0;
        int64_t max_stall = 0;
        clock_gettime(CLOCK_MONOTONIC, &begin);
        for (;;) {
            clock_gettime(CLOCK_REALTIME, &wall);
            clock_gettime(CLOCK_MONOTONIC, &a);
            int r = sysinfo(&s);
            clock_gettime(CLOCK_MONOTONIC, &b);
            calls++;
            if (r != 0)
                failed++;
            else if (s.totalram * s.mem_unit != expected)
                wrong++;
            int64_t ns = (int64_t)(b.tv_sec - a.tv_sec) * 1000000000 + (b.tv_nsec - a.tv_nsec);
            if (ns > max_stall)
                max_stall = ns;
            if (ns > 20000000)
                printf("stall %lld %lld\n", (long long)wall.tv_sec * 1000000000LL + wall.tv_nsec, (long long)ns);
            if (calls == 1) {
                printf("ready\n");
                fflush(stdout);
            }
            if (calls % 256 == 0 && (access(stop, F_OK) == 0 || b.tv_sec - begin.tv_sec > 120))
                break;
        }
        printf("calls %ld\nfailed %ld\nwrong %ld\nmax_stall_ns %lld\n", calls, failed, wrong, (long long)max_stall);
        return 0;
    }
    if (strcmp(argv[1], "threads") == 0 && argc > 3) {
        int count = atoi(argv[2]);
        calls_each = atol(argv[3]);
        pthread_t threads[256];
        if (count > 256) count = 256;
        for (int i = 0; i < count; i++)
            pthread_create(&threads[i], NULL, hammer, NULL);
        for (int i = 0; i < count; i++)
            pthread_join(threads[i], NULL);
        printf("failed %ld\n", failures);
        return 0;
    }
    return 2;
}
