/*
 * A fake vendor runtime for tests: the same C symbols as libcudart (FAKE_CUDA), libamdhip64
 * (FAKE_HIP) or libascendcl (FAKE_ACL), with host memory inside and a call log.
 *
 * Build: cc -shared -fPIC -DFAKE_CUDA -DFAKE_LOG_PATH='"/tmp/x/cuda.log"' fake_runtime.c -o libcudart.so
 *
 * Every call appends one line to FAKE_LOG_PATH: `<function> key=value ...`. "Device" memory is
 * host memory tracked in an allocation table, so copies are checked like a real runtime would:
 * a memcpy whose kind (H2D, D2H, D2D, H2H) does not match where its pointers live, or that runs
 * past an allocation, or that runs on a thread that never selected a device, fails with error 1;
 * so does an aclrtMemcpyAsync whose host side is not aclrtMallocHost memory (as on real Ascend).
 * Environment: KVMGR_FAKE_DEVICES (device count, default 2); KVMGR_FAKE_FAIL (name of one
 * function that returns error 2).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FAKE_LOG_PATH
#error "define FAKE_LOG_PATH"
#endif

#if defined(FAKE_CUDA)
#define P(name) cuda##name
#elif defined(FAKE_HIP)
#define P(name) hip##name
#elif !defined(FAKE_ACL)
#error "define FAKE_CUDA, FAKE_HIP or FAKE_ACL"
#endif

#define EXPORT __attribute__((visibility("default")))

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static __thread int current_device = -1;

enum { MAX_ALLOCS = 4096 };
struct alloc {
  char *p;
  size_t n;
  int device_mem; /* 1: device, 0: pinned host */
  int device;
};
static struct alloc allocs[MAX_ALLOCS];

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static void logf_(const char *fmt, ...) {
  pthread_mutex_lock(&mu);
  FILE *f = fopen(FAKE_LOG_PATH, "a");
  if (f) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
  }
  pthread_mutex_unlock(&mu);
}

static int should_fail(const char *fn) {
  const char *f = getenv("KVMGR_FAKE_FAIL");
  return f && strcmp(f, fn) == 0;
}

static int device_count(void) {
  const char *e = getenv("KVMGR_FAKE_DEVICES");
  return e ? atoi(e) : 2;
}

