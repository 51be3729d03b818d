/* SPDX-License-Identifier: Apache-2.0 */
/* bench.c: crihook-bench, a closed-loop load generator for unary gRPC calls
 * with raw request bytes (grpc core, one completion queue, one thread).
 *
 * N calls are kept in flight: each is one batch (send headers, message and
 * half-close, receive headers, message and status); as one completes the
 * next is started in its slot. Each call's latency (monotonic clock, start
 * of batch to its completion event) and status are recorded. Calls started
 * during the warm-up are not measured.
 *
 * With --proxy-pid / --backend-pid (repeatable), the utime+stime of those
 * processes (from /proc/PID/stat) is read at the start and at the end of the
 * measured window and reported per completed call; the client's own CPU is
 * reported too (getrusage).
 *
 * The client keeps itself cheap, since it shares the CPUs with what it
 * measures: glibc is told not to give freed memory back after every call
 * (trim/mmap thresholds; otherwise each large response costs a madvise or
 * brk and fresh page faults), and the debug-mode deadlock detection that
 * Debian's abseil runs on every grpc mutex is switched off when the symbol
 * is found.
 *
 * With --unique MARKER, every occurrence of MARKER in the request bytes is
 * replaced per call by the call's sequence number (from --unique-start),
 * zero-padded to MARKER's length: calls that create something (a container
 * name) stay distinct while the message keeps its length.
 *
 * Output on stdout: a human-readable summary, then one `RESULT key=value
 * ...` line for scripts (scripts/bench.sh). */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/support/time.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "grpc_util.h"
#include "tuning.h"

#define MAX_PIDS 16
#define MAX_CHANNELS 64

typedef struct options {
  const char *target;
  const char *method;
  const char *request_file;
  int concurrency;
  int channels;
  int64_t duration_ms; /* 0 = use calls */
  int64_t calls;
  int64_t warmup;
  int timeout_ms;
  int proxy_pids[MAX_PIDS];
  int n_proxy_pids;
  int backend_pids[MAX_PIDS];
  int n_backend_pids;
  const char *label;
  const char *unique;
  int64_t unique_start;
} options;

typedef struct slot {
  grpc_call *call;
  grpc_metadata_array initial_md;
  grpc_metadata_array trailing_md;
  grpc_byte_buffer *request;
  grpc_byte_buffer *response;
  grpc_status_code status;
  grpc_slice details;
  int64_t start_ns;
  int measured;
} slot;

typedef struct bench {
  options opt;
  grpc_completion_queue *cq;
  grpc_channel *channels[MAX_CHANNELS];
  grpc_slice method;
  grpc_slice request_bytes;
  slot *slots;
  int in_flight;
  /* phases */
  int64_t started_warmup;
  int64_t started_measured;
  int measuring;
  int stop_starting;
  int64_t measure_start_ns;
  int64_t measure_deadline_ns;
  int64_t last_completion_ns;
  /* results */
  uint32_t *lat_us;
  int64_t lat_n, lat_cap;
  int64_t completed_in_window; /* every call finishing after measure start */
  int64_t errors;
  int64_t status_counts[17];
  char first_error[256];
  int64_t response_bytes;
  int64_t sequence; /* calls started, for --unique */
} bench;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: crihook-bench --target unix:///path.sock [options]\n"
          "  --method PATH         method (default /runtime.v1.RuntimeService/Version)\n"
          "  --request-file FILE   raw request bytes (default: empty message)\n"
          "  --concurrency N       calls kept in flight (default 1)\n"
          "  --channels N          client channels, calls spread over them (default 1)\n"
          "  --duration-ms MS      measure for MS milliseconds (default 2000)\n"
          "  --calls N             measure exactly N calls instead of a duration\n"
          "  --warmup N            unmeasured calls first (default 200)\n"
          "  --timeout-ms MS       deadline of each call (default 10000)\n"
          "  --proxy-pid PID       report this process's CPU per call (repeatable, summed)\n"
          "  --backend-pid PID     same, reported separately (repeatable, summed)\n"
          "  --label TEXT          copied into the RESULT line\n"
          "  --unique MARKER       replace MARKER in the request by a per-call number\n"
          "  --unique-start N      first number for --unique (default 0)\n");
}

