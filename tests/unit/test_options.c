/* SPDX-License-Identifier: Apache-2.0 */
/* test_options.c: crihookd's flags (daemon/options.c): defaults, environment
 * variables, command-line flags, sizes, errors. */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs the headers above. */
#include <cmocka.h>

#include "options.h"

static const char *const env_names[] = {
    "CRIHOOK_LISTEN",       "CRIHOOK_BACKEND",   "CRIHOOK_IMAGE_BACKEND", "CRIHOOK_HOOK_DIR",
    "CRIHOOK_MAX_MSG_SIZE", "CRIHOOK_LOG_LEVEL", "CRIHOOK_WORKERS",       "CRIHOOK_SHUTDOWN_GRACE",
};
#define ENV_COUNT (sizeof env_names / sizeof env_names[0])

static int clear_env(void **state) {
  (void)state;
  for (size_t i = 0; i < ENV_COUNT; i++) unsetenv(env_names[i]);
  return 0;
}

/* Parses a NULL-terminated list of arguments (argv[0] is added). */
#define PARSE(opts, err, ...) \
  parse_args((opts), (err), (const char *[]){"crihookd", __VA_ARGS__, NULL})

static int parse_args(crihookd_options *o, ch_error *err, const char **args) {
  char *argv[32];
  int argc = 0;
  while (args[argc]) {
    argv[argc] = (char *)args[argc];
    argc++;
  }
  argv[argc] = NULL;
  memset(err, 0, sizeof *err);
  return crihookd_options_parse(o, argc, argv, err);
}

static int parse_none(crihookd_options *o, ch_error *err) {
  const char *args[] = {"crihookd", NULL};
  return parse_args(o, err, args);
}

static void assert_contains(const char *haystack, const char *needle) {
  if (!strstr(haystack, needle)) fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

static void assert_defaults(const crihookd_options *o) {
  assert_string_equal(o->listen, "unix:///run/crihook/crihook.sock");
  assert_string_equal(o->backend, "auto");
  assert_string_equal(o->image_backend, "");
  assert_string_equal(o->hook_dir, "/etc/runtime/hookserver.d");
  assert_int_equal(o->max_msg_size, 16 * 1024 * 1024);
  assert_int_equal(o->log_level, CH_LOG_INFO);
  assert_int_equal(o->workers, 1);
  assert_int_equal(o->shutdown_grace_ms, 5000);
  assert_false(o->help);
  assert_false(o->version);
}

/* ---- defaults ---- */

static void defaults(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  memset(&o, 0x7f, sizeof o);
  assert_int_equal(parse_none(&o, &err), 0);
  assert_defaults(&o);
}

static void empty_env_value_keeps_default(void **state) {
  (void)state;
  for (size_t i = 0; i < ENV_COUNT; i++) setenv(env_names[i], "", 1);
  crihookd_options o;
  ch_error err;
  assert_int_equal(parse_none(&o, &err), 0);
  assert_defaults(&o);
}

/* ---- each flag ---- */

static void flags_each(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(
      PARSE(&o, &err, "--listen", "unix:///tmp/l.sock", "--backend", "/run/b.sock",
            "--image-backend", "unix:/run/i.sock", "--hook-dir", "/etc/hooks", "--max-msg-size",
            "4MiB", "--log-level", "debug", "--workers", "8", "--shutdown-grace", "250"),
      0);
  assert_string_equal(o.listen, "unix:///tmp/l.sock");
  assert_string_equal(o.backend, "/run/b.sock");
  assert_string_equal(o.image_backend, "unix:/run/i.sock");
  assert_string_equal(o.hook_dir, "/etc/hooks");
  assert_int_equal(o.max_msg_size, 4 * 1024 * 1024);
  assert_int_equal(o.log_level, CH_LOG_DEBUG);
  assert_int_equal(o.workers, 8);
  assert_int_equal(o.shutdown_grace_ms, 250);
  assert_false(o.help);
  assert_false(o.version);
}

static void flags_equals_form(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--listen=/tmp/eq.sock", "--workers=3", "--log-level=error"), 0);
  assert_string_equal(o.listen, "/tmp/eq.sock");
  assert_int_equal(o.workers, 3);
  assert_int_equal(o.log_level, CH_LOG_ERROR);
  /* untouched options keep their defaults */
  assert_string_equal(o.backend, "auto");
  assert_int_equal(o.shutdown_grace_ms, 5000);
}

static void flag_given_twice_last_wins(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--workers", "2", "--workers", "5"), 0);
  assert_int_equal(o.workers, 5);
}

static void log_levels(void **state) {
  (void)state;
  static const struct {
    const char *text;
    ch_log_level level;
  } cases[] = {{"debug", CH_LOG_DEBUG},  {"info", CH_LOG_INFO},   {"warn", CH_LOG_WARN},
               {"warning", CH_LOG_WARN}, {"error", CH_LOG_ERROR}, {"DEBUG", CH_LOG_DEBUG}};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    crihookd_options o;
    ch_error err;
    assert_int_equal(PARSE(&o, &err, "--log-level", cases[i].text), 0);
    assert_int_equal(o.log_level, cases[i].level);
  }
}

