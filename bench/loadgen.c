/*
 * Fan-out load generator in C: the latency scenarios' client side.
 *
 * Why C: a Deno client pays 13-17 us of CPU per socket read (measured with
 * bench/epoll_server.c), so 500 receivers of one broadcast take 5-8 ms to
 * read it on this machine's cores, more than the 5 ms target itself. Here a
 * read costs the system call, about 1-2 us, and what is measured is the
 * server.
 *
 * One thread, one epoll loop, every client a non-blocking socket:
 *  1. connect CLIENTS clients (chat: hello, then wait for the welcome line);
 *  2. barrier: client 0 sends epoch-0 markers until every client has one, so
 *     every receiver is registered for broadcasts before measuring;
 *  3. clients 0..SENDERS-1 each send COUNT messages at RATE msg/s (random
 *     phase, from SEED when given), marker `~M|1|sender|seq|sendMicros|`
 *     padded to PAYLOAD bytes;
 *  4. wait (bounded by COLLECT_MS) until every receiver has every message
 *     actually sent; what is missing then is lost.
 * Latency is recorded on the first copy of each (sender, seq) into the same
 * log-bucketed histogram as bench/histogram.ts; duplicates and reordering are
 * counted per receiver and sender. One JSON object goes to stdout; its
 * latency histogram starts with p50 and p99 in microseconds.
 *
 * Usage: loadgen PORT PROTO(chat|line|ncat) CLIENTS SENDERS RATE COUNT
 *                PAYLOAD COLLECT_MS [SEED]
 *
 * The senders' phases set when their messages collide, and the p99 of a
 * fan-out is mostly made of collisions: give every server of a round the
 * same SEED and they all face the same pattern.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define OUT_CAP (1 << 20)
#define SUB_BITS 5
#define SUB (1 << SUB_BITS)
#define EXACT (SUB * 2)
#define MAX_EXP 31
#define BUCKETS ((MAX_EXP - SUB_BITS + 1) * SUB + SUB)

struct hist {
  uint32_t counts[BUCKETS];
  uint64_t count, max, sum;
};

struct client {
  int fd, joined, closed;
  char in[BUF];
  size_t in_len;
  char *out;
  size_t out_len;
  uint32_t *uniq;  /* per sender */
  int64_t *maxseq; /* per sender */
  uint8_t **bits;  /* per sender, COUNT bits */
  int barrier_seen;
  int rate_limited, slow_consumer;
};

static int port, proto_chat, proto_ncat, n_clients, n_senders, count, payload, collect_ms;
static double rate;
static struct client *clients;
static int ep;
static struct hist latency, lag;
static uint64_t dups, reorders, stale, garbled, errors_other, disconnected;
static int epoch = 0; /* 0 = barrier, 1 = measuring */
static int joined_count;
static int *sent; /* per sender, messages actually sent */

static int64_t now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static int bucket_of(uint64_t v) {
  if (v < EXACT) return (int)v;
  if (v >= (1ULL << MAX_EXP)) v = (1ULL << MAX_EXP) - 1;
  int e = 63 - __builtin_clzll(v);
  return (e - SUB_BITS) * SUB + (int)(v >> (e - SUB_BITS));
}

static void record(struct hist *h, int64_t v) {
  if (v < 0) v = 0;
  h->counts[bucket_of((uint64_t)v)]++;
  h->count++;
  h->sum += (uint64_t)v;
  if ((uint64_t)v > h->max) h->max = (uint64_t)v;
}

static void close_client(struct client *c) {
  if (c->closed) return;
  c->closed = 1;
  disconnected++;
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
}

