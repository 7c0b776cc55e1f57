# LMQL in C on llama.cpp.  `make demo`, `make test`; see README.md.
# Dependencies are installed by scripts/setup.sh and llama.cpp is chosen by
# scripts/configure.sh (build/config.mk); both run on demand from here.

# make DEBUG=1 [all|unit]: a debug build in build-debug (-O0, LMQL_ASSERT
# checks on; see src/lmql_int.h). The sanitizer (asan) and fuzz builds check
# LMQL_ASSERT too; the release build does not.
DEBUG   ?=
ifeq ($(DEBUG),1)
BUILD   ?= build-debug
OPT     ?= -O0
endif
BUILD   ?= build
CC      ?= cc
OPT     ?= -O2
SAN     ?=
WERROR  ?= $(if $(CI),-Werror,)
WARN     = -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
           -Wpointer-arith -Wformat=2 -Wno-unused-parameter $(WERROR)
CFLAGS  ?= $(OPT) -g
DEFS     = $(if $(filter 1,$(DEBUG)),-DLMQL_DEBUG)
# Every object is position-independent: the same set makes liblmql.a and
# liblmql.so (the Python package loads the latter), and in the programs,
# which are PIE anyway, the linker relaxes the GOT loads this costs.
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -fPIC $(DEFS) $(CFLAGS) $(WARN) $(SAN) -Iinclude -Isrc $(LLAMA_CFLAGS) $(WS_CFLAGS)
LDLIBS   = $(LLAMA_LIBS) $(WS_LIBS) -lm -ldl -lpthread

SETUP_STAMP = deps/llama/.complete-3.21.1
CONFIG      = build/config.mk

-include $(CONFIG)

