/*
 * loadgen: the HTTP/1.1 load generator of the load benchmark (bench/load/run.py).
 *
 * Why our own: Debian ships wrk (closed loop only); wrk2, vegeta and oha are not in the
 * registries this project may use. A Python client would spend more CPU than the gateway
 * under test on a 2-core machine. One thread, epoll, keep-alive connections.
 *
 * Two modes:
 *   open loop (-r RATE): request i is due at start + i/RATE whatever happened before
 *     (wrk2-style). A due request takes an idle connection, opens a new one up to -c, or
 *     waits for one; its latency counts from when it was due, so a slow server cannot
 *     hide its queueing (no coordinated omission).
 *   closed loop (-r 0): -c connections, each sends its next request as soon as the
 *     previous answer is in: the maximum throughput at that concurrency.
 *
 * Answers may carry Content-Length or chunked bodies (SSE streams). A 2xx answer whose
 * body lacks the -e string counts as an error. Requests still open -T seconds after the
 * last one was due count as timeouts. Prints one JSON object on stdout, including the
 * tool's own CPU time so that its cost can be stated.
 *
 * usage: loadgen -p PORT [-P PATH] -b BODY_FILE [-H 'Header: v']... [-r RATE] [-c CONNS]
 *                [-d SECONDS] [-e EXPECT] [-T DRAIN_SECONDS]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF_CAP (4 << 20)
#define MAX_CONNS 4096

struct conn {
    int fd;
    int connecting, busy;
    double started; /* when the request in flight was due (open) or sent (closed) */
    double first_byte;
    char *buf;
    size_t len;
    size_t sent;
    long head_end;  /* offset just past the headers, -1 until seen */
    int status;
    long content_length; /* -1: chunked or unknown */
    int chunked;
    size_t chunk_pos;
};

static struct conn conns[MAX_CONNS];
static int nconns, epfd;
static char *request;
static size_t request_len;
static const char *expect;
static struct sockaddr_in addr;
static double *lat, *ttfb;
static long nlat, lat_cap;
static long sent, ok, err_status4, err_status5, err_conn, err_body, timeouts;
static long waiting, max_waiting; /* due requests with no connection yet (open loop) */
static double *wait_since;        /* ring of due times of waiting requests */
static long wait_head, wait_cap;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, long n, double q) {
    if (n == 0) return 0;
    long i = (long)(q * (double)(n - 1) + 0.5);
    return v[i];
}

static void record(double total, double first) {
    if (nlat == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 65536;
        lat = realloc(lat, sizeof *lat * (size_t)lat_cap);
        ttfb = realloc(ttfb, sizeof *ttfb * (size_t)lat_cap);
    }
    lat[nlat] = total;
    ttfb[nlat++] = first;
}

static int open_conn(struct conn *c) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->connecting = 1;
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return 0;
}

static void drop_conn(struct conn *c) {
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->connecting = 0;
}

