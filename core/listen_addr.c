/* listen_addr.c — the server's listen address, HOST:PORT or [IPV6]:PORT, read the same way by the
 * config check and by the server that binds it. */
#include "listen_addr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

int listen_parse(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen) {
  if (addr == NULL || *addr == '\0') {
    snprintf(err, errlen, "the listen address is empty; give HOST:PORT, e.g. 127.0.0.1:8080");
    return -EINVAL;
  }
  char host[128];
  const char *port_s;
  int v6 = 0;
  if (addr[0] == '[') {
    const char *close = strchr(addr, ']');
    if (close == NULL || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof(host)) goto bad;
    memcpy(host, addr + 1, (size_t)(close - addr - 1));
    host[close - addr - 1] = '\0';
    port_s = close + 2;
    v6 = 1;
  } else {
    const char *colon = strrchr(addr, ':');
    if (colon == NULL || (size_t)(colon - addr) >= sizeof(host)) goto bad;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    port_s = colon + 1;
    if (strchr(host, ':') != NULL) goto bad;
  }
  char *end = NULL;
  errno = 0;
  long port = strtol(port_s, &end, 10);
  if (*port_s == '\0' || strspn(port_s, "0123456789") != strlen(port_s) || end == NULL || *end != '\0' ||
      errno != 0 || port < 0 || port > 65535)
    goto bad; /* digits only: strtol would take "+80" or " 80" */
  memset(ss, 0, sizeof(*ss));
  if (v6) {
    if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) != 0) goto bad;
  } else {
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof(host), "127.0.0.1");
    if (*host == '\0' || strcmp(host, "*") == 0) snprintf(host, sizeof(host), "0.0.0.0");
    if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) != 0) goto bad;
  }
  return 0;
bad:
  snprintf(err, errlen, "listen address \"%s\" is not HOST:PORT or [IPV6]:PORT with a numeric address and a port 0-65535",
           addr);
  return -EINVAL;
}