static void watch(struct client *c, int out) {
  struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write now, or queue what the socket did not take (bounded). */
static void send_bytes(struct client *c, const char *p, size_t n) {
  if (c->closed) return;
  if (c->out_len == 0) {
    ssize_t w = write(c->fd, p, n);
    if (w < 0 && errno != EAGAIN) return close_client(c);
    if (w < 0) w = 0;
    p += w;
    n -= (size_t)w;
    if (n == 0) return;
    watch(c, 1);
  }
  if (c->out_len + n > OUT_CAP) return close_client(c); /* server stopped reading */
  c->out = realloc(c->out, c->out_len + n);
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

static void flush_out(struct client *c) {
  ssize_t w = write(c->fd, c->out, c->out_len);
  if (w < 0 && errno != EAGAIN) return close_client(c);
  if (w <= 0) return;
  memmove(c->out, c->out + w, c->out_len - (size_t)w);
  c->out_len -= (size_t)w;
  if (c->out_len == 0) watch(c, 0);
}

static void send_marker(int idx, int ep_no, int seq, int64_t ts) {
  char text[8192], line[8300];
  int len = snprintf(text, sizeof text, "~M|%d|%d|%d|%lld|", ep_no, idx, seq, (long long)ts);
  while (len < payload && len < (int)sizeof text - 1) text[len++] = 'x';
  text[len] = 0;
  int n = proto_chat ? snprintf(line, sizeof line, "{\"type\":\"msg\",\"text\":\"%s\"}\n", text)
                     : snprintf(line, sizeof line, "%s\n", text);
  send_bytes(&clients[idx], line, (size_t)n);
}

/* Reads a decimal number ending in '|' at *p (< end); -1 if malformed. */
static int64_t read_num(const char **p, const char *end) {
  int64_t n = 0;
  int digits = 0;
  while (*p < end) {
    char ch = *(*p)++;
    if (ch == '|') return digits ? n : -1;
    if (ch < '0' || ch > '9') return -1;
    n = n * 10 + (ch - '0');
    digits++;
  }
  return -1;
}

static void on_marker(struct client *c, const char *p, const char *end, int64_t now) {
  int64_t ep_no = read_num(&p, end), sid = read_num(&p, end), seq = read_num(&p, end),
          ts = read_num(&p, end);
  if (ep_no < 0 || sid < 0 || seq < 0 || ts < 0 || sid >= n_senders || seq >= count) {
    garbled++;
    return;
  }
  if (ep_no == 0) {
    c->barrier_seen = 1;
    return;
  }
  if (ep_no != epoch) {
    stale++;
    return;
  }
  if (!c->bits[sid]) c->bits[sid] = calloc((size_t)count / 8 + 1, 1);
  uint8_t bit = (uint8_t)(1 << (seq & 7));
  if (c->bits[sid][seq >> 3] & bit) {
    dups++;
    return;
  }
  c->bits[sid][seq >> 3] |= bit;
  c->uniq[sid]++;
  if (seq < c->maxseq[sid]) reorders++;
  else c->maxseq[sid] = seq;
  record(&latency, now - ts);
}

/* A line without a marker: welcome, event or error. */
static void on_other_line(struct client *c, const char *s, size_t n) {
  if (!c->joined) {
    if (proto_ncat || memmem(s, n, "\"type\":\"welcome\"", 16)) {
      c->joined = 1;
      joined_count++;
    }
    return;
  }
  if (!proto_chat || !memmem(s, n, "\"type\":\"error\"", 14)) return;
  if (memmem(s, n, "\"rate_limited\"", 14)) c->rate_limited++;
  else if (memmem(s, n, "\"slow_consumer\"", 15)) c->slow_consumer = 1;
  else errors_other++;
}

static void on_readable(struct client *c) {
  ssize_t r = read(c->fd, c->in + c->in_len, BUF - c->in_len);
  if (r <= 0) {
    if (r < 0 && errno == EAGAIN) return;
    return close_client(c);
  }
  int64_t now = now_us();
  c->in_len += (size_t)r;
  char *p = c->in, *end = c->in + c->in_len;
  for (;;) {
    char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;
    char *m = memmem(p, (size_t)(nl - p), "~M|", 3);
    if (m) on_marker(c, m + 3, nl, now);
    else on_other_line(c, p, (size_t)(nl - p));
    p = nl + 1;
  }
  c->in_len = (size_t)(end - p);
  if (c->in_len == BUF) return close_client(c); /* a line longer than the buffer */
  memmove(c->in, p, c->in_len);
}

static void poll_once(int timeout_ms) {
  struct epoll_event events[512];
  int n = epoll_wait(ep, events, 512, timeout_ms);
  for (int i = 0; i < n; i++) {
    struct client *c = events[i].data.ptr;
    if (c->closed) continue;
    if (events[i].events & EPOLLOUT) flush_out(c);
    if (!c->closed && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
  }
}

static int connect_one(struct client *c, int idx) {
  c->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct timeval tv = {.tv_sec = 5};
  setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0) return -1;
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (proto_chat) {
    char hello[128];
    int n = snprintf(hello, sizeof hello,
                     "{\"type\":\"hello\",\"version\":1,\"name\":\"b%d\",\"history\":0}\n", idx);
    if (write(c->fd, hello, (size_t)n) != n) return -1;
  } else if (!proto_ncat) {
    c->joined = 1;
    joined_count++;
  }
  int fl = 1;
  ioctl(c->fd, FIONBIO, &fl);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
  epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
  return 0;
}

/* Whether some live receiver still lacks a message that was sent. */
static int missing(void) {
  int64_t miss = 0;
  for (int i = 0; i < n_clients; i++) {
    struct client *c = &clients[i];
    if (c->closed) continue;
    for (int s = 0; s < n_senders; s++) {
      if (proto_ncat && s == i) continue; /* ncat does not echo */
      miss += sent[s] - (int64_t)c->uniq[s];
    }
  }
  return miss > 0;
}

/* Value at quantile q: the bucket's midpoint, as bench/histogram.ts does. */
static double quantile(struct hist *h, double q) {
  if (h->count == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)h->count + 0.999999), seen = 0;
  if (rank < 1) rank = 1;
  for (int i = 0; i < BUCKETS; i++) {
    seen += h->counts[i];
    if (seen < rank) continue;
    if (i < EXACT) return i;
    int e = i / SUB + SUB_BITS - 1;
    double width = (double)(1ULL << (e - SUB_BITS));
    double mid = (i - (e - SUB_BITS) * SUB) * width + (width - 1) / 2;
    return mid < (double)h->max ? mid : (double)h->max;
  }
  return (double)h->max;
}

static void print_hist(const char *name, struct hist *h) {
  printf("\"%s\":{\"p50\":%.0f,\"p99\":%.0f,\"count\":%llu,\"max\":%llu,\"sum\":%llu,"
         "\"counts\":[",
         name, quantile(h, 0.5), quantile(h, 0.99), (unsigned long long)h->count,
         (unsigned long long)h->max, (unsigned long long)h->sum);
  for (int i = 0; i < BUCKETS; i++) printf(i ? ",%u" : "%u", h->counts[i]);
  printf("]}");
}

int main(int argc, char **argv) {
  if (argc != 9 && argc != 10) {
    fprintf(stderr, "usage: loadgen PORT PROTO CLIENTS SENDERS RATE COUNT PAYLOAD COLLECT_MS [SEED]\n");
    return 2;
  }
  port = atoi(argv[1]);
  proto_chat = strcmp(argv[2], "chat") == 0;
  proto_ncat = strcmp(argv[2], "ncat") == 0;
  n_clients = atoi(argv[3]);
  n_senders = atoi(argv[4]);
  rate = atof(argv[5]);
  count = atoi(argv[6]);
  payload = atoi(argv[7]);
  collect_ms = atoi(argv[8]);
  signal(SIGPIPE, SIG_IGN);
  srand(argc == 10 ? (unsigned)strtoul(argv[9], NULL, 10) : (unsigned)now_us());
  ep = epoll_create1(0);
  clients = calloc((size_t)n_clients, sizeof *clients);
  for (int i = 0; i < n_clients; i++) {
    clients[i].uniq = calloc((size_t)n_senders, sizeof(uint32_t));
    clients[i].maxseq = calloc((size_t)n_senders, sizeof(int64_t));
    clients[i].bits = calloc((size_t)n_senders, sizeof(uint8_t *));
  }

  /* 1. connect, then wait for every welcome (bounded). */
  int connect_errors = 0;
  for (int i = 0; i < n_clients; i++) {
    if (connect_one(&clients[i], i) < 0) {
      connect_errors++;
      clients[i].closed = 1;
      close(clients[i].fd);
    }
    if (i % 64 == 63) poll_once(0); /* read welcomes as we go */
  }
  int64_t deadline = now_us() + 20000000;
  while (joined_count < n_clients - connect_errors && now_us() < deadline) poll_once(10);

  /* 2. barrier: every receiver gets an epoch-0 marker. */
  deadline = now_us() + 10000000;
  for (int k = 0, all = 0; !all && now_us() < deadline; k++) {
    send_marker(0, 0, 0, now_us());
    int64_t until = now_us() + 20000;
    while (now_us() < until) poll_once(5);
    all = 1;
    for (int i = 0; i < n_clients; i++) {
      all &= clients[i].closed || clients[i].barrier_seen || (proto_ncat && i == 0);
    }
  }

  /* 3. measure: senders at their rate, then wait for every delivery. */
  struct rusage ru0;
  getrusage(RUSAGE_SELF, &ru0);
  epoch = 1;
  int64_t interval = (int64_t)(1e6 / rate), start = now_us() + 1000;
  int64_t *t0 = calloc((size_t)n_senders, sizeof(int64_t));
  sent = calloc((size_t)n_senders, sizeof(int));
  for (int s = 0; s < n_senders; s++) t0[s] = start + rand() % interval;
  int64_t last_send = start;
  for (;;) {
    int64_t now = now_us(), next = INT64_MAX;
    int left = 0;
    for (int s = 0; s < n_senders; s++) {
      if (sent[s] >= count || clients[s].closed) continue;
      int64_t due = t0[s] + sent[s] * interval;
      if (due <= now) {
        record(&lag, now - due);
        send_marker(s, 1, sent[s]++, now_us());
        last_send = now_us();
        due += interval;
      }
      if (sent[s] < count) {
        left = 1;
        if (due < next) next = due;
      }
    }
    if (!left) break;
    int64_t wait = next - now_us();
    poll_once(wait > 1000 ? (int)(wait / 1000) : 0);
  }
  int64_t collect_start = now_us();
  deadline = collect_start + (int64_t)collect_ms * 1000;
  while (now_us() < deadline && missing()) poll_once(5);
  int64_t collect_us = now_us() - collect_start;
  struct rusage ru1;
  getrusage(RUSAGE_SELF, &ru1);
  double cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) +
               (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) +
               (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
               (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;

  /* 4. report. */
  uint64_t expected = 0, delivered = 0, receivers = 0, rate_limited = 0, slow = 0;
  int planned = 0, total_sent = 0;
  for (int s = 0; s < n_senders; s++) total_sent += sent[s];
  planned = count * n_senders;
  for (int i = 0; i < n_clients; i++) {
    struct client *c = &clients[i];
    receivers++;
    rate_limited += (uint64_t)c->rate_limited;
    slow += (uint64_t)c->slow_consumer;
    for (int s = 0; s < n_senders; s++) {
      if (proto_ncat && s == i) continue;
      expected += (uint64_t)sent[s];
      delivered += c->uniq[s] < (uint32_t)sent[s] ? c->uniq[s] : (uint64_t)sent[s];
    }
  }
  printf("{\"joined\":%d,\"connectErrors\":%d,\"planned\":%d,\"sent\":%d,", joined_count,
         connect_errors, planned, total_sent);
  printf("\"receivers\":%llu,\"expected\":%llu,\"delivered\":%llu,\"dups\":%llu,"
         "\"reorders\":%llu,\"stale\":%llu,\"garbled\":%llu,\"rateLimited\":%llu,"
         "\"slowConsumer\":%llu,\"otherErrors\":%llu,\"disconnected\":%llu,",
         (unsigned long long)receivers, (unsigned long long)expected,
         (unsigned long long)delivered, (unsigned long long)dups, (unsigned long long)reorders,
         (unsigned long long)stale, (unsigned long long)garbled,
         (unsigned long long)rate_limited, (unsigned long long)slow,
         (unsigned long long)errors_other, (unsigned long long)disconnected);
  printf("\"sendWindowMicros\":%lld,\"collectMicros\":%lld,\"cpuSeconds\":%.4f,",
         (long long)(last_send - start), (long long)collect_us, cpu);
  print_hist("latency", &latency);
  printf(",");
  print_hist("lag", &lag);
  printf("}\n");
  return 0;
}