static void send_more(struct conn *c) {
    while (c->sent < request_len) {
        ssize_t n = write(c->fd, request + c->sent, request_len - c->sent);
        if (n < 0) {
            if (errno == EAGAIN) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                return;
            }
            return; /* the read side will see the error */
        }
        c->sent += (size_t)n;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Puts a request on c, due at `due`. Opens the connection first when it is closed. */
static void start_request(struct conn *c, double due) {
    c->busy = 1;
    c->started = due;
    c->first_byte = 0;
    c->len = 0;
    c->sent = 0;
    c->head_end = -1;
    c->chunk_pos = 0;
    sent++;
    if (c->fd < 0 && open_conn(c)) {
        c->busy = 0;
        err_conn++;
        return;
    }
    if (!c->connecting) send_more(c);
}

/* Returns 1 when the buffered bytes hold a whole answer. */
static int answer_complete(struct conn *c) {
    if (c->head_end < 0) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return 0;
        c->head_end = end - c->buf + 4;
        c->status = atoi(c->buf + 9);
        c->content_length = -1;
        c->chunked = 0;
        *end = 0;
        for (char *line = strstr(c->buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
            if (!strncasecmp(line + 2, "content-length:", 15)) c->content_length = atol(line + 17);
            if (!strncasecmp(line + 2, "transfer-encoding:", 18) && strcasestr(line + 20, "chunked"))
                c->chunked = 1;
        }
        *end = '\r';
        c->chunk_pos = (size_t)c->head_end;
    }
    if (!c->chunked) {
        if (c->content_length < 0) return 0; /* read to close: not supported, waits for EOF */
        return c->len >= (size_t)c->head_end + (size_t)c->content_length;
    }
    for (;;) {
        char *eol = memmem(c->buf + c->chunk_pos, c->len - c->chunk_pos, "\r\n", 2);
        if (!eol) return 0;
        size_t size = strtoul(c->buf + c->chunk_pos, NULL, 16);
        size_t next = (size_t)(eol - c->buf) + 2 + size + 2;
        if (c->len < next) return 0;
        c->chunk_pos = next;
        if (size == 0) return 1;
    }
}

static void finish(struct conn *c, double t, int closed_loop, double stop_at);

static void on_event(struct conn *c, uint32_t events, int closed_loop, double stop_at) {
    double t = now_s();
    if (c->connecting) {
        int e = 0;
        socklen_t l = sizeof e;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &l);
        if (e) {
            drop_conn(c);
            c->busy = 0;
            err_conn++;
            return;
        }
        c->connecting = 0;
        if (c->busy) send_more(c);
        return;
    }
    if (events & EPOLLOUT && c->busy && c->sent < request_len) send_more(c);
    if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
    for (;;) {
        if (c->len == BUF_CAP) break;
        ssize_t n = read(c->fd, c->buf + c->len, BUF_CAP - c->len);
        if (n > 0) {
            if (c->len == 0) c->first_byte = t;
            c->len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EAGAIN) break;
        /* EOF or error: fails the request in flight, if any. */
        int was_busy = c->busy;
        drop_conn(c);
        if (was_busy) {
            c->busy = 0;
            err_conn++;
            finish(c, t, closed_loop, stop_at);
        }
        return;
    }
    if (c->busy && answer_complete(c)) {
        if (c->status >= 200 && c->status < 300) {
            if (expect && !memmem(c->buf + c->head_end, c->len - (size_t)c->head_end, expect, strlen(expect)))
                err_body++;
            else {
                ok++;
                record((t - c->started) * 1e3, ((c->first_byte ? c->first_byte : t) - c->started) * 1e3);
            }
        } else if (c->status >= 500)
            err_status5++;
        else
            err_status4++;
        c->busy = 0;
        finish(c, t, closed_loop, stop_at);
    }
}

/* A connection is free: give it the next request (closed loop or a waiting one). */
static void finish(struct conn *c, double t, int closed_loop, double stop_at) {
    if (closed_loop) {
        if (t < stop_at) start_request(c, t);
        return;
    }
    if (waiting > 0) {
        double due = wait_since[wait_head % wait_cap];
        wait_head++;
        waiting--;
        start_request(c, due);
    }
}

