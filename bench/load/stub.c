/*
 * stub: a lean OpenAI-compatible backend for the load benchmark (bench/load/run.py).
 *
 * Why C: the gateway under test shares a 2-core machine with its backend, so the backend
 * must cost next to nothing per request. One thread, epoll, canned bodies built once.
 *
 * It answers POST /v1/chat/completions with a canned completion of N tokens, as JSON or,
 * when the body asks for "stream": true, as an SSE stream (chunked transfer encoding, so
 * the connection stays alive). Each answer waits `delay` ms before its first byte, and at
 * most `cap` answers are in their delay at once (the rest queue, first come first served):
 * that models a GPU server with a fixed number of batch slots and gives the benchmark a
 * backend with a known saturation point (cap / delay). GET /v1/models lists one model.
 *
 * POST /_stub/config?delay_ms=D&cap=C&tokens=T changes the behaviour between phases of a
 * run without a restart (the gateways keep their pooled connections).
 *
 * usage: stub -p PORT [-d DELAY_MS] [-c CAP (0 = unlimited)] [-t TOKENS]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_FD 65536
#define IN_CAP (1 << 20)

enum state { READING, QUEUED, DELAYING, WRITING };

struct conn {
    int open;
    enum state st;
    char *in;
    size_t in_len;
    size_t req_len; /* bytes of the current request (headers + body) once known */
    int stream;
    int close_after;
    double due; /* when DELAYING: time to answer */
    long queue_seq;
    const char *out; /* pending response bytes (canned or owned) */
    size_t out_len, out_off;
    char *owned; /* a response built for this request, freed after writing */
};

static struct conn conns[MAX_FD];
static int epfd, max_fd;
static double delay_ms;
static int cap, in_delay, tokens = 16;
static long seq_next;
static char *json_resp, *sse_resp, *models_resp;
static size_t json_len, sse_len, models_len;

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Appends printf output to a growing heap buffer. */
static void append(char **buf, size_t *len, size_t *capacity, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void append(char **buf, size_t *len, size_t *capacity, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(*buf + *len, *capacity - *len, fmt, ap);
        va_end(ap);
        if ((size_t)n < *capacity - *len) {
            *len += (size_t)n;
            return;
        }
        *capacity = *capacity * 2 + (size_t)n;
        *buf = realloc(*buf, *capacity);
    }
}

/* Builds the canned responses for the current token count. */
static void build_responses(void) {
    free(json_resp);
    free(sse_resp);
    free(models_resp);
    size_t cap_b = 4096, len = 0;
    char *text = malloc(cap_b);
    text[0] = 0;
    for (int i = 0; i < tokens; i++) append(&text, &len, &cap_b, "%stok%d", i ? " " : "", i);

    size_t bcap = 4096, blen = 0;
    char *body = malloc(bcap);
    append(&body, &blen, &bcap,
           "{\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion\",\"created\":1700000000,"
           "\"model\":\"stub-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
           "\"content\":\"%s\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":24,"
           "\"completion_tokens\":%d,\"total_tokens\":%d}}",
           text, tokens, tokens + 24);
    size_t rcap = blen + 256;
    json_len = 0;
    json_resp = malloc(rcap);
    append(&json_resp, &json_len, &rcap,
           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", blen,
           body);

    /* SSE: a role chunk, one chunk per token, a finish chunk with usage, [DONE]. */
    size_t scap = 4096;
    sse_len = 0;
    sse_resp = malloc(scap);
    append(&sse_resp, &sse_len, &scap,
           "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
           "Transfer-Encoding: chunked\r\n\r\n");
    const char *head = "data: {\"id\":\"chatcmpl-stub\",\"object\":\"chat.completion.chunk\","
                       "\"created\":1700000000,\"model\":\"stub-model\",\"choices\":[{\"index\":0,";
    char ev[512];
    for (int i = -1; i <= tokens; i++) {
        int n;
        if (i < 0)
            n = snprintf(ev, sizeof ev, "%s\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
                         "\"finish_reason\":null}]}\n\n", head);
        else if (i < tokens)
            n = snprintf(ev, sizeof ev, "%s\"delta\":{\"content\":\"%stok%d\"},\"finish_reason\":null}]}\n\n",
                         head, i ? " " : "", i);
        else
            n = snprintf(ev, sizeof ev, "%s\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{"
                         "\"prompt_tokens\":24,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
                         head, tokens, tokens + 24);
        append(&sse_resp, &sse_len, &scap, "%x\r\n%s\r\n", n, ev);
    }
    append(&sse_resp, &sse_len, &scap, "e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");

    const char *models = "{\"object\":\"list\",\"data\":[{\"id\":\"stub-model\",\"object\":\"model\","
                         "\"created\":1700000000,\"owned_by\":\"stub\"}]}";
    size_t mcap = 512;
    models_len = 0;
    models_resp = malloc(mcap);
    append(&models_resp, &models_len, &mcap,
           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
           strlen(models), models);
    free(text);
    free(body);
}