static int parse_int64(const char *s, int64_t *out) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end || end == s || v < 0) return -1;
  *out = v;
  return 0;
}

static int parse_options(int argc, char **argv, options *o) {
  *o = (options){.method = "/runtime.v1.RuntimeService/Version",
                 .concurrency = 1,
                 .channels = 1,
                 .duration_ms = 2000,
                 .warmup = 200,
                 .timeout_ms = 10000,
                 .label = "-"};
  enum {
    O_TARGET = 1,
    O_METHOD,
    O_REQ,
    O_CONC,
    O_CHAN,
    O_DUR,
    O_CALLS,
    O_WARM,
    O_TMO,
    O_PPID,
    O_BPID,
    O_LABEL,
    O_UNIQUE,
    O_USTART,
    O_HELP
  };
  static const struct option longopts[] = {{"target", required_argument, 0, O_TARGET},
                                           {"method", required_argument, 0, O_METHOD},
                                           {"request-file", required_argument, 0, O_REQ},
                                           {"concurrency", required_argument, 0, O_CONC},
                                           {"channels", required_argument, 0, O_CHAN},
                                           {"duration-ms", required_argument, 0, O_DUR},
                                           {"calls", required_argument, 0, O_CALLS},
                                           {"warmup", required_argument, 0, O_WARM},
                                           {"timeout-ms", required_argument, 0, O_TMO},
                                           {"proxy-pid", required_argument, 0, O_PPID},
                                           {"backend-pid", required_argument, 0, O_BPID},
                                           {"label", required_argument, 0, O_LABEL},
                                           {"unique", required_argument, 0, O_UNIQUE},
                                           {"unique-start", required_argument, 0, O_USTART},
                                           {"help", no_argument, 0, O_HELP},
                                           {0, 0, 0, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
    int64_t v = 0;
    if (c != O_TARGET && c != O_METHOD && c != O_REQ && c != O_LABEL && c != O_UNIQUE &&
        c != O_HELP && c != '?' && parse_int64(optarg, &v) != 0) {
      fprintf(stderr, "crihook-bench: bad number '%s'\n", optarg);
      return -1;
    }
    switch (c) {
      case O_TARGET:
        o->target = optarg;
        break;
      case O_METHOD:
        o->method = optarg;
        break;
      case O_REQ:
        o->request_file = optarg;
        break;
      case O_LABEL:
        o->label = optarg;
        break;
      case O_UNIQUE:
        o->unique = optarg;
        break;
      case O_USTART:
        o->unique_start = v;
        break;
      case O_CONC:
        o->concurrency = (int)v;
        break;
      case O_CHAN:
        o->channels = (int)v;
        break;
      case O_DUR:
        o->duration_ms = v;
        o->calls = 0;
        break;
      case O_CALLS:
        o->calls = v;
        o->duration_ms = 0;
        break;
      case O_WARM:
        o->warmup = v;
        break;
      case O_TMO:
        o->timeout_ms = (int)v;
        break;
      case O_PPID:
      case O_BPID: {
        int *arr = c == O_PPID ? o->proxy_pids : o->backend_pids;
        int *n = c == O_PPID ? &o->n_proxy_pids : &o->n_backend_pids;
        if (*n >= MAX_PIDS || v <= 0) {
          fprintf(stderr, "crihook-bench: too many or bad pids\n");
          return -1;
        }
        arr[(*n)++] = (int)v;
        break;
      }
      case O_HELP:
        usage(stdout);
        exit(0);
      default:
        usage(stderr);
        return -1;
    }
  }
  if (optind < argc || !o->target) {
    usage(stderr);
    return -1;
  }
  if (o->concurrency < 1 || o->channels < 1 || o->channels > MAX_CHANNELS ||
      (o->duration_ms == 0 && o->calls == 0) || o->timeout_ms < 1 ||
      (o->unique && (!*o->unique || strlen(o->unique) > 20))) {
    fprintf(stderr,
            "crihook-bench: concurrency, channels (1..%d), duration/calls must be > 0, "
            "--unique 1..20 characters\n",
            MAX_CHANNELS);
    return -1;
  }
  return 0;
}

/* utime+stime of a process in clock ticks; -1 if it cannot be read. The
 * comm field may contain spaces and parentheses: skip to the last ')'. */
static int64_t proc_cpu_ticks(int pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long long utime = 0, stime = 0;
  /* after ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
   * utime(14) stime(15) */
  if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
    return -1;
  return (int64_t)(utime + stime);
}

static int64_t sum_cpu_ticks(const int *pids, int n) {
  int64_t sum = 0;
  for (int i = 0; i < n; i++) {
    int64_t t = proc_cpu_ticks(pids[i]);
    if (t < 0) return -1;
    sum += t;
  }
  return sum;
}

static int64_t self_cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
         ru.ru_stime.tv_usec;
}