static void track(char *p, size_t n, int device_mem) {
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_ALLOCS; i++) {
    if (allocs[i].p == NULL) {
      allocs[i].p = p;
      allocs[i].n = n;
      allocs[i].device_mem = device_mem;
      allocs[i].device = current_device;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
}

/* 1: whole range inside a device allocation; 0: not in any device allocation; -1: straddles. */
static int where(const char *p, size_t n) {
  int r = 0;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_ALLOCS; i++) {
    const struct alloc *a = &allocs[i];
    if (a->p == NULL || !a->device_mem) continue;
    if (p >= a->p && p < a->p + a->n) {
      r = (p + n <= a->p + a->n) ? 1 : -1;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  return r;
}

/* 1 when the whole range lies inside a pinned host allocation (HostAlloc / MallocHost). */
static int pinned(const char *p, size_t n) {
  int r = 0;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_ALLOCS; i++) {
    const struct alloc *a = &allocs[i];
    if (a->p == NULL || a->device_mem) continue;
    if (p >= a->p && p + n <= a->p + a->n) {
      r = 1;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  return r;
}

static int untrack(void *p, int device_mem) {
  int found = 0;
  pthread_mutex_lock(&mu);
  for (int i = 0; i < MAX_ALLOCS; i++) {
    if (allocs[i].p == p && allocs[i].device_mem == device_mem) {
      allocs[i].p = NULL;
      found = 1;
      break;
    }
  }
  pthread_mutex_unlock(&mu);
  return found;
}

static int do_alloc(const char *fn, void **out, size_t n, int device_mem) {
  if (should_fail(fn)) { logf_("%s bytes=%zu rc=2", fn, n); return 2; }
  if (device_mem && current_device < 0) { logf_("%s bytes=%zu rc=1 no-device", fn, n); return 1; }
  void *p = NULL;
  if (posix_memalign(&p, 256, n ? n : 1) != 0) return 2;
  track((char *)p, n, device_mem);
  *out = p;
  logf_("%s bytes=%zu device=%d", fn, n, current_device);
  return 0;
}

static int do_free(const char *fn, void *p, int device_mem) {
  if (!untrack(p, device_mem)) { logf_("%s rc=1 unknown-pointer", fn); return 1; }
  free(p);
  logf_("%s device=%d", fn, current_device);
  return 0;
}

static const char *kind_name(int k) {
  switch (k) {
    case 0: return "H2H";
    case 1: return "H2D";
    case 2: return "D2H";
    case 3: return "D2D";
    default: return "DEFAULT";
  }
}

static int do_memcpy(const char *fn, void *dst, size_t dst_max, const void *src, size_t n, int kind) {
  if (should_fail(fn)) { logf_("%s bytes=%zu kind=%s rc=2", fn, n, kind_name(kind)); return 2; }
  if (current_device < 0) { logf_("%s bytes=%zu kind=%s rc=1 no-device", fn, n, kind_name(kind)); return 1; }
  int ws = where((const char *)src, n);
  int wd = where((const char *)dst, n);
  int want_s = kind == 2 || kind == 3;
  int want_d = kind == 1 || kind == 3;
  if (kind < 0 || kind > 3 || ws != want_s || wd != want_d || n > dst_max) {
    logf_("%s bytes=%zu kind=%s device=%d rc=1 mismatch src=%d dst=%d", fn, n, kind_name(kind), current_device, ws, wd);
    return 1;
  }
  memmove(dst, src, n);
  logf_("%s bytes=%zu kind=%s device=%d", fn, n, kind_name(kind), current_device);
  return 0;
}

static int do_set_device(const char *fn, int d) {
  if (d < 0 || d >= device_count()) { logf_("%s device=%d rc=1", fn, d); return 1; }
  current_device = d;
  /* Not logged: called before every operation; tests check the device on the logged calls. */
  return 0;
}

static int do_token(const char *fn, void **out) {
  if (should_fail(fn)) { logf_("%s rc=2", fn); return 2; }
  *out = malloc(1);
  logf_("%s", fn);
  return 0;
}

static int do_simple(const char *fn, void *token) {
  if (should_fail(fn)) { logf_("%s rc=2", fn); return 2; }
  (void)token;
  logf_("%s", fn);
  return 0;
}

static int do_destroy(const char *fn, void *token) {
  free(token);
  logf_("%s", fn);
  return 0;
}

#if defined(FAKE_CUDA) || defined(FAKE_HIP)
#define S_(x) #x
#define S(x) S_(x)
#if defined(FAKE_CUDA)
#define N(name) "cuda" #name
#else
#define N(name) "hip" #name
#endif

EXPORT int P(GetDeviceCount)(int *n) {
  if (should_fail(N(GetDeviceCount))) return 2;
  *n = device_count();
  logf_(N(GetDeviceCount) " count=%d", *n);
  return 0;
}
EXPORT int P(SetDevice)(int d) { return do_set_device(N(SetDevice), d); }
EXPORT int P(Malloc)(void **p, size_t n) { return do_alloc(N(Malloc), p, n, 1); }
EXPORT int P(Free)(void *p) { return do_free(N(Free), p, 1); }
#if defined(FAKE_CUDA)
EXPORT int cudaHostAlloc(void **p, size_t n, unsigned int flags) {
  (void)flags;
  return do_alloc("cudaHostAlloc", p, n, 0);
}
EXPORT int cudaFreeHost(void *p) { return do_free("cudaFreeHost", p, 0); }
#else
EXPORT int hipHostMalloc(void **p, size_t n, unsigned int flags) {
  (void)flags;
  return do_alloc("hipHostMalloc", p, n, 0);
}
EXPORT int hipHostFree(void *p) { return do_free("hipHostFree", p, 0); }
#endif
EXPORT int P(MemcpyAsync)(void *dst, const void *src, size_t n, int kind, void *stream) {
  (void)stream;
  return do_memcpy(N(MemcpyAsync), dst, n, src, n, kind);
}
EXPORT int P(StreamCreate)(void **s) { return do_token(N(StreamCreate), s); }
EXPORT int P(StreamSynchronize)(void *s) { return do_simple(N(StreamSynchronize), s); }
EXPORT int P(EventCreate)(void **e) { return do_token(N(EventCreate), e); }
EXPORT int P(EventRecord)(void *e, void *s) {
  (void)s;
  return do_simple(N(EventRecord), e);
}
EXPORT int P(EventSynchronize)(void *e) { return do_simple(N(EventSynchronize), e); }
EXPORT int P(EventDestroy)(void *e) { return do_destroy(N(EventDestroy), e); }
EXPORT const char *P(GetErrorString)(int rc) { return rc == 2 ? "fake injected failure" : "fake invalid value"; }
#endif

#if defined(FAKE_ACL)
EXPORT int aclInit(const char *config) {
  (void)config;
  logf_("aclInit");
  return 0;
}
EXPORT int aclrtGetDeviceCount(unsigned int *n) {
  *n = (unsigned int)device_count();
  logf_("aclrtGetDeviceCount count=%u", *n);
  return 0;
}
EXPORT int aclrtSetDevice(int d) { return do_set_device("aclrtSetDevice", d); }
EXPORT int aclrtMalloc(void **p, size_t n, int policy) {
  (void)policy;
  return do_alloc("aclrtMalloc", p, n, 1);
}
EXPORT int aclrtFree(void *p) { return do_free("aclrtFree", p, 1); }
EXPORT int aclrtMallocHost(void **p, size_t n) { return do_alloc("aclrtMallocHost", p, n, 0); }
EXPORT int aclrtFreeHost(void *p) { return do_free("aclrtFreeHost", p, 0); }
/* Like the real runtime, async copies need the host side in aclrtMallocHost memory. */
EXPORT int aclrtMemcpyAsync(void *dst, size_t dst_max, const void *src, size_t n, int kind, void *stream) {
  (void)stream;
  if ((kind == 1 && !pinned((const char *)src, n)) || (kind == 2 && !pinned((const char *)dst, n))) {
    logf_("aclrtMemcpyAsync bytes=%zu rc=1 pageable-host-memory", n);
    return 1;
  }
  return do_memcpy("aclrtMemcpyAsync", dst, dst_max, src, n, kind);
}
EXPORT int aclrtMemcpy(void *dst, size_t dst_max, const void *src, size_t n, int kind) {
  return do_memcpy("aclrtMemcpy", dst, dst_max, src, n, kind);
}
EXPORT int aclrtCreateStream(void **s) { return do_token("aclrtCreateStream", s); }
EXPORT int aclrtSynchronizeStream(void *s) { return do_simple("aclrtSynchronizeStream", s); }
EXPORT int aclrtCreateEvent(void **e) { return do_token("aclrtCreateEvent", e); }
EXPORT int aclrtRecordEvent(void *e, void *s) {
  (void)s;
  return do_simple("aclrtRecordEvent", e);
}
EXPORT int aclrtSynchronizeEvent(void *e) { return do_simple("aclrtSynchronizeEvent", e); }
EXPORT int aclrtDestroyEvent(void *e) { return do_destroy("aclrtDestroyEvent", e); }
EXPORT const char *aclGetRecentErrMsg(void) { return "fake acl error"; }
#endif