static void close_conn(int fd) {
    struct conn *c = &conns[fd];
    if (c->st == DELAYING) in_delay--;
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    free(c->in);
    free(c->owned);
    memset(c, 0, sizeof *c);
}

static void want_write(int fd, int on) {
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
}

static void on_readable(int fd);

/* Writes what is pending; when the response is out, takes the next request. */
static void flush_out(int fd) {
    struct conn *c = &conns[fd];
    while (c->out_off < c->out_len) {
        ssize_t n = write(fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN) {
                want_write(fd, 1);
                return;
            }
            close_conn(fd);
            return;
        }
        c->out_off += (size_t)n;
    }
    want_write(fd, 0);
    free(c->owned);
    c->owned = NULL;
    if (c->close_after) {
        close_conn(fd);
        return;
    }
    memmove(c->in, c->in + c->req_len, c->in_len - c->req_len);
    c->in_len -= c->req_len;
    c->req_len = 0;
    c->st = READING;
    if (c->in_len) on_readable(-fd - 1); /* a pipelined request is already buffered */
}

static void respond(int fd) {
    struct conn *c = &conns[fd];
    c->st = WRITING;
    c->out_off = 0;
    if (c->stream) {
        c->out = sse_resp;
        c->out_len = sse_len;
    } else {
        c->out = json_resp;
        c->out_len = json_len;
    }
    flush_out(fd);
}

/* A chat request enters its delay now, or queues while every slot is busy. */
static void admit(int fd) {
    struct conn *c = &conns[fd];
    if (delay_ms <= 0 && cap == 0) {
        respond(fd);
        return;
    }
    c->st = QUEUED;
    c->queue_seq = seq_next++;
}

static void start_queued(double t) {
    /* FIFO: start the oldest queued requests while slots are free. */
    while (cap == 0 || in_delay < cap) {
        int best = -1;
        for (int fd = 0; fd <= max_fd; fd++)
            if (conns[fd].open && conns[fd].st == QUEUED &&
                (best < 0 || conns[fd].queue_seq < conns[best].queue_seq))
                best = fd;
        if (best < 0) return;
        conns[best].st = DELAYING;
        conns[best].due = t + delay_ms;
        in_delay++;
    }
}

static void set_owned(int fd, const char *status, const char *body) {
    struct conn *c = &conns[fd];
    size_t cap_b = 256, len = 0;
    char *r = malloc(cap_b);
    append(&r, &len, &cap_b, "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
           status, strlen(body), body);
    c->owned = r;
    c->out = r;
    c->out_len = len;
    c->out_off = 0;
    c->st = WRITING;
    flush_out(fd);
}

static double query_num(const char *q, const char *key, double dflt) {
    const char *p = strstr(q, key);
    if (!p) return dflt;
    p += strlen(key);
    if (*p != '=') return dflt;
    return atof(p + 1);
}