static int load_request(bench *b) {
  if (!b->opt.request_file) {
    b->request_bytes = grpc_empty_slice();
    return 0;
  }
  FILE *f = fopen(b->opt.request_file, "rb");
  if (!f) {
    fprintf(stderr, "crihook-bench: cannot open %s: %s\n", b->opt.request_file, strerror(errno));
    return -1;
  }
  size_t cap = 4096, len = 0;
  char *data = malloc(cap);
  size_t got;
  while (data && (got = fread(data + len, 1, cap - len, f)) > 0) {
    len += got;
    if (len == cap) data = realloc(data, cap *= 2);
  }
  fclose(f);
  if (!data) return -1;
  b->request_bytes = grpc_slice_from_copied_buffer(data, len);
  free(data);
  return 0;
}

/* The request of the next call: the loaded bytes, or with --unique a copy
 * with the marker replaced by the call's number. */
static grpc_byte_buffer *next_request(bench *b) {
  int64_t seq = b->opt.unique_start + b->sequence++;
  size_t mlen = b->opt.unique ? strlen(b->opt.unique) : 0;
  size_t len = GRPC_SLICE_LENGTH(b->request_bytes);
  if (mlen == 0 || mlen > 20) return grpc_raw_byte_buffer_create(&b->request_bytes, 1);
  grpc_slice copy = grpc_slice_malloc(len);
  char *data = (char *)GRPC_SLICE_START_PTR(copy);
  memcpy(data, GRPC_SLICE_START_PTR(b->request_bytes), len);
  char digits[32];
  snprintf(digits, sizeof digits, "%0*lld", (int)mlen, (long long)seq);
  const char *num = digits + strlen(digits) - mlen; /* the low digits if it overflowed */
  for (char *p = data; p && (size_t)(p - data) + mlen <= len;) {
    p = memmem(p, len - (size_t)(p - data), b->opt.unique, mlen);
    if (p) {
      memcpy(p, num, mlen);
      p += mlen;
    }
  }
  grpc_byte_buffer *buf = grpc_raw_byte_buffer_create(&copy, 1);
  grpc_slice_unref(copy);
  return buf;
}

static int start_call(bench *b, int i) {
  slot *s = &b->slots[i];
  grpc_channel *ch = b->channels[i % b->opt.channels];
  s->measured = b->measuring;
  s->start_ns = now_ns();
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_millis(b->opt.timeout_ms, GPR_TIMESPAN));
  s->call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, b->cq, b->method, NULL,
                                     deadline, NULL);
  grpc_metadata_array_init(&s->initial_md);
  grpc_metadata_array_init(&s->trailing_md);
  s->request = next_request(b);
  s->response = NULL;
  s->details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->request;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->initial_md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->response;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = &s->status;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->trailing_md;
  grpc_call_error rc = grpc_call_start_batch(s->call, ops, 6, s, NULL);
  if (rc != GRPC_CALL_OK) {
    fprintf(stderr, "crihook-bench: grpc_call_start_batch failed: %d\n", (int)rc);
    return -1;
  }
  b->in_flight++;
  if (s->measured)
    b->started_measured++;
  else
    b->started_warmup++;
  return 0;
}

