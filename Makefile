# Coffer - a secrets server in C, scripted in Lua 5.4.
#
#   make            build build/coffer
#   make test       install missing packages, build, run every test
#   make dev        install missing packages, build, run the dev walkthrough
#   make deps       install missing Debian packages only
#   make SANITIZER=address|undefined   build with a sanitizer
#   make fuzz FUZZ=json [FUZZ_TIME=60]   build the libFuzzer harnesses and
#                   run one (tests/fuzz/README.md)
#   make fuzz-regress   run every harness over its corpus (make test does)
#   make asan-test  unit tests and integration suites under ASan+UBSan
#   make valgrind   run the unit tests under valgrind
#   make noopt      build without optimisation
#   make check-style  banned functions
#   make test-ui    the web UI's browser tests (headless Chromium)
#   make V=1        show full command lines
#   make install [PREFIX=/usr/local] [DESTDIR=]   install the built server

BUILD ?= build
PKGS := lua5.4 libmicrohttpd libcjson openssl libcurl libpq sqlite3 libmariadb
CC ?= cc
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) \
               -fno-strict-aliasing -MMD -MP
ifneq ($(SANITIZER),)
CFLAGS_BASE += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer
LDFLAGS_SAN := -fsanitize=$(SANITIZER)
# Undefined behaviour stops the program, so a test cannot pass over it.
ifneq ($(findstring undefined,$(SANITIZER)),)
CFLAGS_BASE += -fno-sanitize-recover=undefined
LDFLAGS_SAN += -fno-sanitize-recover=undefined
endif
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CFLAGS_ALL = $(CFLAGS_BASE) $(PKG_CFLAGS) $(CFLAGS)
LIBS = $(PKG_LIBS) -lpthread -lm $(LDFLAGS_SAN) $(LDFLAGS)

ifeq ($(V),1)
Q :=
else
Q := @
endif

