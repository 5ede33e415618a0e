# airlock - plain Makefile, dependencies through pkg-config.
#
#   make            build build/airlock
#   make run        build and start the control plane on 127.0.0.1:8420 (data in ./data)
#   make check      build and run every test (unit, integration, SDK peer)
#   make asan       the same suite under ASan + UBSan (build-asan/)
#   make fuzz       build the libFuzzer targets with clang and run each briefly
#   make bench      run the benchmarks (bench/), figures to docs/BENCHMARKS.md
#   make bench-mcp  tickets-mcp against the TypeScript SDK, and the gateway overhead
#   make format     clang-format the sources

PKGS := libuv openssl libcurl jansson sqlite3 libseccomp yaml-0.1

# Install missing libraries (idempotent; does nothing when all are present).
ifeq ($(shell pkg-config --exists $(PKGS) 2>/dev/null && echo ok),)
DEPS_RC := $(shell ./scripts/deps.sh 1>&2; echo $$?)
ifneq ($(DEPS_RC),0)
$(error scripts/deps.sh failed: install $(PKGS) development packages)
endif
endif

VERSION := 0.1.0
# V=1 shows full compiler command lines.
Q := $(if $(V),,@)
B ?= build
CC ?= cc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS := $(shell pkg-config --libs $(PKGS))

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter -Wformat=2 -Wvla
CFLAGS ?= -O2 -g
# override: `make CFLAGS=...` (asan, fuzz) replaces only the optimisation and
# sanitizer flags; the language, warnings and include paths always apply.
override CFLAGS += -std=c17 -D_GNU_SOURCE -pthread $(WARN) -Isrc $(PKG_CFLAGS) \
	-DAL_VERSION='"$(VERSION)"' -fstack-protector-strong -MMD -MP
ifneq ($(SANITIZE),1)
override CFLAGS += -D_FORTIFY_SOURCE=2
endif
override LDLIBS += $(PKG_LIBS) -pthread -lm

SRC := $(sort $(wildcard src/*/*.c))
MAIN_SRC := src/cli/main.c
LIB_SRC := $(filter-out $(MAIN_SRC),$(SRC))
LIB_OBJ := $(LIB_SRC:%.c=$(B)/obj/%.o)
MAIN_OBJ := $(MAIN_SRC:%.c=$(B)/obj/%.o)

UNIT_SRC := $(sort $(wildcard tests/unit/*/*.c)) tests/unit/runner.c
UNIT_OBJ := $(UNIT_SRC:%.c=$(B)/obj/%.o)

.PHONY: all run serve check conformance unit asan fuzz bench bench-worker bench-mcp format clean deps

all: $(B)/airlock $(B)/tickets-mcp

$(B)/libairlock.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(B)/airlock: $(MAIN_OBJ) $(B)/libairlock.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(MAIN_OBJ) $(B)/libairlock.a $(LDLIBS)

$(B)/test-unit: $(UNIT_OBJ) $(B)/libairlock.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(UNIT_OBJ) $(B)/libairlock.a $(LDLIBS)

# The conformance suite's client runner (scripts/conformance-client.sh).
$(B)/mcp-conformance-client: tests/mcp/conformance_client.c $(B)/libairlock.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libairlock.a $(LDLIBS)

# TEST FIXTURE: the MCP server the conformance suite runs against (tests/mcp/fixture.c).
$(B)/mcp-fixture: $(B)/obj/tests/mcp/fixture.o $(B)/libairlock.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libairlock.a $(LDLIBS)

# The official MCP conformance suite (npm, Node 22; scripts/mcp-deps.sh) against
# the fixture (both revisions) and, when built, our client. One line at the end.
# The client runner (tests/mcp/conformance_client.c) joins in where it exists.
CONFORMANCE_BINS := $(B)/mcp-fixture \
	$(if $(wildcard tests/mcp/conformance_client.c),$(B)/mcp-conformance-client)
conformance: $(CONFORMANCE_BINS)
	@B=$(B) ./scripts/conformance.sh