static void help_and_version(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--help"), 0);
  assert_true(o.help);
  assert_false(o.version);
  assert_int_equal(PARSE(&o, &err, "--version"), 0);
  assert_false(o.help);
  assert_true(o.version);
  assert_int_equal(PARSE(&o, &err, "-h"), 0);
  assert_true(o.help);
  assert_int_equal(PARSE(&o, &err, "-V"), 0);
  assert_true(o.version);
  assert_int_equal(PARSE(&o, &err, "--version", "--help"), 0);
  assert_true(o.help);
  assert_true(o.version);
}

static void usage_mentions_every_flag(void **state) {
  (void)state;
  const char *u = crihookd_usage();
  static const char *const flags[] = {"--listen",   "--backend",        "--image-backend",
                                      "--hook-dir", "--max-msg-size",   "--log-level",
                                      "--workers",  "--shutdown-grace", "--help",
                                      "--version",  "CRIHOOK_LISTEN"};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) assert_contains(u, flags[i]);
}

/* ---- environment ---- */

static void env_each(void **state) {
  (void)state;
  setenv("CRIHOOK_LISTEN", "/tmp/env-listen.sock", 1);
  setenv("CRIHOOK_BACKEND", "unix:///run/env-backend.sock", 1);
  setenv("CRIHOOK_IMAGE_BACKEND", "/run/env-image.sock", 1);
  setenv("CRIHOOK_HOOK_DIR", "/etc/env-hooks", 1);
  setenv("CRIHOOK_MAX_MSG_SIZE", "512k", 1);
  setenv("CRIHOOK_LOG_LEVEL", "warn", 1);
  setenv("CRIHOOK_WORKERS", "4", 1);
  setenv("CRIHOOK_SHUTDOWN_GRACE", "0", 1);
  crihookd_options o;
  ch_error err;
  assert_int_equal(parse_none(&o, &err), 0);
  assert_string_equal(o.listen, "/tmp/env-listen.sock");
  assert_string_equal(o.backend, "unix:///run/env-backend.sock");
  assert_string_equal(o.image_backend, "/run/env-image.sock");
  assert_string_equal(o.hook_dir, "/etc/env-hooks");
  assert_int_equal(o.max_msg_size, 512 * 1024);
  assert_int_equal(o.log_level, CH_LOG_WARN);
  assert_int_equal(o.workers, 4);
  assert_int_equal(o.shutdown_grace_ms, 0);
}

