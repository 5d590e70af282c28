/*
 * REFERENCE FOR BENCHMARKING ONLY - NOT PART OF THE PRODUCT.
 *
 * The C epoll line broadcaster the performance issue quotes as the best peer
 * (1.0 ms p99 in fan-out A): one thread, level-triggered epoll,
 * TCP_NODELAY, every complete line written to every client at once. Partial
 * writes to a client that does not keep up are queued (up to 1 MiB, then the
 * client is dropped), so it never blocks. It calibrates the load generator:
 * what this server measures is the least latency the generator can see.
 *
 * The benchmark compiles it with `cc -O2` when a C compiler is on PATH.
 * Usage: epoll_server PORT
 */
#define _GNU_SOURCE /* accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FDS 65536
#define IN_CAP 65536
#define OUT_CAP (1 << 20)

struct client {
  char *held; /* a partial line waiting for its end */
  size_t held_len;
  char *out; /* pending bytes a partial write left over */
  size_t out_len;
};

static struct client *clients[MAX_FDS];
static int fds[MAX_FDS];
static int nfds;
static int ep;
static char rbuf[IN_CAP]; /* one read buffer for all: idle clients hold nothing */

static void drop(int fd) {
  struct client *c = clients[fd];
  if (!c) return;
  epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
  close(fd);
  free(c->out);
  free(c->held);
  free(c);
  clients[fd] = NULL;
  for (int i = 0; i < nfds; i++) {
    if (fds[i] == fd) {
      fds[i] = fds[--nfds];
      break;
    }
  }
}

static void want_out(int fd, int on) {
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
  epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
}

/* Send to one client: straight to the socket unless bytes are already queued. */
static void send_to(int fd, const char *p, size_t n) {
  struct client *c = clients[fd];
  if (c->out_len == 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno != EAGAIN) return drop(fd);
    if (w < 0) w = 0;
    p += w;
    n -= (size_t)w;
    if (n == 0) return;
    want_out(fd, 1);
  }
  if (c->out_len + n > OUT_CAP) return drop(fd);
  c->out = realloc(c->out, c->out_len + n);
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
}

static void flush_out(int fd) {
  struct client *c = clients[fd];
  ssize_t w = write(fd, c->out, c->out_len);
  if (w < 0 && errno != EAGAIN) return drop(fd);
  if (w <= 0) return;
  memmove(c->out, c->out + w, c->out_len - (size_t)w);
  c->out_len -= (size_t)w;
  if (c->out_len == 0) want_out(fd, 0);
}

static void on_readable(int fd) {
  struct client *c = clients[fd];
  memcpy(rbuf, c->held, c->held_len);
  ssize_t r = read(fd, rbuf + c->held_len, IN_CAP - c->held_len);
  if (r <= 0) {
    if (r < 0 && errno == EAGAIN) return;
    return drop(fd);
  }
  size_t len = c->held_len + (size_t)r, end = len;
  while (end > 0 && rbuf[end - 1] != '\n') end--;
  if (end == 0 && len == IN_CAP) return drop(fd); /* a line longer than the buffer */
  c->held_len = len - end;
  c->held = realloc(c->held, c->held_len ? c->held_len : 1);
  memcpy(c->held, rbuf + end, c->held_len);
  /* Lines go out of rbuf, which no write below touches; a write may drop c. */
  for (int i = nfds - 1; i >= 0 && end > 0; i--) send_to(fds[i], rbuf, end);
}

int main(int argc, char **argv) {
  int port = argc > 1 ? atoi(argv[1]) : 9000;
  signal(SIGPIPE, SIG_IGN);
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(ls, 4096) < 0) {
    perror("listen");
    return 1;
  }
  ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  struct epoll_event events[256];
  for (;;) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      if (fd == ls) {
        int cfd;
        while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
          if (cfd >= MAX_FDS) {
            close(cfd);
            continue;
          }
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          clients[cfd] = calloc(1, sizeof(struct client));
          fds[nfds++] = cfd;
          struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
          epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &cev);
        }
        continue;
      }
      if (!clients[fd]) continue;
      if (events[i].events & EPOLLOUT) flush_out(fd);
      if (clients[fd] && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(fd);
    }
  }
}