LIB_SRC  = $(wildcard src/*.c)
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB      = $(BUILD)/lib/liblmql.a
SO       = $(BUILD)/lib/liblmql.so
LMQL     = $(BUILD)/bin/lmql
MKMODEL  = $(BUILD)/bin/lmql-mkmodel
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_SUPPORT = tests/unit/harness.c

VOCABS = $(addprefix build/vocab/ggml-vocab-,llama-spm.gguf gpt-2.gguf llama-bpe.gguf)
TINY   = build/models/tiny-spm.gguf build/models/tiny-gpt2.gguf build/models/tiny-llama3.gguf \
         build/models/tiny-llama3-eot.gguf

# Keep objects that only tests use between runs.
.SECONDARY:

MASKBENCH = $(BUILD)/bin/lmql-maskbench

.PHONY: all setup demo test unit cases asan header-check fuzz-corpus bench bench-model maskbench maskbench-gbnf install install-python clean distclean fuzz
# The benchmark programs are built too, so a change that breaks them fails the build.
all: $(LMQL) $(SO) $(MKMODEL) $(BUILD)/bin/lmql-bench $(BUILD)/bin/lmql-bench-cons $(BUILD)/bin/lmql-bench-serve $(MASKBENCH)

setup: $(SETUP_STAMP) $(CONFIG)
$(SETUP_STAMP):
	bash scripts/setup.sh
$(CONFIG): $(SETUP_STAMP) scripts/configure.sh
	bash scripts/configure.sh

# Each object depends on the headers it includes, as the compiler lists them
# (-MMD); one without that list yet (built before it was kept) on every header;
# and on the compiler flags: $(BUILD)/.cflags changes when they do, so a build
# tree never mixes objects made with different flags (a non-PIC object left
# from an older build cannot be linked into liblmql.so).
HEADERS = $(wildcard src/*.h src/*.def include/*.h tools/*.h tests/unit/*.h)
FLAGS_STAMP = $(BUILD)/.cflags
$(FLAGS_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(ALL_CFLAGS)' | cmp -s - $@ || echo '$(CC) $(ALL_CFLAGS)' > $@
.PHONY: FORCE
FORCE:
.SECONDEXPANSION:
$(BUILD)/obj/%.o: %.c $(CONFIG) $(FLAGS_STAMP) $$(if $$(wildcard $(BUILD)/obj/$$*.d),,$(HEADERS))
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@
-include $(wildcard $(BUILD)/obj/src/*.d $(BUILD)/obj/cli/*.d $(BUILD)/obj/tools/*.d $(BUILD)/obj/tests/unit/*.d)

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The shared library (the Python package loads it) exports lmql.h's names
# only; it finds the bundled llama.cpp libraries next to itself ($ORIGIN),
# in the build tree and where `make install` puts both.
$(SO): $(LIB_OBJ) src/liblmql.map $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -shared -Wl,-soname,liblmql.so -Wl,--version-script=src/liblmql.map -Wl,-z,defs $(LIB_OBJ) -o $@ \
	  $(filter-out -Wl$(comma)-rpath%,$(LLAMA_LIBS)) $(if $(filter 1,$(LLAMA_BUNDLED)),-Wl$(comma)-rpath$(comma)'$$ORIGIN') \
	  $(WS_LIBS) -lm -ldl -lpthread

$(BUILD)/lib/.llama: $(CONFIG)
	@mkdir -p $(dir $@)
	if [ "$(LLAMA_BUNDLED)" = 1 ] && [ "$(BUILD)" != build ]; then cp -p deps/llama/lib/*.so $(BUILD)/lib/; fi
	touch $@

$(LMQL): $(BUILD)/obj/cli/main.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(BUILD)/obj/cli/main.o $(LIB) -o $@ $(LDLIBS)

$(MKMODEL): $(BUILD)/obj/tools/mkmodel.o $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< -o $@ $(LDLIBS)

$(BUILD)/bin/lmql-bench: $(BUILD)/obj/tools/bench.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< $(LIB) -o $@ $(LDLIBS)

$(BUILD)/bin/lmql-bench-cons: $(BUILD)/obj/tools/bench_cons.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< $(LIB) -o $@ $(LDLIBS)

$(BUILD)/bin/lmql-bench-serve: $(BUILD)/obj/tools/bench_serve.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< $(LIB) -o $@ $(LDLIBS)

$(BUILD)/bin/lmql-maskbench: $(BUILD)/obj/tools/maskbench.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< $(LIB) -o $@ $(LDLIBS)

# MaskBench (guidance-ai/jsonschemabench's mask benchmark) on our engine:
# the table on stdout, the results in bench/results/maskbench.json. The
# schemas: MASKBENCH_DIR, default ../shared/data/maskbench from the
# repository root; MASKBENCH_ARGS: more options (--limit N, --free-ws, ...).
MASKBENCH_DIR  ?=
MASKBENCH_ARGS ?=
maskbench: $(MASKBENCH) build/vocab/ggml-vocab-llama-bpe.gguf
	python3 bench/maskbench.py --bin $(BUILD)/bin/lmql-maskbench $(if $(MASKBENCH_DIR),--dir $(MASKBENCH_DIR)) $(MASKBENCH_ARGS)

# The GBNF ratio: llama.cpp's grammar sampler on the same schemas' grammars
# exported as GBNF, against our masks, first 20 tokens of one valid instance
# of 100 schemas (about a minute); bench/results/gbnf_ratio.json.
GBNF_RATIO_ARGS ?=
maskbench-gbnf: $(MASKBENCH) build/vocab/ggml-vocab-llama-bpe.gguf
	python3 bench/gbnf_ratio.py --bin $(BUILD)/bin/lmql-maskbench --schemas 100 --steps 20 $(if $(MASKBENCH_DIR),--dir $(MASKBENCH_DIR)) $(GBNF_RATIO_ARGS)

# Speed of the tiny models and of the 0.8B Q4_0 bench model (made on first
# use, about 420 MiB). Figures go to the README with the machine they came from.
bench: $(BUILD)/bin/lmql-bench $(BUILD)/bin/lmql-bench-cons $(BUILD)/bin/lmql-bench-serve $(MASKBENCH) $(SO) testdata build/models/bench-q4_0.gguf
	@echo "machine: $$(nproc) cores, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
	$(BUILD)/bin/lmql-bench build/models/tiny-spm.gguf
	$(BUILD)/bin/lmql-bench build/models/tiny-llama3.gguf
	$(BUILD)/bin/lmql-bench build/models/bench-q4_0.gguf --runs 3
	$(BUILD)/bin/lmql-bench build/models/bench-q4_0.gguf --runs 3 --threads 1
	@echo "a JSON Schema query end to end against the bare llama.cpp loop, output tokens/s (bench/results/json_e2e*.json;"
	@echo "1 thread: steadier when other processes share the cores):"
	$(BUILD)/bin/lmql-bench build/models/bench-q4_0.gguf --json --runs 5
	$(BUILD)/bin/lmql-bench build/models/bench-q4_0.gguf --json --runs 5 --threads 1 --out bench/results/json_e2e-1thread.json
	@echo "with another process keeping one core busy (polling off, our default; then llama.cpp's 50):"
	@timeout 120 sh -c 'while :; do :; done' & b=$$!; \
	  $(BUILD)/bin/lmql-bench build/models/tiny-spm.gguf --runs 3; \
	  $(BUILD)/bin/lmql-bench build/models/tiny-spm.gguf --runs 3 --poll 50; \
	  kill $$b
	@echo "constraints: mask time per token, llama.cpp's grammar sampler, end to end (bench/results/constraints.json):"
	$(BUILD)/bin/lmql-bench-cons
	@echo "serve-model: concurrent clients against a bare batched loop, shared-prefix first token (bench/results/serve.json):"
	$(BUILD)/bin/lmql-bench-serve
	@echo "serve-model replicas: aggregate tokens/s, direct vs HAProxy before 1 and 2 replicas, one thread each (bench/results/replicas.json):"
	@if command -v haproxy >/dev/null; then LMQL_BENCH_SERVE_ARGS="--n_threads 1" python3 bench/replicas.py $(BUILD)/bin/lmql build/models/bench-q4_0.gguf 8 2 32; \
	  else echo "haproxy not installed (scripts/setup.sh): skipped"; fi
	@echo "Python: a query's per-call cost through python/lmql against the C API, target 1.1x (bench/results/python_overhead.json):"
	LMQL_LIBRARY=$(CURDIR)/$(SO) python3 bench/python_overhead.py
	@echo "MaskBench: JSON Schema masks as guidance-ai/jsonschemabench measures them (bench/results/maskbench.json):"
	$(MAKE) maskbench MASKBENCH_ARGS="--missing-ok $(MASKBENCH_ARGS)"
	@echo "GBNF ratio: llama.cpp's grammar sampler on our grammars as GBNF vs our masks (bench/results/gbnf_ratio.json):"
	$(MAKE) maskbench-gbnf GBNF_RATIO_ARGS="--missing-ok $(GBNF_RATIO_ARGS)"

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(BUILD)/obj/tests/unit/harness.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< $(BUILD)/obj/tests/unit/harness.o $(LIB) -o $@ -Wl,-rpath,'$$ORIGIN/../lib' $(LDLIBS)

# The allocation-failure test fails our own allocations only: the calls in
# our objects go to its wrappers, llama.cpp's and libc's stay as they are.
$(BUILD)/tests/test_alloc: $(BUILD)/obj/tests/unit/test_alloc.o $(BUILD)/obj/tests/unit/harness.o $(LIB) $(BUILD)/lib/.llama
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $< $(BUILD)/obj/tests/unit/harness.o $(LIB) -o $@ -Wl,-rpath,'$$ORIGIN/../lib' \
	  -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup $(LDLIBS)

# Test data: llama.cpp's vocab-only files and tiny random-weight models.
build/vocab/%.gguf: $(SETUP_STAMP)
	@mkdir -p $(dir $@)
	cp deps/llama/vocab/$*.gguf $@
build/models/tiny-spm.gguf: $(MKMODEL) build/vocab/ggml-vocab-llama-spm.gguf
	@mkdir -p $(dir $@)
	$(MKMODEL) --vocab build/vocab/ggml-vocab-llama-spm.gguf --out $@ --preset tiny
build/models/tiny-gpt2.gguf: $(MKMODEL) build/vocab/ggml-vocab-gpt-2.gguf
	@mkdir -p $(dir $@)
	$(MKMODEL) --vocab build/vocab/ggml-vocab-gpt-2.gguf --out $@ --preset tiny
build/models/tiny-llama3.gguf: $(MKMODEL) build/vocab/ggml-vocab-llama-bpe.gguf
	@mkdir -p $(dir $@)
	$(MKMODEL) --vocab build/vocab/ggml-vocab-llama-bpe.gguf --out $@ --preset tiny --chat-template llama3
# A chat model that ends its turn at once: greedy decoding always picks
# <|eot_id|> (128009), so holes show that an end-of-turn token ends them.
build/models/tiny-llama3-eot.gguf: $(MKMODEL) build/vocab/ggml-vocab-llama-bpe.gguf
	@mkdir -p $(dir $@)
	$(MKMODEL) --vocab build/vocab/ggml-vocab-llama-bpe.gguf --out $@ --preset tiny --chat-template llama3 \
	  --favor 128009 --embd-type q8_0
bench-model: build/models/bench-q4_0.gguf
build/models/bench-q4_0.gguf: $(MKMODEL) build/vocab/ggml-vocab-llama-spm.gguf
	@mkdir -p $(dir $@)
	$(MKMODEL) --vocab build/vocab/ggml-vocab-llama-spm.gguf --out $@ --preset bench

testdata: $(VOCABS) $(TINY)

demo: all testdata
	bash scripts/demo.sh

# make install [PREFIX=/usr/local] [DESTDIR=]: the command, the library, lmql.h and lmql.pc; the bundled
# llama.cpp libraries go to PREFIX/lib too, where the command's $ORIGIN/../lib rpath finds them.
PREFIX  ?= /usr/local
comma   := ,
# llama.cpp's link flags for programs built against the installed library: the build tree's paths become
# the install's, and the rpath names it (programs elsewhere have no $ORIGIN/../lib).
PC_LLAMA_LIBS = $(subst -Lbuild/lib,-L$${libdir},$(filter-out -Wl$(comma)-rpath$(comma)%,$(LLAMA_LIBS))) \
                $(if $(filter 1,$(LLAMA_BUNDLED)),-Wl$(comma)-rpath$(comma)$${libdir})
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 755 $(LMQL) $(DESTDIR)$(PREFIX)/bin/lmql
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/liblmql.a
	install -m 755 $(SO) $(DESTDIR)$(PREFIX)/lib/liblmql.so
	install -m 644 include/lmql.h $(DESTDIR)$(PREFIX)/include/lmql.h
	$(if $(filter 1,$(LLAMA_BUNDLED)),cp -P build/lib/*.so* $(DESTDIR)$(PREFIX)/lib/)
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: lmql' 'Description: LMQL queries on llama.cpp' 'Version: $(shell sed -n 's/^#define LMQL_VERSION "\(.*\)"/\1/p' include/lmql.h)' \
	  'Cflags: -I$${includedir}' \
	  'Libs: -L$${libdir} -llmql $(PC_LLAMA_LIBS) $(WS_LIBS) -lm -ldl -lpthread' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/lmql.pc

# make install-python [PREFIX=/usr/local] [PYTHON=python3]: the library (make install) and the Python package
# python/lmql into that Python's site-packages under PREFIX (PYTHON_SITE), told where liblmql.so and the random
# model's vocabulary are. Standard library only: nothing is downloaded.
PYTHON      ?= python3
PYTHON_SITE ?= $(shell $(PYTHON) -c 'import sys, sysconfig; print(sysconfig.get_path("purelib", vars={"base": sys.argv[1], "platbase": sys.argv[1]}))' $(PREFIX))
install-python: install build/vocab/ggml-vocab-gpt-2.gguf
	install -d $(DESTDIR)$(PYTHON_SITE)/lmql/tests $(DESTDIR)$(PREFIX)/share/lmql
	install -m 644 python/lmql/*.py $(DESTDIR)$(PYTHON_SITE)/lmql/
	install -m 644 python/lmql/tests/*.py $(DESTDIR)$(PYTHON_SITE)/lmql/tests/
	install -m 644 build/vocab/ggml-vocab-gpt-2.gguf $(DESTDIR)$(PREFIX)/share/lmql/
	printf '%s\n' '# written by make install-python' "LIBRARY = '$(PREFIX)/lib/liblmql.so'" \
	  "VOCAB = '$(PREFIX)/share/lmql/ggml-vocab-gpt-2.gguf'" > $(DESTDIR)$(PYTHON_SITE)/lmql/_libpath.py

# Test data is made once, by the default build's tools.
# The re matcher's differential table, computed by this machine's python3 (not kept in git).
build/regex_match.jsonl: scripts/gen_regex_match_cases.py
	@mkdir -p $(dir $@)
	python3 $< > $@.tmp && mv $@.tmp $@

unit: $(UNIT_BIN) $(if $(filter build,$(BUILD)),testdata) build/regex_match.jsonl $(LMQL) $(SO) $(MASKBENCH) header-check
	@bash tests/run-unit.sh $(BUILD) $(UNIT_BIN)

test: all testdata
	rm -f build/test-summary build-asan/test-summary
	$(MAKE) unit
	$(MAKE) asan
	@cat build/test-summary build-asan/test-summary | \
	  awk '{p += $$1; f += $$2} END {printf "total: %d passed, %d failed\n", p, f; exit f > 0}'

# The same suite built with AddressSanitizer + UndefinedBehaviorSanitizer,
# and with LMQL_ASSERT checking (DEBUG=1).
asan: setup
	LMQL_PROPS_RUNS=40 LMQL_SCHEMA_PROPS_SEEDS=2 $(MAKE) BUILD=build-asan OPT=-O1 DEBUG=1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" unit

# The public header stands alone, as C99 and as C++.
header-check:
	$(CC) -std=c99 -Wall -Wextra -Werror -fsyntax-only -x c include/lmql.h
	$(CXX) -std=c++11 -Wall -Wextra -Werror -fsyntax-only -x c++ include/lmql.h

# libFuzzer targets, FUZZ_SECONDS each: fuzz_parse (lexer and parser) and
# fuzz_interp (compile and run on the random model: parser, interpreter,
# constraints, decoding), both seeded from the case files; fuzz_regex (constraint regexes);
# fuzz_pyre (the `re` module's pattern parser and backtracking matcher);
# fuzz_lmtp (the server's command parser), seeded from tests/fuzz/lmtp;
# fuzz_ws (the server's handshake and frame reader); fuzz_json (the JSON
# reader: a model server's replies to the client, host functions' results);
# fuzz_gbnf (the GBNF grammar compiler and the grammar matcher), seeded from
# tests/fuzz/gbnf; fuzz_jsonschema (JSON Schema to grammar), seeded from
# tests/fuzz/jsonschema.
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -std=c11 -D_GNU_SOURCE -DLMQL_DEBUG -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -Iinclude -Isrc
FRONT_SRC = src/alloc.c src/arena.c src/diag.c src/lex.c src/ast.c src/utf8.c $(wildcard src/parse*.c)
build/fuzz/fuzz_parse: tests/fuzz/fuzz_parse.c $(FRONT_SRC) $(wildcard src/*.h src/*.def)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FRONT_SRC) $< -o $@
build/fuzz/fuzz_interp: tests/fuzz/fuzz_interp.c $(LIB_SRC) $(wildcard src/*.h src/*.def include/*.h) $(CONFIG)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(LLAMA_CFLAGS) $(LIB_SRC) $< -o $@ \
	  $(subst $$$$ORIGIN/../lib,$(CURDIR)/build/lib,$(LLAMA_LIBS)) $(WS_LIBS) -lm -ldl -lpthread
build/fuzz/fuzz_regex: tests/fuzz/fuzz_regex.c src/alloc.c src/utf8.c $(wildcard src/regex*.c src/regex.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer src/alloc.c src/utf8.c $(wildcard src/regex*.c) $< -o $@
build/fuzz/fuzz_pyre: tests/fuzz/fuzz_pyre.c src/alloc.c src/utf8.c $(wildcard src/regex*.c src/regex*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer src/alloc.c src/utf8.c $(wildcard src/regex*.c) $< -o $@
build/fuzz/fuzz_lmtp: tests/fuzz/fuzz_lmtp.c src/lmtp.c src/util.c src/utf8.c src/alloc.c src/lmtp.h src/lmql_int.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer src/lmtp.c src/util.c src/utf8.c src/alloc.c $< -o $@ -lm
build/fuzz/fuzz_json: tests/fuzz/fuzz_json.c src/json.c src/value.c src/util.c src/utf8.c src/alloc.c src/json.h src/value.h src/lmql_int.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer src/json.c src/value.c src/util.c src/utf8.c src/alloc.c $< -o $@ -lm
GBNF_SRC = src/gbnf.c src/gbnf_build.c src/grammar.c src/gmatch.c src/gsplit.c src/memo.c src/trie.c src/alloc.c \
           src/arena.c src/utf8.c src/util.c $(wildcard src/regex*.c)
build/fuzz/fuzz_gbnf: tests/fuzz/fuzz_gbnf.c $(GBNF_SRC) $(wildcard src/gbnf*.h src/grammar*.h src/regex.h src/trie.h) src/lmql_int.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(GBNF_SRC) $< -o $@ -lm -lpthread
JSONSCHEMA_SRC = $(wildcard src/jsonschema*.c) src/grammar.c src/gmatch.c src/gsplit.c src/memo.c src/regex_parse.c src/regex_dfa.c \
                 src/json.c src/value.c src/util.c src/utf8.c src/alloc.c src/arena.c src/trie.c
build/fuzz/fuzz_jsonschema: tests/fuzz/fuzz_jsonschema.c $(JSONSCHEMA_SRC) $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer $(JSONSCHEMA_SRC) $< -o $@ -lm -lpthread
build/fuzz/fuzz_ws: tests/fuzz/fuzz_ws.c src/ws_frame.c src/utf8.c src/ws_frame.h
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -fsanitize=fuzzer src/ws_frame.c src/utf8.c $< -o $@
fuzz-corpus:
	@rm -rf build/fuzz/corpus build/fuzz/lmtp-corpus build/fuzz/gbnf-corpus build/fuzz/jsonschema-corpus
	@mkdir -p build/fuzz/corpus build/fuzz/lmtp-corpus build/fuzz/gbnf-corpus build/fuzz/jsonschema-corpus
	cp tests/fuzz/lmtp/* build/fuzz/lmtp-corpus/
	cp tests/fuzz/gbnf/* build/fuzz/gbnf-corpus/
	cp tests/fuzz/jsonschema/* build/fuzz/jsonschema-corpus/
	awk '/^%%/ {n++; next} {print > ("build/fuzz/corpus/case" n)}' tests/cases/parse.test tests/cases/run.test \
	  tests/cases/programs.test tests/cases/classes.test tests/cases/typed.test
fuzz: build/fuzz/fuzz_parse build/fuzz/fuzz_interp build/fuzz/fuzz_regex build/fuzz/fuzz_pyre build/fuzz/fuzz_lmtp build/fuzz/fuzz_ws build/fuzz/fuzz_json \
      build/fuzz/fuzz_gbnf build/fuzz/fuzz_jsonschema testdata fuzz-corpus
	build/fuzz/fuzz_parse -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=build/fuzz/ build/fuzz/corpus
	LMQL_RANDOM_VOCAB=build/vocab/ggml-vocab-llama-spm.gguf build/fuzz/fuzz_interp -max_total_time=$(FUZZ_SECONDS) \
	  -timeout=10 -rss_limit_mb=4096 -artifact_prefix=build/fuzz/ build/fuzz/corpus
	build/fuzz/fuzz_regex -max_total_time=$(FUZZ_SECONDS) -timeout=30 -artifact_prefix=build/fuzz/
	build/fuzz/fuzz_pyre -max_total_time=$(FUZZ_SECONDS) -timeout=30 -artifact_prefix=build/fuzz/
	build/fuzz/fuzz_lmtp -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=build/fuzz/ build/fuzz/lmtp-corpus
	build/fuzz/fuzz_ws -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=build/fuzz/
	build/fuzz/fuzz_json -max_total_time=$(FUZZ_SECONDS) -timeout=5 -artifact_prefix=build/fuzz/
	build/fuzz/fuzz_gbnf -max_total_time=$(FUZZ_SECONDS) -timeout=60 -artifact_prefix=build/fuzz/ build/fuzz/gbnf-corpus
	build/fuzz/fuzz_jsonschema -max_total_time=$(FUZZ_SECONDS) -timeout=30 -rss_limit_mb=4096 -artifact_prefix=build/fuzz/ build/fuzz/jsonschema-corpus

clean:
	rm -rf build/obj build/bin build/tests build/lib/liblmql.a build-asan build-debug
distclean:
	rm -rf build build-asan build-debug deps