/* One variable at a time, so a mixed-up table in options.c shows. */
static void env_one_at_a_time(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  setenv("CRIHOOK_BACKEND", "/run/only-backend.sock", 1);
  assert_int_equal(parse_none(&o, &err), 0);
  assert_string_equal(o.backend, "/run/only-backend.sock");
  assert_string_equal(o.image_backend, "");
  assert_string_equal(o.listen, CH_DEFAULT_LISTEN);
  unsetenv("CRIHOOK_BACKEND");

  setenv("CRIHOOK_IMAGE_BACKEND", "/run/only-image.sock", 1);
  assert_int_equal(parse_none(&o, &err), 0);
  assert_string_equal(o.image_backend, "/run/only-image.sock");
  assert_string_equal(o.backend, "auto");
  unsetenv("CRIHOOK_IMAGE_BACKEND");

  setenv("CRIHOOK_SHUTDOWN_GRACE", "1234", 1);
  assert_int_equal(parse_none(&o, &err), 0);
  assert_int_equal(o.shutdown_grace_ms, 1234);
  assert_int_equal(o.workers, 1);
  unsetenv("CRIHOOK_SHUTDOWN_GRACE");

  setenv("CRIHOOK_WORKERS", "7", 1);
  assert_int_equal(parse_none(&o, &err), 0);
  assert_int_equal(o.workers, 7);
  assert_int_equal(o.shutdown_grace_ms, 5000);
}

static void flag_beats_env(void **state) {
  (void)state;
  setenv("CRIHOOK_LISTEN", "/tmp/env.sock", 1);
  setenv("CRIHOOK_WORKERS", "4", 1);
  setenv("CRIHOOK_LOG_LEVEL", "error", 1);
  setenv("CRIHOOK_MAX_MSG_SIZE", "1MiB", 1);
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--listen", "/tmp/flag.sock", "--workers", "2", "--log-level",
                         "debug", "--max-msg-size", "2MiB"),
                   0);
  assert_string_equal(o.listen, "/tmp/flag.sock");
  assert_int_equal(o.workers, 2);
  assert_int_equal(o.log_level, CH_LOG_DEBUG);
  assert_int_equal(o.max_msg_size, 2 * 1024 * 1024);
  /* and without the flags the environment applies */
  assert_int_equal(parse_none(&o, &err), 0);
  assert_string_equal(o.listen, "/tmp/env.sock");
  assert_int_equal(o.workers, 4);
  assert_int_equal(o.log_level, CH_LOG_ERROR);
  assert_int_equal(o.max_msg_size, 1024 * 1024);
}

static void flag_beats_a_malformed_env(void **state) {
  (void)state;
  setenv("CRIHOOK_WORKERS", "0", 1);
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--workers", "2"), 0);
  assert_int_equal(o.workers, 2);
  assert_int_equal(parse_none(&o, &err), -1);
  assert_contains(err.msg, "CRIHOOK_WORKERS");
}

static void env_bad_value_names_the_variable(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  setenv("CRIHOOK_MAX_MSG_SIZE", "lots", 1);
  assert_int_equal(parse_none(&o, &err), -1);
  assert_contains(err.msg, "CRIHOOK_MAX_MSG_SIZE");
  assert_contains(err.msg, "lots");
  unsetenv("CRIHOOK_MAX_MSG_SIZE");

  setenv("CRIHOOK_LOG_LEVEL", "chatty", 1);
  assert_int_equal(parse_none(&o, &err), -1);
  assert_contains(err.msg, "CRIHOOK_LOG_LEVEL");
  assert_contains(err.msg, "chatty");
  unsetenv("CRIHOOK_LOG_LEVEL");

  setenv("CRIHOOK_WORKERS", "0", 1);
  assert_int_equal(parse_none(&o, &err), -1);
  assert_contains(err.msg, "CRIHOOK_WORKERS");
}

/* ---- sizes ---- */

static void sizes_valid(void **state) {
  (void)state;
  static const struct {
    const char *text;
    int value;
  } cases[] = {
      {"16MiB", 16 * 1024 * 1024},
      {"16M", 16 * 1024 * 1024},
      {"16mb", 16 * 1024 * 1024},
      {"512k", 512 * 1024},
      {"512KiB", 512 * 1024},
      {"512KB", 512 * 1024},
      {"1048576", 1048576},
      {"1", 1},
      {"1g", 1024 * 1024 * 1024},
      {"1GiB", 1024 * 1024 * 1024},
      {"2047MiB", 2047 * 1024 * 1024},
      {"2147483647", INT_MAX},
      {"16 MiB", 16 * 1024 * 1024},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int v = -1;
    ch_error err = {""};
    if (ch_parse_size(cases[i].text, &v, &err) != 0)
      fail_msg("\"%s\" rejected: %s", cases[i].text, err.msg);
    if (v != cases[i].value) fail_msg("\"%s\" -> %d, want %d", cases[i].text, v, cases[i].value);
  }
}