# The example MCP server (examples/tickets/, docs/TICKETS-MCP.md): a program
# outside the library, linked with it like any user's would be.
TICKETS_OBJ := $(patsubst %.c,$(B)/obj/%.o,$(sort $(wildcard examples/tickets/*.c)))
$(B)/tickets-mcp: $(TICKETS_OBJ) $(B)/libairlock.a
	@echo "  LD      $@"
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TICKETS_OBJ) $(B)/libairlock.a $(LDLIBS)

$(B)/obj/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -Itests -c -o $@ $<

$(B)/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(CFLAGS) -c -o $@ $<

deps:
	./scripts/deps.sh

# The README's first command: the end-to-end demo (control plane, model, worker,
# one session whose tool calls run in the sandbox, audit log verified).
# The demo also starts build/tickets-mcp behind `airlock gateway` when it is built.
run: $(B)/airlock $(B)/tickets-mcp
	$(B)/airlock demo

# Only the control plane, on loopback, data in ./data.
RUN_LISTEN ?= 127.0.0.1:8420
RUN_DATA ?= data
serve: $(B)/airlock
	$(B)/airlock server --listen $(RUN_LISTEN) --data $(RUN_DATA)

# One summary line at the end: "N passed, N failed".
check: deps $(B)/airlock $(B)/test-unit $(B)/tickets-mcp $(CONFORMANCE_BINS)
	@B=$(B) ./tests/run-all.sh

unit: $(B)/test-unit
	$(B)/test-unit

asan:
	$(MAKE) B=build-asan CC=clang SANITIZE=1 \
		CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" check

FUZZ_TARGETS := $(patsubst fuzz/%.c,build-fuzz/%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 20
# The library sources are prerequisites too: a parser change must rebuild the fuzzer.
build-fuzz/%: fuzz/%.c $(LIB_SRC) $(wildcard src/*/*.h)
	$(MAKE) B=build-fuzz CC=clang SANITIZE=1 \
		CFLAGS="-O1 -g -fsanitize=fuzzer-no-link,address,undefined" build-fuzz/libairlock.a
	clang -std=c17 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) -O1 -g -fsanitize=fuzzer,address,undefined \
		-o $@ $< build-fuzz/libairlock.a $(LDLIBS)

fuzz: $(FUZZ_TARGETS)
	@for t in $(FUZZ_TARGETS); do \
		n=$$(basename $$t); mkdir -p build-fuzz/corpus/$$n; \
		echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
		$$t -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -print_final_stats=0 \
			build-fuzz/corpus/$$n fuzz/corpus/$$n 2>build-fuzz/$$n.log \
			|| { tail -50 build-fuzz/$$n.log; exit 1; }; \
	done

BENCH_BINS := $(B)/bench-append $(B)/bench-fanout $(B)/bench-turns $(B)/bench-sandbox \
	$(B)/bench-worker $(B)/bench-toolcall $(B)/bench-mcp_load
$(B)/bench-append $(B)/bench-sandbox $(B)/bench-toolcall: $(B)/bench-%: bench/%.c $(B)/libairlock.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(B)/libairlock.a $(LDLIBS)
# The MCP load generator speaks TLS to the gateway: OpenSSL, no libairlock.
$(B)/bench-mcp_load: bench/mcp_load.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LDLIBS)
$(B)/bench-%: bench/%.c bench/client.h
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<

bench: $(B)/airlock $(BENCH_BINS)
	B=$(B) ./bench/run.sh

bench-worker: $(B)/airlock $(B)/bench-worker $(B)/bench-toolcall
	B=$(B) ./bench/run.sh worker

# tickets-mcp against the official TypeScript SDK, and the gateway's overhead.
bench-mcp: $(B)/airlock $(B)/tickets-mcp $(B)/bench-mcp_load
	B=$(B) ./bench/run.sh mcp

format:
	clang-format -i $(SRC) $(wildcard src/*/*.h) $(wildcard tests/unit/*.[ch] tests/unit/*/*.c) $(wildcard fuzz/*.c) \
		$(wildcard examples/*/*.[ch])

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_OBJ:.o=.d) $(B)/obj/tests/mcp/fixture.d $(TICKETS_OBJ:.o=.d)
