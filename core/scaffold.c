/* scaffold.c — `switchboard plugins new`: fills the embedded plugin project
 * template with a plugin id and writes it into a fresh directory. */
#include "scaffold.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader.h"

static const char scaffold__usage[] =
    "Usage: switchboard plugins new NAME [DIR]\n"
    "\n"
    "Writes a plugin project for the channel type NAME into DIR (default ./NAME):\n"
    "  CMakeLists.txt   finds the SDK with pkg-config only (switchboard-plugin,\n"
    "                   switchboard-testhost); builds NAME.so and its unit test\n"
    "  NAME.c           a working echo channel with every hook filled in\n"
    "  test_NAME.c      unit tests with the SDK's stub test host\n"
    "  README.md        how to build, test, check and load it\n"
    "NAME is the plugin id: 1-32 of a-z, 0-9 and _, starting with a letter.\n"
    "DIR must not exist or be empty. Then, with PKG_CONFIG_PATH naming the SDK's\n"
    "lib/pkgconfig: cmake -S DIR -B DIR/build && cmake --build DIR/build.\n"
    "See docs/plugin-guide.md.\n";

/* Replaces {{name}} by id and {{NAME}} by its upper case. Returns a new
 * string (free it) or NULL when out of memory. */
static char *scaffold__render(const scaffold_template *t, const char *id, size_t *outlen) {
  size_t idlen = strlen(id), cap = t->len + 1, n = 0;
  for (const char *p = t->text; (p = strstr(p, "{{")) != NULL; p += 2) cap += idlen;
  char *out = malloc(cap);
  if (out == NULL) return NULL;
  for (size_t i = 0; i < t->len;) {
    int lower = strncmp(t->text + i, "{{name}}", 8) == 0, upper = strncmp(t->text + i, "{{NAME}}", 8) == 0;
    if (lower || upper) {
      for (size_t k = 0; k < idlen; k++) {
        char c = id[k];
        out[n++] = upper && c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
      }
      i += 8;
    } else {
      out[n++] = t->text[i++];
    }
  }
  out[n] = '\0';
  *outlen = n;
  return out;
}

/* The file a template becomes in the project. */
static void scaffold__file_name(const char *tname, const char *id, char *out, size_t outlen) {
  if (strcmp(tname, "plugin.c") == 0) {
    snprintf(out, outlen, "%s.c", id);
  } else if (strcmp(tname, "test_plugin.c") == 0) {
    snprintf(out, outlen, "test_%s.c", id);
  } else if (strcmp(tname, "gitignore") == 0) {
    snprintf(out, outlen, ".gitignore");
  } else {
    snprintf(out, outlen, "%s", tname);
  }
}

/* 1 when dir exists and holds anything, 0 when absent or empty, -1 when it
 * exists but is not a readable directory. */
static int scaffold__dir_state(const char *dir) {
  struct stat st;
  if (stat(dir, &st) != 0) return errno == ENOENT ? 0 : -1;
  if (!S_ISDIR(st.st_mode)) return -1;
  DIR *d = opendir(dir);
  if (d == NULL) return -1;
  struct dirent *e;
  int used = 0;
  while (!used && (e = readdir(d)) != NULL) used = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
  closedir(d);
  return used;
}

/* mkdir -p. Returns 0 or -errno. */
static int scaffold__mkdirs(const char *dir) {
  char path[4096];
  if (snprintf(path, sizeof(path), "%s", dir) >= (int)sizeof(path)) return -ENAMETOOLONG;
  for (char *p = path + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(path, 0755) != 0 && errno != EEXIST) return -errno;
  return 0;
}

static int scaffold__write(const char *path, const char *text, size_t len) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return -errno;
  size_t done = 0;
  while (done < len) {
    ssize_t w = write(fd, text + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    done += (size_t)w;
  }
  return close(fd) == 0 ? 0 : -errno;
}

int scaffold_main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      fputs(scaffold__usage, stdout);
      return 0;
    }
    if (argv[i][0] == '-') {
      fprintf(stderr, "switchboard plugins new: option %s is unknown; see `switchboard plugins new --help`\n",
              argv[i]);
      return 2;
    }
  }
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "switchboard plugins new: give a plugin id and optionally a directory: NAME [DIR]\n");
    return 2;
  }
  const char *id = argv[1];
  if (!loader_id_valid(id)) {
    fprintf(stderr,
            "switchboard plugins new: \"%.64s\" is not a valid plugin id (use 1-32 of a-z, 0-9 and _, starting with a letter)\n",
            id);
    return 2;
  }
  const char *dir = argc == 3 ? argv[2] : id;
  int state = scaffold__dir_state(dir);
  if (state != 0) {
    fprintf(stderr, "switchboard plugins new: %s %s; choose a new or empty directory\n", dir,
            state > 0 ? "exists and is not empty" : "exists and is not a usable directory");
    return 2;
  }
  int rc = scaffold__mkdirs(dir);
  if (rc != 0) {
    fprintf(stderr, "switchboard plugins new: cannot create directory %s: %s\n", dir, strerror(-rc));
    return 1;
  }
  for (const scaffold_template *t = scaffold_templates; t->name != NULL; t++) {
    char name[128], path[4400];
    size_t len;
    scaffold__file_name(t->name, id, name, sizeof(name));
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    char *text = scaffold__render(t, id, &len);
    if (text == NULL) {
      fprintf(stderr, "switchboard plugins new: out of memory\n");
      return 1;
    }
    rc = scaffold__write(path, text, len);
    free(text);
    if (rc != 0) {
      fprintf(stderr, "switchboard plugins new: cannot write %s: %s\n", path, strerror(-rc));
      return 1;
    }
    printf("wrote %s\n", path);
  }
  printf("\nNext, with PKG_CONFIG_PATH naming the Switchboard SDK's lib/pkgconfig:\n"
         "  cmake -S %s -B %s/build && cmake --build %s/build\n"
         "  (cd %s/build && ctest --output-on-failure)\n"
         "  switchboard plugins check %s/build/%s.so\n",
         dir, dir, dir, dir, dir, id);
  return 0;
}
