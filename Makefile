# smtpproxy - build, dependencies, tests, demo run, install.
#
#   make deps     install the Debian packages that are missing (root), or
#                 print the apt-get line that would
#   make          build smtpproxyd/smtpproxyd and smtpproxyd/smtpproxyctl
#   make test     deps + build + C unit tests (Check) + integration tests,
#                 then the unit tests under valgrind and everything again
#                 against an AddressSanitizer/UBSan build
#   make run      deps + build + demo upstream + proxy in the foreground
#   make asan     the same tests against an AddressSanitizer/UBSan build
#   make valgrind the unit tests under valgrind (no errors, no leaks)
#   make fuzz     libFuzzer over the SMTP session for FUZZ_TIME seconds
#   make bench    smtpproxy against a private Postfix instance, side by side
#                 (bench/README.md); BENCH=--quick for a smoke run
#   make install [PREFIX=/usr/local] [DESTDIR=...]  binaries, config (never
#                 overwritten), spool, service files, man pages
#   make uninstall  removes what install put there; keeps config and spool
#   make clean

CC	?= cc
PREFIX	?= /usr/local
CFLAGS	?= -O2 -g
WARN	 = -std=c11 -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
	   -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
PKGS	 = libconfig inih libcurl openssl jansson
CPPFLAGS += -D_GNU_SOURCE -Icommon -Ismtpproxyd -Irelay
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS	 = $(PKG_LIBS) -lcrypt
PYTHON	 = /usr/bin/python3

ifeq ($(SANITIZE),1)
BUILD	?= build/asan
CFLAGS	 = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
BIN	 = $(BUILD)/bin
else
BUILD	?= build/default
BIN	 = smtpproxyd
endif

COMMON_SRC = $(wildcard common/*.c)
SMTPD_SRC  = $(filter-out smtpproxyd/main.c smtpproxyd/ctl.c,$(wildcard smtpproxyd/*.c))
RELAY_SRC  = $(wildcard relay/*.c)
UNIT_SRC   = $(wildcard test/unit/test_*.c)

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))
COMMON_LIB = $(BUILD)/libcommon.a
SMTPD_LIB  = $(BUILD)/libsmtpd.a
RELAY_LIB  = $(BUILD)/librelay.a
ALL_LIBS   = $(SMTPD_LIB) $(RELAY_LIB) $(COMMON_LIB)

DAEMON	 = $(BIN)/smtpproxyd
CTL	 = $(BIN)/smtpproxyctl
UNIT_BIN = $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRC))

.PHONY: all deps test unit integration run clean asan valgrind install uninstall bench
all: $(DAEMON) $(CTL)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(PKG_CFLAGS) $(WARN) $(CFLAGS) -MMD -MP -c -o $@ $<

$(COMMON_LIB): $(call obj,$(COMMON_SRC))
$(SMTPD_LIB): $(call obj,$(SMTPD_SRC))
$(RELAY_LIB): $(call obj,$(RELAY_SRC))
$(COMMON_LIB) $(SMTPD_LIB) $(RELAY_LIB):
	@rm -f $@
	ar rcs $@ $^

$(DAEMON): $(call obj,smtpproxyd/main.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(CTL): $(call obj,smtpproxyd/ctl.c) $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/test/%: $(BUILD)/test/unit/%.o $(ALL_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs check)

# libFuzzer target over the SMTP session (test/fuzz/README.md).
#   make fuzz               build, then fuzz for FUZZ_TIME seconds (600)
#   make fuzz FUZZ_TIME=60  shorter
FUZZ_CC		?= clang
FUZZ_BUILD	?= build/fuzz
FUZZ_TIME	?= 600
FUZZ_SAN	 = address,undefined
FUZZ_CFLAGS	 = -O1 -g -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
		   -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_OBJ	 = $(patsubst %.c,$(FUZZ_BUILD)/%.o,$(COMMON_SRC) $(SMTPD_SRC))
FUZZ_LIB	 = $(FUZZ_BUILD)/libfuzz.a
FUZZ_BIN	 = $(FUZZ_BUILD)/fuzz_session

.PHONY: fuzz fuzz-build
fuzz-build: $(FUZZ_BIN)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CPPFLAGS) $(PKG_CFLAGS) $(WARN) $(FUZZ_CFLAGS) \
	    -fsanitize=fuzzer-no-link,$(FUZZ_SAN) -MMD -MP -c -o $@ $<

$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BIN): $(FUZZ_BUILD)/test/fuzz/fuzz_session.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer,$(FUZZ_SAN) -o $@ $^ $(LIBS)

fuzz: $(FUZZ_BIN)
	@mkdir -p $(FUZZ_BUILD)/corpus $(FUZZ_BUILD)/artifacts
	UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BIN) \
	    -max_total_time=$(FUZZ_TIME) -timeout=10 -print_final_stats=1 \
	    -dict=test/fuzz/session.dict \
	    -artifact_prefix=$(FUZZ_BUILD)/artifacts/ \
	    $(FUZZ_BUILD)/corpus test/fuzz/corpus/session

deps:
	@sh tools/deps.sh

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; CK_FORK=yes $$t; done

integration: all
	SMTPPROXYD=$(abspath $(DAEMON)) SMTPPROXYCTL=$(abspath $(CTL)) \
	    $(PYTHON) -m pytest -q -p no:cacheprovider test/integration

test: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory integration
	@$(MAKE) --no-print-directory valgrind
	@$(MAKE) --no-print-directory SANITIZE=1 unit integration

asan: deps
	@$(MAKE) --no-print-directory SANITIZE=1 unit integration

valgrind: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	    CK_FORK=no valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
	    --error-exitcode=1 $$t; done

BENCH	?=
bench: deps
	@$(MAKE) --no-print-directory all
	@sh bench/deps.sh
	SMTPPROXYD=$(abspath $(DAEMON)) $(PYTHON) bench/run.py $(BENCH)

run: deps
	@$(MAKE) --no-print-directory all
	@sh tools/run-demo.sh $(abspath $(DAEMON))

install: all
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' SMTPPROXYD='$(DAEMON)' \
	    SMTPPROXYCTL='$(CTL)' sh tools/install.sh install

uninstall:
	PREFIX='$(PREFIX)' DESTDIR='$(DESTDIR)' sh tools/install.sh uninstall

clean:
	rm -rf build smtpproxyd/smtpproxyd smtpproxyd/smtpproxyctl

-include $(shell find build -name '*.d' 2>/dev/null)
