# Coffer - a secrets server in C, scripted in Lua 5.4.
#
#   make            build build/coffer
#   make test       install missing packages, build, run every test
#   make dev        install missing packages, build, run the dev walkthrough
#   make deps       install missing Debian packages only
#   make SANITIZER=address|undefined   build with a sanitizer
#   make valgrind   run the unit tests under valgrind
#   make noopt      build without optimisation
#   make check-style  banned functions
#   make V=1        show full command lines

BUILD ?= build
PKGS := lua5.4 libmicrohttpd libcjson openssl libcurl libpq sqlite3
CC ?= cc
OPT ?= -O2
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g $(OPT) \
               -fno-strict-aliasing -MMD -MP
ifneq ($(SANITIZER),)
CFLAGS_BASE += -fsanitize=$(SANITIZER) -fno-omit-frame-pointer
LDFLAGS_SAN := -fsanitize=$(SANITIZER)
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
OBJS := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRCS))
LIB_OBJS := $(filter-out $(BUILD)/obj/main.o,$(OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRCS))
PYTHON := /usr/bin/python3

.PHONY: all deps test unit integration dev clean noopt valgrind check-style bench

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

# A unit test includes the .c file it tests, so it can reach static
# functions; it links against every other object (file names are unique
# across src/ and src/cli/, so %/ finds the one it includes).
$(BUILD)/tests/%: tests/unit/%.c $(LIB_OBJS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	@echo "  TEST $@"
	$(Q)$(CC) $(CFLAGS_ALL) -Isrc -Wno-unused-function -o $@ $< \
	    $(filter-out %/$(patsubst test_%,%,$*).o,$(LIB_OBJS)) $(LIBS)

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

test: deps
	$(Q)$(MAKE) --no-print-directory all $(UNIT_BINS)
	$(Q)sh tests/run-all.sh $(BUILD)

dev: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)sh examples/dev.sh $(BUILD)/coffer

noopt:
	$(Q)$(MAKE) --no-print-directory OPT=-O0 BUILD=build-noopt

valgrind: $(UNIT_BINS)
	$(Q)VALGRIND=1 sh tests/run-unit.sh $(UNIT_BINS)

check-style:
	$(Q)! grep -nE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\(' src/*.c src/cli/*.c
	$(Q)! grep -nE '\blua_call\s*\(' src/*.c src/cli/*.c | grep -v 'src/luavm.c'
	$(Q)! grep -nE '[^x](malloc|calloc|realloc)\s*\(' src/*.c src/cli/*.c | grep -vE 'src/(common|buf)\.c|luavm\.c|/\*'
	@echo "check-style: ok"

bench:
	$(Q)sh .ci/install-deps.sh --bench
	$(Q)$(MAKE) --no-print-directory all
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_creds.py
	$(Q)COFFER_BIN=$(abspath $(BUILD)/coffer) $(PYTHON) tests/bench/bench_restore.py
	$(Q)$(MAKE) --no-print-directory $(BUILD)/bench/bench_policy && $(BUILD)/bench/bench_policy

clean:
	rm -rf build build-*

-include $(OBJS:.o=.d)
-include $(UNIT_BINS:=.d)