int main(int argc, char **argv) {
    int port = 0, max_conns = 64, opt;
    double rate = 0, duration = 10, drain = 10;
    const char *path = "/v1/chat/completions", *body_file = NULL;
    char headers[8192] = "";
    while ((opt = getopt(argc, argv, "p:P:b:H:r:c:d:e:T:")) != -1) {
        switch (opt) {
        case 'p': port = atoi(optarg); break;
        case 'P': path = optarg; break;
        case 'b': body_file = optarg; break;
        case 'H':
            strncat(headers, optarg, sizeof headers - strlen(headers) - 3);
            strcat(headers, "\r\n");
            break;
        case 'r': rate = atof(optarg); break;
        case 'c': max_conns = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'e': expect = optarg; break;
        case 'T': drain = atof(optarg); break;
        default:
            fprintf(stderr, "usage: loadgen -p PORT -b BODY [-P PATH] [-H H]... [-r RATE] [-c CONNS] [-d S] [-e EXPECT] [-T S]\n");
            return 2;
        }
    }
    if (port <= 0 || !body_file || max_conns < 1 || max_conns > MAX_CONNS) {
        fprintf(stderr, "loadgen: -p PORT and -b BODY_FILE are required; -c is 1..%d\n", MAX_CONNS);
        return 2;
    }
    FILE *f = fopen(body_file, "rb");
    if (!f) {
        perror(body_file);
        return 2;
    }
    char body[65536];
    size_t body_len = fread(body, 1, sizeof body, f);
    fclose(f);
    request = malloc(body_len + sizeof headers + 512);
    request_len = (size_t)sprintf(request,
                                  "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                                  "Content-Length: %zu\r\n%s\r\n",
                                  path, port, body_len, headers);
    memcpy(request + request_len, body, body_len);
    request_len += body_len;

    signal(SIGPIPE, SIG_IGN);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    epfd = epoll_create1(0);
    nconns = max_conns;
    for (int i = 0; i < nconns; i++) {
        conns[i].fd = -1;
        conns[i].buf = malloc(BUF_CAP);
    }
    int closed_loop = rate <= 0;
    double start = now_s(), stop_at = start + duration;
    long issued = 0;
    if (closed_loop)
        for (int i = 0; i < nconns; i++) start_request(&conns[i], start);
    else {
        wait_cap = (long)(rate * duration) + 16;
        wait_since = malloc(sizeof *wait_since * (size_t)wait_cap);
    }
    struct epoll_event evs[512];
    for (;;) {
        double t = now_s();
        if (!closed_loop) {
            /* Issue every request that is due by now: each one due before the end, even
             * when this loop runs after the end (the tool was descheduled meanwhile). */
            while (start + (double)issued / rate < stop_at && start + (double)issued / rate <= t) {
                double due = start + (double)issued / rate;
                issued++;
                struct conn *free_conn = NULL;
                for (int i = 0; i < nconns && !free_conn; i++)
                    if (!conns[i].busy && conns[i].fd >= 0) free_conn = &conns[i];
                for (int i = 0; i < nconns && !free_conn; i++)
                    if (!conns[i].busy) free_conn = &conns[i];
                if (free_conn)
                    start_request(free_conn, due);
                else {
                    wait_since[(wait_head + waiting) % wait_cap] = due;
                    waiting++;
                    if (waiting > max_waiting) max_waiting = waiting;
                }
            }
        }
        int busy = 0;
        for (int i = 0; i < nconns; i++) busy += conns[i].busy;
        if (t >= stop_at && busy == 0 && waiting == 0) break;
        if (t >= stop_at + drain) break;
        /* Sleep until the next request is due, to the microsecond (epoll_wait's
         * millisecond timeout would either spin or send up to 1 ms late). */
        double wait = 0.05;
        if (!closed_loop && t < stop_at) {
            double next = start + (double)issued / rate;
            wait = next <= t ? 0 : next - t;
        }
        struct timespec ts = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
        int n = epoll_pwait2(epfd, evs, 512, &ts, NULL);
        for (int i = 0; i < n; i++) on_event(evs[i].data.ptr, evs[i].events, closed_loop, stop_at);
    }
    double elapsed = now_s() - start;
    for (int i = 0; i < nconns; i++) timeouts += conns[i].busy;
    timeouts += waiting;
    qsort(lat, (size_t)nlat, sizeof *lat, cmp_double);
    qsort(ttfb, (size_t)nlat, sizeof *ttfb, cmp_double);
    double sum = 0;
    for (long i = 0; i < nlat; i++) sum += lat[i];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    double span = elapsed < duration ? elapsed : duration;
    printf("{\"mode\":\"%s\",\"rate\":%g,\"connections\":%d,\"duration_s\":%g,\"elapsed_s\":%.3f,"
           "\"sent\":%ld,\"ok\":%ld,\"rps\":%.1f,"
           "\"errors\":{\"status_4xx\":%ld,\"status_5xx\":%ld,\"connection\":%ld,\"bad_body\":%ld,\"timeout\":%ld},"
           "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"mean\":%.3f},"
           "\"ttfb_ms\":{\"p50\":%.3f,\"p99\":%.3f},\"max_waiting\":%ld,\"loadgen_cpu_s\":%.3f}\n",
           closed_loop ? "closed" : "open", rate, max_conns, duration, elapsed, sent, ok,
           (double)ok / span, err_status4, err_status5, err_conn, err_body, timeouts,
           pct(lat, nlat, .5), pct(lat, nlat, .9), pct(lat, nlat, .99), pct(lat, nlat, .999),
           nlat ? lat[nlat - 1] : 0, nlat ? sum / (double)nlat : 0, pct(ttfb, nlat, .5), pct(ttfb, nlat, .99),
           max_waiting, cpu);
    return 0;
}
