/* listen_addr.h — parsing a listen address. */
#ifndef SB_CORE_LISTEN_ADDR_H
#define SB_CORE_LISTEN_ADDR_H

#include <stddef.h>
#include <sys/socket.h>

/* Reads addr (HOST:PORT with a numeric IPv4 address, "localhost", "*" or
 * nothing for every address, or [IPV6]:PORT; port 0-65535) into *ss;
 * -EINVAL with a sentence naming addr. */
int listen_parse(const char *addr, struct sockaddr_storage *ss, char *err, size_t errlen);

#endif
