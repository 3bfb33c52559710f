# skystack: build, test and install.
#   ./configure && make            build libskystack and the programs into build/
#   make check                     unit and program tests (TAP, summarised by prove)
#   make check TESTS="tests/prog/pin.t build/t/test_psf"   only those tests
#   make check-sanitize            the same tests built with ASan + UBSan (build-san/)
#   make install [DESTDIR=...]     programs, library, headers, skystack.pc, man pages, share/
#   make demo                      the demo of README's Quick start
#   make bench                     benchmarks against the peers (bench/)

ifeq ($(wildcard config.mk),)
$(error config.mk is missing: run ./configure first (autoconf && ./configure in a git checkout))
endif
include config.mk

# one compile job per core by default (set here at the top level only:
# the sub-make of check-sanitize shares its parent's jobs)
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += -j$(shell nproc 2>/dev/null || echo 1)
endif

B        ?= build
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
WARN      = -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
OPT      ?= -O2 -g
CFLAGS_ALL = -std=gnu11 $(OPT) $(WARN) -fPIC -pthread -Ilib $(DEP_CFLAGS) \
             -DSK_VERSION='"$(PACKAGE_VERSION)"' -DSK_DATADIR='"$(datadir)/skystack"' \
             -DSK_PG_BINDIR='"$(PG_BINDIR)"' $(CPPFLAGS_USER) $(EXTRA_CFLAGS)
LDFLAGS_ALL = -pthread $(LD_FAST) $(LDFLAGS_USER) $(EXTRA_LDFLAGS)
# link flags of the programs and test binaries only (not the shared library)
EXE_LDFLAGS ?=

LIB_DIRS  := core io db numeric ingest extract calib coadd ref sim look
LIB_SRC   := $(sort $(wildcard lib/*.c) $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.c)))
LIB_PRIV_HDR := $(sort $(wildcard lib/*.h) $(foreach d,$(LIB_DIRS),$(wildcard lib/$(d)/*.h)))
# ar keeps members by file name: two library sources may not share one
LIB_DUP_NAMES := $(shell printf '%s\n' $(notdir $(LIB_SRC)) | sort | uniq -d)
ifneq ($(LIB_DUP_NAMES),)
$(error library sources share a file name (the archive would keep one): $(LIB_DUP_NAMES))
endif
LIB_OBJ   := $(LIB_SRC:%.c=$(B)/%.o)
LIB_HDR   := $(sort $(wildcard lib/skystack/*.h))
SONAME     = libskystack.so.0
STATIC_LIB = $(B)/lib/libskystack.a
SHARED_LIB = $(B)/lib/$(SONAME)

TOOL_NAMES := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard tools/*/*.c)))))
TOOL_BINS  := $(TOOL_NAMES:%=$(B)/bin/%)

