/* cli.c — the command line: run, check, plugins list|schema|check|new, tokens create, --version, --help. */
#include "cli.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "api.h"
#include "channel.h"
#include "config.h"
#include "conformance.h"
#include "package.h"
#include "daemon.h"
#include "loader.h"
#include "log.h"
#include "scaffold.h"
#include "schema.h"
#include "store.h"

#define CLI_OK 0
#define CLI_RUNTIME 1
#define CLI_USAGE 2

static const char cli__usage[] =
    "Usage: switchboard <command> [options]\n"
    "\n"
    "Commands:\n"
    "  run    -c FILE [--listen ADDR:PORT] [--store URL] [--log-level L]   start the daemon\n"
    "  check  -c FILE [--listen ADDR:PORT] [--store URL]   validate config and credentials, start nothing\n"
    "  plugins list   [-c FILE | --dir DIR...] [--json]    list the plugins that load\n"
    "  plugins schema ID [-c FILE | --dir DIR...]          a plugin's credential schema as JSON Schema\n"
    "  plugins check  PATH.so [--set KEY=VALUE...]         conformance report for a plugin file\n"
    "  plugins new    NAME [DIR]                           scaffold an out-of-tree plugin project\n"
    "  plugins keygen NAME                                 a signing key for plugin packages\n"
    "  plugins pack   PATH/ID.so --key NAME.key [--add FILE]...   a signed package ID-VERSION.sbpkg\n"
    "  plugins verify PKG.sbpkg [--trust KEY]... [-c FILE] check a package's signature and files\n"
    "  plugins install PKG.sbpkg -c FILE                   verify with plugins.trusted_keys, then install\n"
    "  tokens create  -c FILE --name N --role admin|agent [--user NAME]   create a REST API token (printed once)\n"
    "\n"
    "Options:\n"
    "  --version   print the version and the plugin ABI version\n"
    "  --help      this text; `switchboard <command> --help` for one command\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or invalid config.\n";

static const char cli__run_usage[] =
    "Usage: switchboard run -c FILE [--listen ADDR:PORT] [--store URL] [--log-level L]\n"
    "\n"
    "Starts the daemon with the config FILE. --listen and --store override the file's\n"
    "\"listen\" and \"store\"; --store takes sqlite:PATH (PostgreSQL is not supported yet).\n"
    "--log-level is error, warn, info or debug. SIGTERM or SIGINT stop it gracefully;\n"
    "SIGHUP reloads the config (an invalid one is refused and the old one kept).\n";

static const char cli__check_usage[] =
    "Usage: switchboard check -c FILE [--listen ADDR:PORT] [--store URL]\n"
    "\n"
    "Validates the config FILE: its structure, the plugins it allows, and every\n"
    "channel's credentials against its plugin's schema. Starts nothing.\n"
    "Exit status 0 when valid, 2 with one sentence on stderr when not.\n";

static const char cli__plugins_usage[] =
    "Usage: switchboard plugins list [-c FILE | --dir DIR...] [--json]\n"
    "       switchboard plugins schema ID [-c FILE | --dir DIR...]\n"
    "       switchboard plugins check PATH.so        (see `switchboard plugins check --help`)\n"
    "       switchboard plugins new NAME [DIR]       (see `switchboard plugins new --help`)\n"
    "       switchboard plugins keygen|pack|verify|install ...   (see `switchboard plugins pack --help`)\n"
    "\n"
    "With -c, the plugins the config allows from its plugins.dirs; otherwise every\n"
    "plugin in the given --dir directories (default: " SB_DEFAULT_PLUGIN_DIR ").\n"
    "`schema` prints the plugin's credential schema as JSON Schema; SECRET fields\n"
    "are marked \"writeOnly\".\n";

static const char cli__tokens_usage[] =
    "Usage: switchboard tokens create -c FILE --name N --role admin|agent [--user NAME] [--store URL]\n"
    "\n"
    "Creates a bearer token for the REST API (/api/v1) in the store the config FILE\n"
    "names and prints it once on stdout; only its hash is kept, so save it now.\n"
    "An admin token manages channels, users and teams; an agent token reads and\n"
    "replies. Names are unique. The daemon may be running meanwhile.\n"
    "With --user the token belongs to that user (who must exist: in the config's\n"
    "\"users\" once the daemon has started, or made over the API): replies made\n"
    "with it carry the user as their author, whose name reaches the customer.\n"
    "Deleting the user revokes the token.\n";