static void sizes_invalid(void **state) {
  (void)state;
  static const struct {
    const char *text;
    const char *msg; /* substring of the error */
  } cases[] = {
      {"", "invalid size"},
      {"MiB", "invalid size"},
      {"0", "invalid size"},
      {"0MiB", "invalid size"},
      {"-1", "invalid size"},
      {"-16MiB", "invalid size"},
      {"16XB", "unknown unit \"XB\""},
      {"16 parsecs", "unknown unit"},
      {"16MiBs", "unknown unit"},
      {"1.5MiB", "unknown unit"},
      {"2GiB", "too large"},
      {"2048MiB", "too large"},
      {"2147483648", "too large"},
      {"3000000k", "too large"},
      {"99999999999999999999999", "invalid size"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int v = 12345;
    ch_error err = {""};
    if (ch_parse_size(cases[i].text, &v, &err) != -1) fail_msg("\"%s\" accepted", cases[i].text);
    assert_int_equal(v, 12345); /* untouched */
    assert_contains(err.msg, cases[i].msg);
    assert_contains(err.msg, cases[i].text);
  }
}

static void size_flag_error_names_the_flag(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--max-msg-size", "16XB"), -1);
  assert_contains(err.msg, "--max-msg-size");
  assert_contains(err.msg, "16XB");
  assert_int_equal(PARSE(&o, &err, "--max-msg-size", "0"), -1);
  assert_contains(err.msg, "--max-msg-size");
  assert_int_equal(PARSE(&o, &err, "--max-msg-size", "4GiB"), -1);
  assert_contains(err.msg, "too large");
}

/* ---- errors ---- */

static void bad_log_level(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--log-level", "loud"), -1);
  assert_contains(err.msg, "--log-level");
  assert_contains(err.msg, "loud");
  assert_contains(err.msg, "debug");
}

static void bad_numbers(void **state) {
  (void)state;
  static const char *const workers[] = {"0", "65", "-1", "two", "4x", ""};
  for (size_t i = 0; i < sizeof workers / sizeof workers[0]; i++) {
    crihookd_options o;
    ch_error err;
    if (PARSE(&o, &err, "--workers", workers[i]) != -1)
      fail_msg("--workers %s accepted", workers[i]);
    assert_contains(err.msg, "--workers");
  }
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--workers", "64"), 0);
  assert_int_equal(o.workers, 64);
  assert_int_equal(PARSE(&o, &err, "--shutdown-grace", "-5"), -1);
  assert_contains(err.msg, "--shutdown-grace");
  assert_int_equal(PARSE(&o, &err, "--shutdown-grace", "3600001"), -1);
  assert_int_equal(PARSE(&o, &err, "--shutdown-grace", "3600000"), 0);
  assert_int_equal(o.shutdown_grace_ms, 3600000);
}

static void unknown_flag(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--bogus"), -1);
  assert_contains(err.msg, "--bogus");
  assert_int_equal(PARSE(&o, &err, "--listen", "/tmp/x.sock", "--frobnicate=1"), -1);
  assert_contains(err.msg, "--frobnicate");
  assert_int_equal(PARSE(&o, &err, "-x"), -1);
  assert_contains(err.msg, "-x");
}

/* In a cluster like "-xh" getopt has not advanced optind when it reports
 * 'x': the message must name the option itself, not argv[optind - 1]. */
static void unknown_short_option_in_cluster(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "-xh"), -1);
  assert_contains(err.msg, "-x");
  assert_int_equal(PARSE(&o, &err, "--workers", "2", "-hxV"), -1);
  assert_contains(err.msg, "-x");
}