UNIT_SRC  := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/t/%)
PROG_TESTS := $(sort $(wildcard tests/prog/*.t))
# the test files run longest first (tests/slow-first), then the others by
# name, so that prove -j keeps every core busy to the end
SLOW_TESTS := $(foreach t,$(shell sed '/^\#/d' tests/slow-first),$(filter %/$(t),$(PROG_TESTS) $(UNIT_BINS)))
ALL_TESTS  := $(SLOW_TESTS) $(filter-out $(SLOW_TESTS),$(PROG_TESTS) $(UNIT_BINS))

.SECONDARY:
.PHONY: all lib tools tests accuracy check check-sanitize install uninstall demo bench clean distclean
all: lib tools

lib: $(STATIC_LIB) $(SHARED_LIB)
tools: $(TOOL_BINS)
tests: all $(UNIT_BINS)

$(B)/%.o: %.c $(LIB_HDR) $(LIB_PRIV_HDR) $(wildcard tests/*.h)
	@$(MKDIR_P) $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(STATIC_LIB): $(LIB_OBJ)
	@$(MKDIR_P) $(dir $@)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJ)
	@$(MKDIR_P) $(dir $@)
	$(CC) -shared -Wl,-soname,$(SONAME) $(LDFLAGS_ALL) -o $@ $^ $(DEP_LIBS)
	ln -sf $(SONAME) $(B)/lib/libskystack.so

tool_objs = $(patsubst %.c,$(B)/%.o,$(wildcard tools/$(1)/*.c))
.SECONDEXPANSION:
$(B)/bin/%: $$(call tool_objs,$$*) $(STATIC_LIB)
	@$(MKDIR_P) $(dir $@)
	$(CC) $(LDFLAGS_ALL) $(EXE_LDFLAGS) -o $@ $(filter %.o,$^) $(STATIC_LIB) $(DEP_LIBS)

$(B)/t/%: $(B)/tests/unit/%.o $(STATIC_LIB)
	@$(MKDIR_P) $(dir $@)
	$(CC) $(LDFLAGS_ALL) $(EXE_LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS)

# The accuracy tests over many seeds work on 2048 x 2048 fields: not in
# `make check` (tests use small images); bench/seed-sweep and bench/mutants
# build them with `make accuracy`.
ACCURACY_BIN := $(B)/t/test_accuracy
accuracy: $(ACCURACY_BIN)
$(ACCURACY_BIN): $(B)/tests/accuracy/test_accuracy.o $(STATIC_LIB)
	@$(MKDIR_P) $(dir $@)
	$(CC) $(LDFLAGS_ALL) $(EXE_LDFLAGS) -o $@ $< $(STATIC_LIB) $(DEP_LIBS)

# Tests see the build tree first on PATH and find share/ and the fixtures here.
TEST_ENV = PATH="$(CURDIR)/$(B)/bin:$$PATH" SK_SRCDIR="$(CURDIR)" SK_BUILDDIR="$(CURDIR)/$(B)" \
           SKYSTACK_SHARE="$(CURDIR)/share/skystack" SK_PG_BINDIR="$(PG_BINDIR)" \
           HOME="$(CURDIR)/$(B)/test-home" SKYSTACK_CONFIG= SKYSTACK_DB= SKYSTACK_DATA=

check: tests
	@rm -rf $(B)/test-home $(B)/test-tmp && $(MKDIR_P) $(B)/test-home $(B)/test-tmp
	$(TEST_ENV) TMPDIR="$(CURDIR)/$(B)/test-tmp" tests/run-tests $(or $(TESTS),$(ALL_TESTS))

# The sanitizer runtimes are linked into the programs statically: a
# dynamically loaded libubsan is one more module whose globals the leak
# checker scans at every program's exit (~40 ms a run, thousands of runs).
# ASan keeps freed memory out of use for a while to catch use after free;
# its default 256 MB makes every short-lived buffer land on fresh pages,
# and the page faults were a third of the sanitized run. 16 MB still
# holds the buffers freed during the last few steps. An ASAN_OPTIONS of
# the caller's replaces this one. The sanitized build carries line tables
# only (-g1): enough for the file and line of every frame of a report, and
# it compiles in 12 % less CPU than with full debug information.
SAN_OPT = -O2 -g1
SAN_EXE_LDFLAGS = -static-libasan -static-libubsan
SAN_ASAN_OPTIONS = quarantine_size_mb=16
check-sanitize:
	ASAN_OPTIONS="$${ASAN_OPTIONS-$(SAN_ASAN_OPTIONS)}" $(MAKE) --no-print-directory B=build-san OPT="$(SAN_OPT)" EXTRA_CFLAGS="$(SAN_FLAGS)" EXTRA_LDFLAGS="$(SAN_FLAGS)" EXE_LDFLAGS="$(SAN_EXE_LDFLAGS)" check

install: all
	$(MKDIR_P) $(DESTDIR)$(bindir) $(DESTDIR)$(libdir)/pkgconfig $(DESTDIR)$(includedir)/skystack
	$(MKDIR_P) $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 $(DESTDIR)$(mandir)/man7
	$(MKDIR_P) $(DESTDIR)$(datadir)/skystack/sql $(DESTDIR)$(datadir)/skystack/examples
	for t in $(TOOL_BINS); do $(INSTALL) -m 755 $$t $(DESTDIR)$(bindir)/; done
	$(INSTALL) -m 644 $(STATIC_LIB) $(DESTDIR)$(libdir)/
	$(INSTALL) -m 755 $(SHARED_LIB) $(DESTDIR)$(libdir)/
	ln -sf $(SONAME) $(DESTDIR)$(libdir)/libskystack.so
	$(INSTALL) -m 644 $(LIB_HDR) $(DESTDIR)$(includedir)/skystack/
	$(INSTALL) -m 644 skystack.pc $(DESTDIR)$(libdir)/pkgconfig/
	for m in man/man1/*.1; do $(INSTALL) -m 644 $$m $(DESTDIR)$(mandir)/man1/; done
	for m in man/man5/*.5; do $(INSTALL) -m 644 $$m $(DESTDIR)$(mandir)/man5/; done
	for m in man/man7/*.7; do $(INSTALL) -m 644 $$m $(DESTDIR)$(mandir)/man7/; done
	$(INSTALL) -m 644 share/skystack/*.json $(DESTDIR)$(datadir)/skystack/
	for f in share/sql/*.sql; do [ -e "$$f" ] && $(INSTALL) -m 644 $$f $(DESTDIR)$(datadir)/skystack/sql/; done; true
	for f in share/examples/*; do [ -e "$$f" ] && $(INSTALL) -m 644 $$f $(DESTDIR)$(datadir)/skystack/examples/; done; true
	$(INSTALL) -m 755 share/demo.sh $(DESTDIR)$(datadir)/skystack/

uninstall:
	for t in $(TOOL_NAMES); do rm -f $(DESTDIR)$(bindir)/$$t; done
	rm -f $(DESTDIR)$(libdir)/libskystack.* $(DESTDIR)$(libdir)/pkgconfig/skystack.pc
	rm -rf $(DESTDIR)$(includedir)/skystack $(DESTDIR)$(datadir)/skystack

demo: all
	PATH="$(CURDIR)/$(B)/bin:$$PATH" SKYSTACK_SHARE="$(CURDIR)/share/skystack" sh share/demo.sh

bench: all
	sh bench/run-all

clean:
	rm -rf build build-san

distclean: clean
	rm -rf config.mk config.log config.status configure autom4te.cache skystack.pc