typedef struct cli_opts {
  const char *config;
  const char *listen;
  const char *store;
  const char *log_level;
  const char *name;
  const char *role;
  const char *user;
  const char *dirs[16];
  size_t dir_count;
  int json;
  int help;
  int argi; /* first positional argument */
} cli_opts;

/* Parses the options of one command; positional arguments stay in argv from
 * opts->argi. Returns 0 or CLI_USAGE after printing why. */
static int cli__parse(int argc, char **argv, const char *command, cli_opts *o) {
  enum { OPT_LISTEN = 256, OPT_STORE, OPT_LOG_LEVEL, OPT_DIR, OPT_JSON, OPT_NAME, OPT_ROLE, OPT_USER };
  static const struct option longopts[] = {
      {"config", required_argument, NULL, 'c'},  {"listen", required_argument, NULL, OPT_LISTEN},
      {"store", required_argument, NULL, OPT_STORE}, {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
      {"dir", required_argument, NULL, OPT_DIR},     {"json", no_argument, NULL, OPT_JSON},
      {"name", required_argument, NULL, OPT_NAME},   {"role", required_argument, NULL, OPT_ROLE},
      {"user", required_argument, NULL, OPT_USER},   {"help", no_argument, NULL, 'h'},
      {NULL, 0, NULL, 0},
  };
  memset(o, 0, sizeof(*o));
  optind = 1;
  opterr = 0;
  int c;
  while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
    switch (c) {
    case 'c': o->config = optarg; break;
    case OPT_LISTEN: o->listen = optarg; break;
    case OPT_STORE: o->store = optarg; break;
    case OPT_LOG_LEVEL: o->log_level = optarg; break;
    case OPT_DIR:
      if (o->dir_count == sizeof(o->dirs) / sizeof(o->dirs[0])) {
        fprintf(stderr, "switchboard %s: at most 16 --dir options\n", command);
        return CLI_USAGE;
      }
      o->dirs[o->dir_count++] = optarg;
      break;
    case OPT_JSON: o->json = 1; break;
    case OPT_NAME: o->name = optarg; break;
    case OPT_ROLE: o->role = optarg; break;
    case OPT_USER: o->user = optarg; break;
    case 'h': o->help = 1; break;
    default:
      if (optopt != 0 && optopt < 256) {
        fprintf(stderr, "switchboard %s: option -%c %s; see `switchboard %s --help`\n", command, optopt,
                strchr("c", optopt) ? "needs a value" : "is unknown", command);
      } else {
        fprintf(stderr, "switchboard %s: option %s is unknown or needs a value; see `switchboard %s --help`\n",
                command, argv[optind - 1], command);
      }
      return CLI_USAGE;
    }
  }
  o->argi = optind;
  return 0;
}

static int cli__need_config(const cli_opts *o, const char *command) {
  if (o->config != NULL) return 0;
  fprintf(stderr, "switchboard %s: a config file is needed: -c FILE\n", command);
  return CLI_USAGE;
}

static int cli__no_extra(int argc, char **argv, const cli_opts *o, int expected, const char *command) {
  if (argc - o->argi <= expected) return 0;
  fprintf(stderr, "switchboard %s: unexpected argument \"%s\"\n", command, argv[o->argi + expected]);
  return CLI_USAGE;
}

static int cli__run(int argc, char **argv) {
  cli_opts o;
  int rc = cli__parse(argc, argv, "run", &o);
  if (rc != 0) return rc;
  if (o.help) return fputs(cli__run_usage, stdout), CLI_OK;
  if ((rc = cli__need_config(&o, "run")) != 0 || (rc = cli__no_extra(argc, argv, &o, 0, "run")) != 0) return rc;
  int level = -1;
  if (o.log_level != NULL && log_level_parse(o.log_level, &level) != 0) {
    fprintf(stderr, "switchboard run: --log-level must be error, warn, info or debug, not \"%s\"\n", o.log_level);
    return CLI_USAGE;
  }
  daemon_options opt = {o.config, o.listen, o.store, level};
  return daemon_run(&opt);
}

