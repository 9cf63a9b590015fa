/* The pod sandbox's pause process: holds the pod's namespaces, reaps nothing, exits on
 * SIGTERM or SIGINT. Built static into a FROM scratch image (cluster/pause/Containerfile). */
#include <signal.h>
#include <unistd.h>

static void leave(int sig) { (void)sig; _exit(0); }

int main(void) {
  signal(SIGTERM, leave);
  signal(SIGINT, leave);
  for (;;) pause();
}
