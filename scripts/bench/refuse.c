/*
 * synsight benchmark: a refusal storm generator. Each worker process opens a
 * non-blocking TCP socket, connects to a port nobody listens on, and closes
 * it, as fast as it can, for a fixed time. On loopback the SYN, the RST and
 * the client's ECONNREFUSED are all processed inside connect() (softirq on
 * the way out of the syscall), so one socket()/connect()/close() round is
 * one refusal; SO_ERROR is read to count what the client saw.
 *
 *   refuse ADDR PORT SECONDS WORKERS
 *
 * Prints "attempts refused other" summed over the workers. Bounded in time
 * and sends only to the address it is given (the benchmarks use loopback in
 * a namespace of their own).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct counts {
	unsigned long long attempts, refused, other;
	char pad[64 - 3 * sizeof(unsigned long long)];
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: refuse ADDR PORT SECONDS WORKERS\n");
		return 2;
	}
	struct sockaddr_storage ss;
	socklen_t slen;
	memset(&ss, 0, sizeof(ss));
	int family = strchr(argv[1], ':') ? AF_INET6 : AF_INET;
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons(atoi(argv[2]));
		if (inet_pton(AF_INET, argv[1], &a->sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
		slen = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(atoi(argv[2]));
		if (inet_pton(AF_INET6, argv[1], &a->sin6_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
		slen = sizeof(*a);
	}
	double seconds = atof(argv[3]);
	int workers = atoi(argv[4]);
	if (seconds <= 0 || seconds > 600 || workers < 1 || workers > 64) {
		fprintf(stderr, "SECONDS must be in (0, 600], WORKERS in [1, 64]\n");
		return 2;
	}
	struct counts *c = mmap(NULL, sizeof(*c) * workers, PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (c == MAP_FAILED) { perror("mmap"); return 1; }
	memset(c, 0, sizeof(*c) * workers);
	double end = now() + seconds;

	for (int w = 0; w < workers; w++) {
		pid_t pid = fork();
		if (pid < 0) { perror("fork"); return 1; }
		if (pid > 0)
			continue;
		struct counts *my = &c[w];
		unsigned long long n = 0;
		for (;;) {
			/* Check the clock every 256 attempts: cheap and bounded. */
			if ((n++ & 255) == 0 && now() >= end)
				break;
			int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			if (fd < 0) { my->other++; continue; }
			my->attempts++;
			int r = connect(fd, (struct sockaddr *)&ss, slen);
			int err = r == 0 ? 0 : errno;
			if (err == EINPROGRESS) {
				socklen_t l = sizeof(err);
				if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0)
					err = errno;
			}
			if (err == ECONNREFUSED)
				my->refused++;
			else
				my->other++;
			close(fd);
		}
		_exit(0);
	}
	for (int w = 0; w < workers; w++)
		wait(NULL);
	unsigned long long a = 0, r = 0, o = 0;
	for (int w = 0; w < workers; w++) {
		a += c[w].attempts;
		r += c[w].refused;
		o += c[w].other;
	}
	printf("%llu %llu %llu\n", a, r, o);
	return 0;
}
