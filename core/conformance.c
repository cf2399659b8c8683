/* conformance.c — `switchboard plugins check`: runs every conformance check
 * in a child process of its own (fork, or a fresh process under valgrind),
 * turns crashes, hangs and leaks into report lines, prints the report. */
#include "conformance.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <switchboard/plugin.h>

#define CONFORMANCE_TIMEOUT_S 60

static const char conformance__usage[] =
    "Usage: switchboard plugins check [options] PATH.so\n"
    "\n"
    "Checks that a channel plugin file conforms to the plugin ABI: its descriptor\n"
    "(ABI header, id, name and version, schema, capabilities), and every hook driven\n"
    "through a fake host: valid and invalid credentials, create/connect/disconnect/\n"
    "destroy cycles, malformed and oversized webhook requests, sends against failing\n"
    "HTTP (500, 429, timeouts, refused connections), and memory growth. Each check\n"
    "runs in a child process, so a crash or a hang is reported, not fatal.\n"
    "\n"
    "Options:\n"
    "  --set KEY=VALUE  a credential to use (repeatable); others get plausible values\n"
    "  --only NAME      run only this check (repeatable; load and descriptor always run)\n"
    "  --timeout S      seconds one check may take (default 60)\n"
    "  --valgrind       run each check under valgrind --leak-check=full (needs a build\n"
    "                   without sanitizers)\n"
    "  --verbose        show each failing check's stderr (the plugin's and the host's)\n"
    "\n"
    "Prints one \"PASS|FAIL name: detail\" line per check and a summary.\n"
    "Exit status: 0 every check passed, 1 some check failed, 2 bad usage or a file\n"
    "the daemon would refuse to load (not a plugin, or its descriptor is refused).\n";

typedef struct conformance_opts {
  const char *path;
  char *sets[64];
  size_t set_count;
  const char *only[32];
  size_t only_count;
  unsigned timeout_s;
  int valgrind;
  int verbose;
  const char *run_one; /* internal: run this check in this process */
} conformance_opts;

static int conformance__parse(int argc, char **argv, conformance_opts *o) {
  memset(o, 0, sizeof(*o));
  o->timeout_s = CONFORMANCE_TIMEOUT_S;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int has_value = i + 1 < argc;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      fputs(conformance__usage, stdout);
      return -1;
    } else if (strcmp(a, "--set") == 0 && has_value) {
      char *v = argv[++i];
      if (strchr(v, '=') == NULL || v[0] == '=' || o->set_count == sizeof(o->sets) / sizeof(o->sets[0])) {
        fprintf(stderr, "switchboard plugins check: --set takes KEY=VALUE (at most 64)\n");
        return 2;
      }
      o->sets[o->set_count++] = v;
    } else if (strcmp(a, "--only") == 0 && has_value) {
      if (o->only_count == sizeof(o->only) / sizeof(o->only[0])) return 2;
      o->only[o->only_count++] = argv[++i];
    } else if (strcmp(a, "--timeout") == 0 && has_value) {
      long t = strtol(argv[++i], NULL, 10);
      if (t <= 0 || t > 3600) {
        fprintf(stderr, "switchboard plugins check: --timeout takes 1-3600 seconds\n");
        return 2;
      }
      o->timeout_s = (unsigned)t;
    } else if (strcmp(a, "--run-one") == 0 && has_value) {
      o->run_one = argv[++i];
    } else if (strcmp(a, "--valgrind") == 0) {
      o->valgrind = 1;
    } else if (strcmp(a, "--verbose") == 0) {
      o->verbose = 1;
    } else if (a[0] == '-') {
      fprintf(stderr, "switchboard plugins check: option %s is unknown or needs a value; see --help\n", a);
      return 2;
    } else if (o->path != NULL) {
      fprintf(stderr, "switchboard plugins check: give one plugin file, not \"%s\" too\n", a);
      return 2;
    } else {
      o->path = a;
    }
  }
  if (o->path == NULL) {
    fprintf(stderr, "switchboard plugins check: give the plugin file to check: PATH.so\n");
    return 2;
  }
  for (size_t i = 0; i < o->only_count; i++) {
    const conformance_check *c = conformance_checks;
    while (c->name != NULL && strcmp(c->name, o->only[i]) != 0) c++;
    if (c->name == NULL) {
      fprintf(stderr, "switchboard plugins check: there is no check named \"%s\"\n", o->only[i]);
      return 2;
    }
  }
  return 0;
}