SRCS := $(wildcard src/*.c src/cli/*.c)
# The web UI (src/ui.h): every file under src/ui/ becomes a table in a
# generated C file, so the binary needs no files at run time.
UI_FILES := $(shell find src/ui -type f ! -name '.*' | LC_ALL=C sort)
UI_GEN := $(BUILD)/gen/ui_files.c
UI_OBJ := $(BUILD)/gen/ui_files.o
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS)) $(UI_OBJ)
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
PYTHON := /usr/bin/python3

# The sanitizer builds that `make test` runs besides the plain one.
ASAN_BUILD ?= build-asan
ASAN_SAN := address,undefined
FUZZ_BUILD ?= build-fuzz
FUZZ_CC ?= clang
FUZZ_SAN := fuzzer-no-link,address,undefined
FUZZ_TIME ?= 60
FUZZ_RUNS ?= -1
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

.PHONY: all deps test unit integration dev clean noopt valgrind check-style \
        bench fuzz fuzz-bins fuzz-bins-build fuzz-regress asan-build \
        asan-test unit-bins test-ui FORCE

all: $(BUILD)/coffer

deps:
	$(Q)sh .ci/install-deps.sh

$(BUILD)/coffer: $(OBJS)
	@echo "  LINK $@"
	$(Q)$(CC) -o $@ $(OBJS) $(LIBS)

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	@echo "  CC   $<"
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

# The UI table: src/tools/ui_embed runs on every make and the file is replaced
# only when its text changed, so an added or removed file is noticed and
# nothing rebuilds otherwise.
$(BUILD)/tools/ui_embed: src/tools/ui_embed.c
	@mkdir -p $(dir $@)
	@echo "  CC   $<"
	$(Q)$(CC) -std=c11 -Wall -Wextra -Werror -O2 -o $@ $<

$(UI_GEN): $(BUILD)/tools/ui_embed FORCE
	@mkdir -p $(dir $@)
	$(Q)$(BUILD)/tools/ui_embed src/ui/ $(UI_FILES) > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; \
	    else mv $@.tmp $@ && echo "  GEN  $@"; fi

$(UI_OBJ): $(UI_GEN)
	@echo "  CC   $<"
	$(Q)$(CC) $(CFLAGS_ALL) -Isrc -c -o $@ $<

FORCE:

# A unit test includes the .c file it tests, so it can reach static
# functions; it links against every other object (file names are unique
# across src/ and src/cli/, so %/ finds the one it includes).
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	@echo "  TEST $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Isrc -Wno-unused-function -o $@ $< \
	    $(filter-out %/$(patsubst test_%,%,$*).o,$(LIB_OBJS)) $(LIBS)

# A fuzz harness may include the .c files it tests (every
# `#include "../../src/x.c"` line); it links against every other object.
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_OBJS) tests/fuzz/fuzz.h
	@mkdir -p $(dir $@)
	@echo "  FUZZ $@"
	$(Q)$(CC) $(CFLAGS_ALL) -fsanitize=fuzzer -Isrc -Wno-unused-function \
	    -o $@ $< $(filter-out $(patsubst %,$(BUILD)/obj/%.o,$(shell sed -n \
	    's|^#include "\.\./\.\./src/\(.*\)\.c"$$|\1|p' $<)),$(LIB_OBJS)) \
	    -fsanitize=fuzzer $(LIBS)

# The bare issuer is a baseline made of Coffer's libraries, not of Coffer.
$(BUILD)/bench/bare_issuer: tests/bench/bare_issuer.c
	@mkdir -p $(dir $@)
	@echo "  BENCH $@"
	$(Q)$(CC) $(CFLAGS_ALL) -o $@ $< $(LIBS)

# C benchmarks include the .c file they measure, like unit tests.
$(BUILD)/bench/%: tests/bench/%.c $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@echo "  BENCH $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Isrc -Wno-unused-function -o $@ $< \
	    $(filter-out $(BUILD)/obj/$(patsubst bench_%,%,$*).o,$(LIB_OBJS)) $(LIBS)

unit: $(UNIT_BINS)
	$(Q)sh tests/run-unit.sh $(UNIT_BINS)

integration: $(BUILD)/coffer
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) -m pytest -q tests/integration

# The browser tests of the web UI (headless Chromium, tests/ui/cdp.py):
# the one `make test` runs too, and every tests/ui/test_*.py.
test-ui: $(BUILD)/coffer
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) -m pytest -q \
	    -p no:cacheprovider tests/integration/test_ui_browser.py \
	    $(wildcard tests/ui/test_*.py)

# `make test` compiles three build dirs (plain, ASan, fuzz): in parallel
# unless make already runs with -j.
# (MAKEFLAGS shows -j only when a recipe runs, hence the shell test.)
TEST_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
TEST_J = $$(case "$(MAKEFLAGS)" in *-j*) ;; *) echo -j$(TEST_JOBS) ;; esac)

test: deps
	$(Q)$(MAKE) $(TEST_J) --no-print-directory all $(UNIT_BINS)
	$(Q)$(MAKE) $(TEST_J) --no-print-directory asan-build
	$(Q)$(MAKE) $(TEST_J) --no-print-directory fuzz-bins-build
	$(Q)ASAN_BUILD=$(ASAN_BUILD) FUZZ_BUILD=$(FUZZ_BUILD) \
	    sh tests/run-all.sh $(BUILD)

# --- sanitizers and fuzzing (tests/fuzz/README.md) -------------------------

# The server and the unit tests with ASan+UBSan, in their own build dir.
asan-build:
	$(Q)$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) \
	    SANITIZER=$(ASAN_SAN) all unit-bins

unit-bins: $(UNIT_BINS)

# Only the ASan part of `make test`: unit tests, then the integration
# suites tests/run-asan.sh names, against $(ASAN_BUILD)/coffer.
asan-test: asan-build
	$(Q)sh tests/run-asan.sh $(ASAN_BUILD)

fuzz-bins: $(FUZZ_BINS)

# The harnesses, built with clang and libFuzzer in $(FUZZ_BUILD).
fuzz-bins-build:
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
	    SANITIZER=$(FUZZ_SAN) fuzz-bins

# Every harness over its corpus and its regression inputs (seconds).
fuzz-regress: fuzz-bins-build
	$(Q)sh tests/fuzz/run-regress.sh $(FUZZ_BUILD)

# Fuzz one harness: make fuzz FUZZ=json [FUZZ_TIME=seconds] [FUZZ_RUNS=n]
fuzz: fuzz-bins-build
	$(Q)sh tests/fuzz/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ) $(FUZZ_TIME) \
	    $(FUZZ_RUNS)

dev: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh examples/dev.sh $(BUILD)/coffer

noopt:
	$(Q)$(MAKE) --no-print-directory OPT=-O0 BUILD=build-noopt

valgrind: $(UNIT_BINS)
	$(Q)VALGRIND=1 sh tests/run-unit.sh $(UNIT_BINS)

check-style:
	$(Q)! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\(' src/*.c src/cli/*.c src/tools/*.c
	$(Q)! grep -nE '\blua_call\s*\(' src/*.c src/cli/*.c src/tools/*.c | grep -vE 'src/luavm(_policy|_code)?\.c'
	$(Q)! grep -nE '[^x](malloc|calloc|realloc)\s*\(' src/*.c src/cli/*.c src/tools/*.c | grep -vE 'src/(common|buf)\.c|src/tools/|luavm\.c|/\*'
	$(Q)$(PYTHON) tests/check-include-cycles.py
	@echo "check-style: ok"

bench:
	$(Q)sh .ci/install-deps.sh --bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_creds.py
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_server.py
	$(Q)$(PYTHON) tests/bench/bench_revoke_sql.py
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_restore.py
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_ha.py
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_logins.py
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_audit.py
	$(Q)$(MAKE) --no-print-directory $(BUILD)/bench/bench_policy && $(BUILD)/bench/bench_policy

clean:
	rm -rf build build-*

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, the Lua runtime
# the binary finds at <prefix>/share/coffer/lua, and the examples. Installs
# what `make` built (same BUILD, same flags); it never rebuilds differently.
PREFIX ?= /usr/local
INSTALL ?= install
.PHONY: install
install: $(BUILD)/coffer
	$(Q)$(INSTALL) -d $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/share/coffer/lua \
	    $(DESTDIR)$(PREFIX)/share/coffer/examples
	$(Q)$(INSTALL) -m 0755 $(BUILD)/coffer $(DESTDIR)$(PREFIX)/bin/coffer
	$(Q)cp -R lua/. $(DESTDIR)$(PREFIX)/share/coffer/lua/
	$(Q)cp -R examples/. $(DESTDIR)$(PREFIX)/share/coffer/examples/
	$(Q)sed -i 's|/usr/local/|$(PREFIX)/|g' \
	    $(DESTDIR)$(PREFIX)/share/coffer/examples/coffer.service
	$(Q)chmod -R u=rwX,go=rX $(DESTDIR)$(PREFIX)/share/coffer
	@echo "installed coffer in $(DESTDIR)$(PREFIX)"

-include $(OBJS:.o=.d)
-include $(UNIT_BINS:=.d)
-include $(FUZZ_BINS:=.d)