static void missing_value(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--listen"), -1);
  assert_contains(err.msg, "--listen");
  assert_contains(err.msg, "needs a value");
}

static void stray_argument(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "serve"), -1);
  assert_contains(err.msg, "unexpected argument");
  assert_contains(err.msg, "serve");
  assert_int_equal(PARSE(&o, &err, "--workers", "2", "extra"), -1);
  assert_contains(err.msg, "\"extra\"");
}

static void too_long_value(void **state) {
  (void)state;
  char longv[400];
  memset(longv, 'a', sizeof longv - 1);
  longv[0] = '/';
  longv[sizeof longv - 1] = '\0';
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--hook-dir", longv), -1);
  assert_contains(err.msg, "--hook-dir");
  assert_contains(err.msg, "too long");
}

/* getopt keeps global state; the parser resets it so it can run again. */
static void parse_twice(void **state) {
  (void)state;
  crihookd_options o;
  ch_error err;
  assert_int_equal(PARSE(&o, &err, "--workers", "3", "--listen", "/tmp/one.sock"), 0);
  assert_int_equal(o.workers, 3);
  /* a second parse starts from scratch: defaults again, all flags seen */
  assert_int_equal(PARSE(&o, &err, "--listen", "/tmp/two.sock"), 0);
  assert_string_equal(o.listen, "/tmp/two.sock");
  assert_int_equal(o.workers, 1);
  /* after an error in the middle of argv */
  assert_int_equal(PARSE(&o, &err, "--workers", "2", "--bogus", "--listen", "/tmp/x"), -1);
  assert_int_equal(PARSE(&o, &err, "--backend", "/run/b.sock", "--workers", "9"), 0);
  assert_string_equal(o.backend, "/run/b.sock");
  assert_int_equal(o.workers, 9);
  /* after an error inside a cluster of short options */
  assert_int_equal(PARSE(&o, &err, "-hxV"), -1);
  assert_int_equal(PARSE(&o, &err, "-V"), 0);
  assert_true(o.version);
  assert_false(o.help);
  /* after a stray argument */
  assert_int_equal(PARSE(&o, &err, "stray", "--workers", "5"), -1);
  assert_int_equal(PARSE(&o, &err, "--workers", "5"), 0);
  assert_int_equal(o.workers, 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup(defaults, clear_env),
      cmocka_unit_test_setup(empty_env_value_keeps_default, clear_env),
      cmocka_unit_test_setup(flags_each, clear_env),
      cmocka_unit_test_setup(flags_equals_form, clear_env),
      cmocka_unit_test_setup(flag_given_twice_last_wins, clear_env),
      cmocka_unit_test_setup(log_levels, clear_env),
      cmocka_unit_test_setup(help_and_version, clear_env),
      cmocka_unit_test_setup(usage_mentions_every_flag, clear_env),
      cmocka_unit_test_setup(env_each, clear_env),
      cmocka_unit_test_setup(env_one_at_a_time, clear_env),
      cmocka_unit_test_setup(flag_beats_env, clear_env),
      cmocka_unit_test_setup(flag_beats_a_malformed_env, clear_env),
      cmocka_unit_test_setup(env_bad_value_names_the_variable, clear_env),
      cmocka_unit_test_setup(sizes_valid, clear_env),
      cmocka_unit_test_setup(sizes_invalid, clear_env),
      cmocka_unit_test_setup(size_flag_error_names_the_flag, clear_env),
      cmocka_unit_test_setup(bad_log_level, clear_env),
      cmocka_unit_test_setup(bad_numbers, clear_env),
      cmocka_unit_test_setup(unknown_flag, clear_env),
      cmocka_unit_test_setup(unknown_short_option_in_cluster, clear_env),
      cmocka_unit_test_setup(missing_value, clear_env),
      cmocka_unit_test_setup(stray_argument, clear_env),
      cmocka_unit_test_setup(too_long_value, clear_env),
      cmocka_unit_test_setup(parse_twice, clear_env),
  };
  return cmocka_run_group_tests(tests, clear_env, clear_env);
}