/* Runs one check in this process: the result goes to out as "P detail" or
 * "F detail". Returns the process exit status for it. */
static int conformance__run_here(const conformance_opts *o, const conformance_check *c, FILE *out) {
  conformance_ctx ctx = {.path = o->path, .sets = o->sets, .set_count = o->set_count};
  int rc = c->run(&ctx);
  fprintf(out, "%c %s\n", rc == CONFORMANCE_PASS ? 'P' : 'F', ctx.detail);
  fflush(out);
  return rc == CONFORMANCE_PASS ? 0 : 1;
}

/* The first line of f that contains needle (or the last non-empty line when
 * needle is NULL), trimmed, into buf. */
static void conformance__grep(FILE *f, const char *needle, char *buf, size_t buflen) {
  char line[1024];
  buf[0] = '\0';
  rewind(f);
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    if (needle != NULL ? strstr(line, needle) != NULL : line[0] != '\0') {
      snprintf(buf, buflen, "%s", line);
      if (needle != NULL) return;
    }
  }
}

static void conformance__dump(FILE *f) {
  char line[1024];
  int any = 0;
  rewind(f);
  while (fgets(line, sizeof(line), f) != NULL) {
    line[strcspn(line, "\n")] = '\0';
    fprintf(stdout, "    | %s\n", line);
    any = 1;
  }
  if (!any) fputs("    | (nothing on stderr)\n", stdout);
}

/* Runs one check in a child; prints its report line. Returns 1 passed. */
static int conformance__run_child(const conformance_opts *o, const conformance_check *c, char *self) {
  FILE *result = tmpfile(), *errors = tmpfile();
  if (result == NULL || errors == NULL) {
    printf("FAIL %s: cannot make a temporary file: %s\n", c->name, strerror(errno));
    if (result != NULL) fclose(result);
    if (errors != NULL) fclose(errors);
    return 0;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    printf("FAIL %s: cannot fork: %s\n", c->name, strerror(errno));
    fclose(result);
    fclose(errors);
    return 0;
  }
  if (pid == 0) {
    dup2(fileno(errors), STDERR_FILENO);
    dup2(fileno(result), STDOUT_FILENO);
    alarm(o->timeout_s);
    if (o->valgrind) {
      char timeout[16];
      snprintf(timeout, sizeof(timeout), "%u", o->timeout_s);
      char *args[16 + 2 * 64] = {"valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=definite",
                                "--error-exitcode=99", self, "plugins", "check"};
      int n = 8;
      for (size_t i = 0; i < o->set_count; i++) {
        args[n++] = "--set";
        args[n++] = o->sets[i];
      }
      args[n++] = "--run-one";
      args[n++] = (char *)c->name;
      args[n++] = (char *)o->path;
      args[n] = NULL;
      execvp("valgrind", args);
      fprintf(stderr, "cannot run valgrind: %s\n", strerror(errno));
      _exit(98);
    }
    fclose(stdin);
    /* exit, not _exit: a sanitizer build checks for leaks at exit. */
    exit(conformance__run_here(o, c, stdout));
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) continue;
  char line[2200] = "", why[1024];
  conformance__grep(result, NULL, line, sizeof(line));
  int passed = 0;
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (sig == SIGALRM) {
      printf("FAIL %s: did not finish within %u s: a hook blocked or looped (hooks must return at once)\n", c->name,
             o->timeout_s);
    } else {
      conformance__grep(errors, "Invalid ", why, sizeof(why)); /* valgrind names the bad access */
      if (why[0] == '\0') conformance__grep(errors, NULL, why, sizeof(why));
      printf("FAIL %s: crashed with signal %d (%s)%s%s\n", c->name, sig, strsignal(sig), why[0] ? ": " : "", why);
    }
  } else if (line[0] == '\0' || (line[0] != 'P' && line[0] != 'F')) {
    conformance__grep(errors, "ERROR: AddressSanitizer", why, sizeof(why));
    if (why[0] == '\0') conformance__grep(errors, "runtime error", why, sizeof(why));
    if (why[0] == '\0') conformance__grep(errors, NULL, why, sizeof(why));
    printf("FAIL %s: crashed (exit status %d)%s%s\n", c->name, WEXITSTATUS(status), why[0] ? ": " : "", why);
  } else if (WEXITSTATUS(status) == 99 || (line[0] == 'P' && WEXITSTATUS(status) != 0)) {
    conformance__grep(errors, o->valgrind ? "definitely lost" : "SUMMARY", why, sizeof(why));
    if (why[0] == '\0') conformance__grep(errors, NULL, why, sizeof(why));
    printf("FAIL %s: %s; memory errors or leaks: %s\n", c->name, line + 2, why[0] ? why : "see --verbose");
  } else {
    passed = line[0] == 'P';
    printf("%s %s: %s\n", passed ? "PASS" : "FAIL", c->name, line + 2);
  }
  if (!passed && o->verbose) conformance__dump(errors);
  fclose(result);
  fclose(errors);
  return passed;
}