/* Parses every complete request buffered on the connection (fd < 0: no read first). */
static void on_readable(int arg) {
    int fd = arg < 0 ? -arg - 1 : arg;
    struct conn *c = &conns[fd];
    if (arg >= 0) {
        for (;;) {
            if (c->in_len == IN_CAP) {
                close_conn(fd);
                return;
            }
            ssize_t n = read(fd, c->in + c->in_len, IN_CAP - c->in_len);
            if (n > 0) {
                c->in_len += (size_t)n;
                continue;
            }
            if (n == 0 || errno != EAGAIN) {
                close_conn(fd);
                return;
            }
            break;
        }
    }
    if (c->st != READING) return; /* one request at a time per connection */
    c->in[c->in_len] = 0;
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return;
    size_t head_len = (size_t)(end - c->in) + 4;
    size_t body_len = 0;
    c->close_after = 0;
    for (char *line = strstr(c->in, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n")) {
        if (!strncasecmp(line + 2, "content-length:", 15)) body_len = strtoul(line + 17, NULL, 10);
        if (!strncasecmp(line + 2, "connection:", 11)) {
            char *eol = strstr(line + 2, "\r\n"), *close_word = strcasestr(line + 13, "close");
            if (close_word && (!eol || close_word < eol)) c->close_after = 1;
        }
    }
    if (c->in_len < head_len + body_len) return;
    c->req_len = head_len + body_len;
    char saved = c->in[c->req_len];
    c->in[c->req_len] = 0;
    const char *body = c->in + head_len;
    if (!strncmp(c->in, "POST /v1/chat/completions", 25) || !strncmp(c->in, "POST /chat/completions", 22)) {
        c->stream = strstr(body, "\"stream\":true") || strstr(body, "\"stream\": true");
        c->in[c->req_len] = saved;
        admit(fd);
        return;
    }
    if (!strncmp(c->in, "GET /v1/models", 14) || !strncmp(c->in, "GET /models", 11)) {
        c->in[c->req_len] = saved;
        c->st = WRITING;
        c->out = models_resp;
        c->out_len = models_len;
        c->out_off = 0;
        flush_out(fd);
        return;
    }
    if (!strncmp(c->in, "POST /_stub/config", 18)) {
        char *eol = strstr(c->in, "\r\n");
        *eol = 0;
        delay_ms = query_num(c->in, "delay_ms", delay_ms);
        cap = (int)query_num(c->in, "cap", cap);
        int t = (int)query_num(c->in, "tokens", tokens);
        *eol = '\r';
        if (t != tokens && t > 0) {
            tokens = t;
            build_responses();
        }
        c->in[c->req_len] = saved;
        char msg[128];
        snprintf(msg, sizeof msg, "{\"delay_ms\":%g,\"cap\":%d,\"tokens\":%d}", delay_ms, cap, tokens);
        set_owned(fd, "200 OK", msg);
        return;
    }
    c->in[c->req_len] = saved;
    set_owned(fd, "404 Not Found", "{\"error\":{\"message\":\"not found\",\"type\":\"not_found\"}}");
}

int main(int argc, char **argv) {
    int port = 0, opt;
    while ((opt = getopt(argc, argv, "p:d:c:t:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'd': delay_ms = atof(optarg); break;
        case 'c': cap = atoi(optarg); break;
        case 't': tokens = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: stub -p PORT [-d DELAY_MS] [-c CAP] [-t TOKENS]\n");
            return 2;
        }
    }
    if (port <= 0 || tokens <= 0) {
        fprintf(stderr, "stub: -p PORT is required and -t must be positive\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    build_responses();
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) {
        perror("stub: bind/listen");
        return 1;
    }
    epfd = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &lev);
    fprintf(stderr, "stub on 127.0.0.1:%d delay=%gms cap=%d tokens=%d\n", port, delay_ms, cap, tokens);
    struct epoll_event evs[256];
    for (;;) {
        /* Wake up for the earliest delayed answer. */
        double t = now_ms(), next = -1;
        for (int fd = 0; fd <= max_fd; fd++)
            if (conns[fd].open && conns[fd].st == DELAYING && (next < 0 || conns[fd].due < next))
                next = conns[fd].due;
        int timeout = next < 0 ? -1 : (next <= t ? 0 : (int)(next - t) + 1);
        int n = epoll_wait(epfd, evs, 256, timeout);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_FD) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct conn *c = &conns[cfd];
                    memset(c, 0, sizeof *c);
                    c->open = 1;
                    c->in = malloc(IN_CAP + 1);
                    if (cfd > max_fd) max_fd = cfd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            if (!conns[fd].open) continue;
            if (evs[i].events & EPOLLOUT && conns[fd].st == WRITING) flush_out(fd);
            if (conns[fd].open && evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(fd);
        }
        t = now_ms();
        for (int fd = 0; fd <= max_fd; fd++)
            if (conns[fd].open && conns[fd].st == DELAYING && conns[fd].due <= t) {
                in_delay--;
                respond(fd);
            }
        start_queued(t);
    }
}