static void record(bench *b, slot *s, int64_t end_ns, int ok) {
  if (b->measuring) b->completed_in_window++;
  if (!s->measured) return;
  b->last_completion_ns = end_ns;
  if (b->lat_n == b->lat_cap) {
    b->lat_cap = b->lat_cap ? b->lat_cap * 2 : 65536;
    b->lat_us = realloc(b->lat_us, (size_t)b->lat_cap * sizeof *b->lat_us);
    if (!b->lat_us) {
      fprintf(stderr, "crihook-bench: out of memory\n");
      exit(1);
    }
  }
  int64_t us = (end_ns - s->start_ns + 500) / 1000;
  b->lat_us[b->lat_n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
  int code = ok ? (int)s->status : (int)GRPC_STATUS_UNKNOWN;
  if (code < 0 || code > 16) code = GRPC_STATUS_UNKNOWN;
  b->status_counts[code]++;
  if (s->response) b->response_bytes += (int64_t)grpc_byte_buffer_length(s->response);
  if (code != GRPC_STATUS_OK) {
    b->errors++;
    if (!b->first_error[0])
      snprintf(b->first_error, sizeof b->first_error, "%s: %.*s", ch_status_name(code),
               (int)GRPC_SLICE_LENGTH(s->details), (const char *)GRPC_SLICE_START_PTR(s->details));
  }
}

static void finish_slot(slot *s) {
  grpc_call_unref(s->call);
  s->call = NULL;
  grpc_byte_buffer_destroy(s->request);
  if (s->response) grpc_byte_buffer_destroy(s->response);
  s->response = NULL;
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->initial_md);
  grpc_metadata_array_destroy(&s->trailing_md);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

static double percentile(const uint32_t *sorted, int64_t n, double p) {
  if (n == 0) return 0;
  int64_t idx = (int64_t)(p * (double)(n - 1) + 0.5);
  if (idx >= n) idx = n - 1;
  return sorted[idx];
}

/* Whether another call may start: always during the warm-up (its end is
 * counted in completions, see main), then until the calls or time run out. */
static int want_more(const bench *b, int64_t t) {
  if (b->stop_starting) return 0;
  if (!b->measuring) return 1;
  if (b->opt.calls > 0) return b->started_measured < b->opt.calls;
  return t < b->measure_deadline_ns;
}

typedef struct cpu_snap {
  int64_t proxy, backend, self_us;
} cpu_snap;

static cpu_snap snap_cpu(const bench *b) {
  cpu_snap c = {.proxy = sum_cpu_ticks(b->opt.proxy_pids, b->opt.n_proxy_pids),
                .backend = sum_cpu_ticks(b->opt.backend_pids, b->opt.n_backend_pids),
                .self_us = self_cpu_us()};
  return c;
}

static void begin_measuring(bench *b, cpu_snap *start) {
  *start = snap_cpu(b);
  b->measuring = 1;
  b->measure_start_ns = now_ns();
  b->measure_deadline_ns = b->measure_start_ns + b->opt.duration_ms * 1000000;
}

int main(int argc, char **argv) {
  bench b;
  memset(&b, 0, sizeof b);
  if (parse_options(argc, argv, &b.opt) != 0) return 2;
  ch_process_tune();
  grpc_init();
  if (load_request(&b) != 0) return 2;
  b.method = grpc_slice_from_static_string(b.opt.method);
  b.cq = grpc_completion_queue_create_for_next(NULL);
  for (int i = 0; i < b.opt.channels; i++) b.channels[i] = ch_channel_open(b.opt.target);
  b.slots = calloc((size_t)b.opt.concurrency, sizeof *b.slots);
  if (!b.slots) return 1;

  cpu_snap cpu_start = {0};
  if (b.opt.warmup == 0) begin_measuring(&b, &cpu_start);
  for (int i = 0; i < b.opt.concurrency; i++) {
    if (b.measuring && b.opt.calls > 0 && b.started_measured >= b.opt.calls) break;
    if (start_call(&b, i) != 0) return 1;
  }

  int rc = 0;
  while (b.in_flight > 0) {
    grpc_event ev = grpc_completion_queue_next(b.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) {
      fprintf(stderr, "crihook-bench: unexpected completion queue event %d\n", (int)ev.type);
      rc = 1;
      break;
    }
    int64_t t = now_ns();
    slot *s = ev.tag;
    b.in_flight--;
    record(&b, s, t, ev.success);
    finish_slot(s);
    if (!b.measuring && b.started_warmup >= b.opt.warmup) begin_measuring(&b, &cpu_start);
    if (want_more(&b, t)) {
      if (start_call(&b, (int)(s - b.slots)) != 0) {
        rc = 1;
        break;
      }
    } else {
      b.stop_starting = 1;
    }
  }
  int64_t end_ns = b.last_completion_ns > b.measure_start_ns ? b.last_completion_ns : now_ns();
  cpu_snap cpu_end = snap_cpu(&b);

  qsort(b.lat_us, (size_t)b.lat_n, sizeof *b.lat_us, cmp_u32);
  double sum = 0;
  for (int64_t i = 0; i < b.lat_n; i++) sum += b.lat_us[i];
  double secs = (double)(end_ns - b.measure_start_ns) / 1e9;
  double mean = b.lat_n ? sum / (double)b.lat_n : 0;
  double p50 = percentile(b.lat_us, b.lat_n, 0.50);
  double p90 = percentile(b.lat_us, b.lat_n, 0.90);
  double p99 = percentile(b.lat_us, b.lat_n, 0.99);
  double pmax = b.lat_n ? b.lat_us[b.lat_n - 1] : 0;
  double tput = secs > 0 ? (double)b.lat_n / secs : 0;
  double tick_us = 1e6 / (double)sysconf(_SC_CLK_TCK);
  int64_t per = b.completed_in_window > 0 ? b.completed_in_window : 1;
  double proxy_cpu = -1, backend_cpu = -1;
  if (b.opt.n_proxy_pids && cpu_start.proxy >= 0 && cpu_end.proxy >= 0)
    proxy_cpu = (double)(cpu_end.proxy - cpu_start.proxy) * tick_us / (double)per;
  if (b.opt.n_backend_pids && cpu_start.backend >= 0 && cpu_end.backend >= 0)
    backend_cpu = (double)(cpu_end.backend - cpu_start.backend) * tick_us / (double)per;
  double client_cpu = (double)(cpu_end.self_us - cpu_start.self_us) / (double)per;

  printf("target %s method %s concurrency %d channels %d\n", b.opt.target, b.opt.method,
         b.opt.concurrency, b.opt.channels);
  printf("calls %lld in %.3f s: %.0f calls/s, errors %lld, response bytes/call %.0f\n",
         (long long)b.lat_n, secs, tput, (long long)b.errors,
         b.lat_n ? (double)b.response_bytes / (double)b.lat_n : 0.0);
  printf("latency us: p50 %.0f  p90 %.0f  p99 %.0f  mean %.1f  max %.0f\n", p50, p90, p99, mean,
         pmax);
  printf("cpu us/call: client %.1f", client_cpu);
  if (proxy_cpu >= 0) printf("  proxy %.1f", proxy_cpu);
  if (backend_cpu >= 0) printf("  backend %.1f", backend_cpu);
  printf("\n");
  if (b.errors) {
    printf("statuses:");
    for (int i = 0; i <= 16; i++)
      if (b.status_counts[i]) printf(" %s=%lld", ch_status_name(i), (long long)b.status_counts[i]);
    printf("\nfirst error: %s\n", b.first_error);
  }
  printf(
      "RESULT label=%s method=%s concurrency=%d calls=%lld secs=%.3f tput=%.1f errors=%lld "
      "p50=%.0f p90=%.0f p99=%.0f mean=%.1f max=%.0f client_cpu=%.2f proxy_cpu=%.2f "
      "backend_cpu=%.2f\n",
      b.opt.label, b.opt.method, b.opt.concurrency, (long long)b.lat_n, secs, tput,
      (long long)b.errors, p50, p90, p99, mean, pmax, client_cpu, proxy_cpu, backend_cpu);
  fflush(stdout);

  for (int i = 0; i < b.opt.channels; i++) grpc_channel_destroy(b.channels[i]);
  grpc_completion_queue_shutdown(b.cq);
  while (grpc_completion_queue_next(b.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(b.cq);
  grpc_slice_unref(b.request_bytes);
  free(b.slots);
  free(b.lat_us);
  grpc_shutdown();
  if (rc == 0 && b.lat_n == 0) rc = 1;
  return rc;
}