static int conformance__selected(const conformance_opts *o, const conformance_check *c) {
  if (o->only_count == 0 || c == &conformance_checks[0] || c == &conformance_checks[1]) return 1;
  for (size_t i = 0; i < o->only_count; i++) {
    if (strcmp(o->only[i], c->name) == 0) return 1;
  }
  return 0;
}

int conformance_main(int argc, char **argv) {
  conformance_opts o;
  int rc = conformance__parse(argc, argv, &o);
  if (rc != 0) return rc < 0 ? 0 : rc;
  if (o.run_one != NULL) {
    for (const conformance_check *c = conformance_checks; c->name != NULL; c++) {
      if (strcmp(c->name, o.run_one) == 0) return conformance__run_here(&o, c, stdout);
    }
    return 2;
  }
  struct stat st;
  errno = 0;
  if (stat(o.path, &st) != 0 || !S_ISREG(st.st_mode)) {
    fprintf(stderr, "switchboard plugins check: %s is not a readable file%s%s\n", o.path,
            errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
    return 2;
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  printf("Checking %s\n", o.path);
  size_t passed = 0, failed = 0, skipped = 0;
  int refused = 0, misnamed = 0;
  for (const conformance_check *c = conformance_checks; c->name != NULL; c++) {
    if (!conformance__selected(&o, c)) continue;
    if (refused) {
      skipped++;
      continue;
    }
    int ok = conformance__run_child(&o, c, self);
    ok ? passed++ : failed++;
    /* Without a loadable descriptor nothing else can be driven. */
    if (!ok && (c == &conformance_checks[0] || c == &conformance_checks[1])) refused = 1;
    /* The daemon loads only <id>.so, but the other checks can still run. */
    if (!ok && strcmp(c->name, "file-name") == 0) misnamed = 1;
  }
  if (refused) {
    printf("%zu passed, %zu failed, %zu not run: the daemon would refuse to load %s\n", passed, failed, skipped,
           o.path);
    return 2;
  }
  if (misnamed) {
    printf("%zu passed, %zu failed: the daemon would refuse to load %s under its file name\n", passed, failed, o.path);
    return 2;
  }
  printf("%zu passed, %zu failed: %s %s plugin ABI %d.%d\n", passed, failed, o.path,
         failed == 0 ? "conforms to" : "does not conform to", SB_ABI_MAJOR, SB_ABI_MINOR);
  return failed == 0 ? 0 : 1;
}
