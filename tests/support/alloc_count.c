// tests/support/alloc_count.c: an LD_PRELOAD library that counts heap allocations in a process,
// so a test can check that the real fusebox worker allocates nothing per request in steady state.
// SIGUSR2 writes "<allocations>\n" to $ALLOC_COUNT_DIR/<pid>.count. Counts malloc, calloc,
// realloc and the aligned allocators (operator new goes through malloc in libstdc++).
// Not a leak checker, and not for production: it only counts.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

static atomic_ulong allocations;

void* malloc(size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* memalign(size_t align, size_t n) {
  atomic_fetch_add_explicit(&allocations, 1, memory_order_relaxed);
  return __libc_memalign(align, n);
}
void* aligned_alloc(size_t align, size_t n) { return memalign(align, n); }
int posix_memalign(void** out, size_t align, size_t n) {
  void* p = memalign(align, n);
  if (!p) return 12;  // ENOMEM
  *out = p;
  return 0;
}

// Async-signal-safe: no stdio, no allocation.
static void on_usr2(int signum) {
  (void)signum;
  const char* dir = getenv("ALLOC_COUNT_DIR");
  if (!dir) return;
  char path[512], digits[32], line[40];
  size_t n = strlen(dir);
  if (n > sizeof path - 40) return;
  memcpy(path, dir, n);
  path[n++] = '/';
  unsigned long pid = (unsigned long)getpid(), v;
  size_t d = 0;
  do { digits[d++] = (char)('0' + pid % 10); pid /= 10; } while (pid);
  while (d) path[n++] = digits[--d];
  memcpy(path + n, ".count", 7);
  v = atomic_load(&allocations);
  size_t l = 0;
  do { digits[d++] = (char)('0' + v % 10); v /= 10; } while (v);
  while (d) line[l++] = digits[--d];
  line[l++] = '\n';
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  ssize_t ignored = write(fd, line, l);
  (void)ignored;
  close(fd);
}

__attribute__((constructor)) static void install(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr2;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR2, &sa, NULL);
}