static int cli__check(int argc, char **argv) {
  cli_opts o;
  int rc = cli__parse(argc, argv, "check", &o);
  if (rc != 0) return rc;
  if (o.help) return fputs(cli__check_usage, stdout), CLI_OK;
  if ((rc = cli__need_config(&o, "check")) != 0 || (rc = cli__no_extra(argc, argv, &o, 0, "check")) != 0) {
    return rc;
  }
  log_set_level(LOG_LEVEL_WARN);
  daemon_options opt = {o.config, o.listen, o.store, LOG_LEVEL_WARN};
  config *cfg = NULL;
  loader plugins;
  char err[1024];
  if (daemon_prepare(&opt, &cfg, &plugins, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard check: %s\n", err);
    return CLI_USAGE;
  }
  if (daemon_check_webhooks(cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard check: %s\n", err);
    loader_unload(&plugins);
    config_free(cfg);
    return CLI_USAGE;
  }
  printf("%s: valid (%zu plugins loaded, %zu channels)\n", o.config, plugins.count, cfg->channel_count);
  loader_unload(&plugins);
  config_free(cfg);
  return CLI_OK;
}

static int cli__allow_listed(const void *ctx, const char *id) { return config_plugin_allowed(ctx, id); }

/* Loads plugins for `plugins list|schema`: from the config, or from dirs. */
static int cli__load_plugins(const cli_opts *o, const char *command, loader *plugins, config **cfg) {
  memset(plugins, 0, sizeof(*plugins));
  *cfg = NULL;
  char err[1024];
  if (o->config != NULL) {
    if (config_load(o->config, NULL, NULL, cfg, err, sizeof(err)) != 0) {
      fprintf(stderr, "switchboard plugins %s: %s\n", command, err);
      return CLI_USAGE;
    }
    return loader_load(plugins, hostapi_table(), (*cfg)->plugin_dirs, (*cfg)->plugin_dir_count, cli__allow_listed,
                       package_vet, *cfg) == 0
               ? 0
               : CLI_RUNTIME;
  }
  static const char *const default_dirs[] = {SB_DEFAULT_PLUGIN_DIR};
  for (size_t i = 0; i < o->dir_count; i++) {
    DIR *d = opendir(o->dirs[i]); /* a folder named on the command line must be there; a config's may be missing */
    if (d == NULL) {
      fprintf(stderr, "switchboard plugins %s: --dir %s cannot be read: %s\n", command, o->dirs[i], strerror(errno));
      return CLI_USAGE;
    }
    closedir(d);
  }
  const char *const *dirs = o->dir_count > 0 ? o->dirs : default_dirs;
  size_t n = o->dir_count > 0 ? o->dir_count : 1;
  return loader_load(plugins, hostapi_table(), dirs, n, NULL, NULL, NULL) == 0 ? 0 : CLI_RUNTIME;
}

static int cli__print_json(json_t *j) {
  char *s = j != NULL ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
  json_decref(j);
  if (s == NULL) return CLI_RUNTIME;
  puts(s);
  free(s);
  return CLI_OK;
}

static int cli__plugins(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(cli__plugins_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_USAGE : CLI_OK;
  }
  const char *sub = argv[1];
  if (strcmp(sub, "new") == 0) return scaffold_main(argc - 1, argv + 1);
  if (strcmp(sub, "check") == 0) return conformance_main(argc - 1, argv + 1);
  if (strcmp(sub, "keygen") == 0 || strcmp(sub, "pack") == 0 || strcmp(sub, "verify") == 0 ||
      strcmp(sub, "install") == 0)
    return package_main(argc - 1, argv + 1);
  int is_list = strcmp(sub, "list") == 0, is_schema = strcmp(sub, "schema") == 0;
  if (!is_list && !is_schema) {
    fprintf(stderr,
            "switchboard plugins: unknown subcommand \"%s\" (list, schema, check, new, keygen, pack, verify, install)\n",
            sub);
    return CLI_USAGE;
  }
  cli_opts o;
  int rc = cli__parse(argc - 1, argv + 1, sub, &o);
  if (rc != 0) return rc;
  if (o.help) return fputs(cli__plugins_usage, stdout), CLI_OK;
  if (is_schema && argc - 1 - o.argi != 1) {
    fprintf(stderr, "switchboard plugins schema: give exactly one plugin id\n");
    return CLI_USAGE;
  }
  if (is_list && (rc = cli__no_extra(argc - 1, argv + 1, &o, 0, "plugins list")) != 0) return rc;
  log_set_level(LOG_LEVEL_ERROR);
  loader plugins;
  config *cfg;
  rc = cli__load_plugins(&o, sub, &plugins, &cfg);
  if (rc != 0) {
    config_free(cfg);
    return rc;
  }
  if (is_schema) {
    const char *id = argv[1 + o.argi];
    const loader_plugin *p = loader_find(&plugins, id);
    if (p == NULL) {
      fprintf(stderr, "switchboard plugins schema: plugin \"%s\" is not loaded%s\n", id,
              plugins.refusal_count > 0 ? " (some plugin files were refused: see `switchboard plugins list`)" : "");
      rc = CLI_USAGE;
    } else {
      rc = cli__print_json(schema_to_json_schema(p->desc.name, p->desc.credentials));
    }
  } else if (o.json) {
    json_t *list = json_array(), *refused = json_array();
    for (size_t i = 0; i < plugins.count; i++) json_array_append_new(list, loader_plugin_json(&plugins.plugins[i]));
    for (size_t i = 0; i < plugins.refusal_count; i++) {
      json_array_append_new(refused, json_pack("{s:s, s:s}", "file", plugins.refusals[i].path, "reason",
                                               plugins.refusals[i].reason));
    }
    rc = cli__print_json(json_pack("{s:o, s:o}", "plugins", list, "refused", refused));
  } else {
    printf("%-16s %-10s %-5s %-28s %s\n", "ID", "VERSION", "ABI", "NAME", "FILE");
    for (size_t i = 0; i < plugins.count; i++) {
      const loader_plugin *p = &plugins.plugins[i];
      printf("%-16s %-10s %d.%-3u %-28s %s\n", p->desc.id, p->desc.version, SB_ABI_MAJOR, p->abi_minor, p->desc.name,
             p->path);
    }
    for (size_t i = 0; i < plugins.refusal_count; i++) printf("refused: %s\n", plugins.refusals[i].reason);
  }
  loader_unload(&plugins);
  config_free(cfg);
  return rc;
}

/* The store's answer to tokens create, carried out of the loop. */
typedef struct cli_token_wait {
  int status;
  char err[1100];
} cli_token_wait;

static void cli__token_stored(void *arg, int status, json_t *result, const char *err) {
  (void)result;
  cli_token_wait *w = arg;
  w->status = status;
  snprintf(w->err, sizeof(w->err), "%s", err ? err : "");
}

/* Writes the new token (never its secret) to the audit log; a failure is
 * only warned about, since the token exists. */
static void cli__audit_token(uv_loop_t *loop, store *st, const cli_opts *o) {
  json_t *d = json_pack("{ss ss ss?}", "name", o->name, "role", o->role, "user", o->user);
  char *detail = d != NULL ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
  cli_token_wait a = {1, "the store did not answer"};
  if (store_audit_append(st, NULL, NULL, NULL, "CLI", "switchboard tokens create", 0, detail, cli__token_stored,
                         &a) == 0) {
    while (a.status == 1) uv_run(loop, UV_RUN_ONCE);
  }
  if (a.status != 0) fprintf(stderr, "switchboard tokens create: warning: the audit log missed it: %s\n", a.err);
  free(detail);
  json_decref(d);
}

/* Makes the directory of an SQLite store file, as `run` does, so a token
 * can be made before the daemon first ran. */
static void cli__make_store_dir(const char *url) {
  if (strncmp(url, "sqlite:", 7) != 0) return;
  char *copy = strdup(url + 7);
  if (copy == NULL) return;
  mkdir(dirname(copy), 0700); /* an error shows up as the store's own */
  free(copy);
}

/* True when the config's "users" list names user. */
static int cli__config_has_user(const config *cfg, const char *user) {
  size_t i;
  json_t *u;
  json_array_foreach(json_object_get(cfg->root, "users"), i, u) {
    const char *name = json_string_value(json_object_get(u, "name"));
    if (user != NULL && name != NULL && strcmp(name, user) == 0) return 1;
  }
  return 0;
}

static int cli__tokens(int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
    fputs(cli__tokens_usage, argc < 2 ? stderr : stdout);
    return argc < 2 ? CLI_USAGE : CLI_OK;
  }
  if (strcmp(argv[1], "create") != 0) {
    fprintf(stderr, "switchboard tokens: unknown subcommand \"%s\" (create)\n", argv[1]);
    return CLI_USAGE;
  }
  cli_opts o;
  int rc = cli__parse(argc - 1, argv + 1, "tokens create", &o);
  if (rc != 0) return rc;
  if (o.help) return fputs(cli__tokens_usage, stdout), CLI_OK;
  if ((rc = cli__need_config(&o, "tokens create")) != 0 ||
      (rc = cli__no_extra(argc - 1, argv + 1, &o, 0, "tokens create")) != 0)
    return rc;
  if (o.name == NULL || o.name[0] == '\0' || strlen(o.name) > 64) {
    fprintf(stderr, "switchboard tokens create: --name N is needed (1-64 characters)\n");
    return CLI_USAGE;
  }
  if (o.role == NULL || (strcmp(o.role, "admin") != 0 && strcmp(o.role, "agent") != 0)) {
    fprintf(stderr, "switchboard tokens create: --role must be admin or agent\n");
    return CLI_USAGE;
  }
  if (o.user != NULL && o.user[0] == '\0') {
    fprintf(stderr, "switchboard tokens create: --user needs a user name\n");
    return CLI_USAGE;
  }
  log_set_level(LOG_LEVEL_WARN);
  config *cfg = NULL;
  char err[1024];
  if (config_load(o.config, NULL, o.store, &cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "switchboard tokens create: %s\n", err);
    return CLI_USAGE;
  }
  char token[API_TOKEN_LEN + 1], hash[65];
  if (api_token_generate(token) != 0) {
    fprintf(stderr, "switchboard tokens create: libsodium could not start\n");
    config_free(cfg);
    return CLI_RUNTIME;
  }
  api_token_hash(token, hash);
  uv_loop_t loop;
  uv_loop_init(&loop);
  store *st = NULL;
  cli_token_wait w = {1, "the store did not answer"};
  cli__make_store_dir(cfg->store);
  rc = store_open(&loop, cfg->store, &st, err, sizeof(err));
  if (rc == 0) rc = store_token_create(st, o.name, o.role, o.user, hash, cli__token_stored, &w);
  if (rc == 0) {
    /* The store's async handle keeps the loop alive: turn it until the answer. */
    while (w.status == 1) uv_run(&loop, UV_RUN_ONCE);
    if (w.status == 0) cli__audit_token(&loop, st, &o);
  } else if (st != NULL) {
    snprintf(w.err, sizeof(w.err), "the store refused the request");
  } else {
    snprintf(w.err, sizeof(w.err), "%s", err);
  }
  store_close(st);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  int user_in_config = w.status == -EINVAL && cli__config_has_user(cfg, o.user);
  config_free(cfg);
  if (w.status != 0) {
    fprintf(stderr, "switchboard tokens create: %s%s\n", w.err,
            user_in_config ? " (the config's users are stored when the daemon starts or reloads with it)" : "");
    /* A taken name or an unknown user is the caller's to fix. */
    return w.status == -EEXIST || w.status == -EINVAL ? CLI_USAGE : CLI_RUNTIME;
  }
  printf("%s\n", token);
  if (o.user != NULL) {
    fprintf(stderr, "created %s token \"%s\" of user \"%s\"; it is shown only this once\n", o.role, o.name, o.user);
  } else {
    fprintf(stderr, "created %s token \"%s\"; it is shown only this once\n", o.role, o.name);
  }
  return CLI_OK;
}

int cli_main(int argc, char **argv) {
  if (argc < 2) {
    fputs(cli__usage, stderr);
    return CLI_USAGE;
  }
  const char *cmd = argv[1];
  if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
    fputs(cli__usage, stdout);
    return CLI_OK;
  }
  if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
    printf("switchboard %s (plugin ABI %d.%d)\n", SB_VERSION, SB_ABI_MAJOR, SB_ABI_MINOR);
    return CLI_OK;
  }
  if (strcmp(cmd, "run") == 0) return cli__run(argc - 1, argv + 1);
  if (strcmp(cmd, "check") == 0) return cli__check(argc - 1, argv + 1);
  if (strcmp(cmd, "plugins") == 0) return cli__plugins(argc - 1, argv + 1);
  if (strcmp(cmd, "tokens") == 0) return cli__tokens(argc - 1, argv + 1);
  fprintf(stderr, "switchboard: unknown command \"%s\"; see `switchboard --help`\n", cmd);
  return CLI_USAGE;
}
