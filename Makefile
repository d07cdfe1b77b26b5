# blockrep build. GNU make, g++, C++20. `make help` lists the targets.
#
# Sources are found by folder: core/ (code both daemons share), nbd/ (NBD server library),
# daemon/ (blockrep-source), target/ (blockrep-target), tools/ (the blockrep CLI).
# Files ending in _test.cc are GoogleTest unit tests; *_fuzz.cc are libFuzzer targets.

CXX      ?= g++
CLANGXX  ?= clang++
PREFIX   ?= /usr/local
DESTDIR  ?=
BUILD    ?= build

PKGS      := liburing libsystemd libxxhash fuse3 openssl libzstd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
GTEST_LIBS := $(shell pkg-config --libs gtest_main 2>/dev/null || echo -lgtest_main -lgtest)

WARNINGS := -Wall -Wextra -Werror
CXXFLAGS ?= -O2 -g
override CXXFLAGS += -std=c++20 $(WARNINGS) -I. $(PKG_CFLAGS) -MMD -MP
LDLIBS   := $(PKG_LIBS) -lpthread
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

lib_srcs    = $(filter-out %_test.cc %_fuzz.cc %/main.cc,$(wildcard $(1)/*.cc))
CORE_SRCS   := $(call lib_srcs,core)
NBD_SRCS    := $(call lib_srcs,nbd)
DAEMON_SRCS := $(call lib_srcs,daemon)
TARGET_SRCS := $(call lib_srcs,target)
TOOLS_SRCS  := $(call lib_srcs,tools)
TEST_SRCS   := $(wildcard core/*_test.cc nbd/*_test.cc daemon/*_test.cc target/*_test.cc tools/*_test.cc)
FUZZ_SRCS   := $(wildcard nbd/*_fuzz.cc core/*_fuzz.cc)

SOURCE_SRCS := daemon/main.cc $(DAEMON_SRCS) $(NBD_SRCS) $(CORE_SRCS)
TARGETD_SRCS := target/main.cc $(TARGET_SRCS) $(CORE_SRCS)
CLI_SRCS    := tools/main.cc $(TOOLS_SRCS) $(CORE_SRCS)
UNIT_SRCS   := $(TEST_SRCS) $(CORE_SRCS) $(NBD_SRCS) $(DAEMON_SRCS) $(TARGET_SRCS) $(TOOLS_SRCS)

obj  = $(patsubst %.cc,$(BUILD)/obj/%.o,$(1))
aobj = $(patsubst %.cc,$(BUILD)/asan/%.o,$(1))

BINARIES := $(BUILD)/blockrep-source $(BUILD)/blockrep-target $(BUILD)/blockrep

.PHONY: all deps test demo bench install clean help unit-tests fuzz
.DEFAULT_GOAL := all

all: $(BINARIES)

help:
	@echo "make deps     install build and test dependencies (apt-get; no-op when present)"
	@echo "make all      build $(BINARIES)"
	@echo "make test     unit tests, unit tests under ASan+UBSan, fuzz run, integration tests"
	@echo "make demo     replicate a demo disk to a local target while fio writes and verifies it"
	@echo "make bench    fio against blockrep-source, nbdkit and qemu-nbd; replication; point bring-up"
	@echo "make install  install binaries and systemd units under \$$DESTDIR\$$PREFIX"
	@echo "make clean    remove $(BUILD)/"

deps:
	@scripts/install-deps.sh

$(BUILD)/blockrep-source: $(call obj,$(SOURCE_SRCS))
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/blockrep-target: $(call obj,$(TARGETD_SRCS))
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/blockrep: $(call obj,$(CLI_SRCS))
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

# Benchmark tools (make bench).
$(BUILD)/point_bringup: $(call obj,bench/point_bringup.cc target/point_view.cc $(CORE_SRCS))
	$(CXX) $(CXXFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -c -o $@ $<

# The same unit tests, built with AddressSanitizer and UndefinedBehaviorSanitizer.
$(BUILD)/asan/%.o: %.cc
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) -O1 $(SANITIZE) -c -o $@ $<

$(BUILD)/unit_tests: $(call obj,$(UNIT_SRCS))
	$(CXX) $(CXXFLAGS) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)
$(BUILD)/asan/unit_tests: $(call aobj,$(UNIT_SRCS))
	$(CXX) $(CXXFLAGS) $(SANITIZE) -o $@ $^ $(GTEST_LIBS) $(LDLIBS)

unit-tests: $(BUILD)/unit_tests $(BUILD)/asan/unit_tests

# libFuzzer targets need clang; they link the real code that reads untrusted bytes (the NBD
# handshake and request parser; the replication protocol's decoders).
FUZZ_FLAGS := -std=c++20 -O1 -g -I. $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
$(BUILD)/fuzz/%: nbd/%.cc $(NBD_SRCS) $(CORE_SRCS)
	@mkdir -p $(@D)
	$(CLANGXX) $(FUZZ_FLAGS) $(WARNINGS) -o $@ $^ $(LDLIBS)

$(BUILD)/fuzz/%: core/%.cc $(CORE_SRCS)
	@mkdir -p $(@D)
	$(CLANGXX) $(FUZZ_FLAGS) $(WARNINGS) -o $@ $^ $(LDLIBS)

fuzz: $(addprefix $(BUILD)/fuzz/,$(basename $(notdir $(FUZZ_SRCS))))

# Sub-makes build in parallel (one job per CPU) unless the caller chose -j itself.
JOBS := $(if $(filter -j%,$(MAKEFLAGS)),,-j$(shell nproc))

test: deps
	@$(MAKE) --no-print-directory $(JOBS) all unit-tests fuzz
	@tests/run_all.sh

demo: deps
	@$(MAKE) --no-print-directory $(JOBS) all
	@scripts/demo.sh

bench: deps
	@$(MAKE) --no-print-directory $(JOBS) all $(BUILD)/point_bringup
	@bench/run.sh
	@bench/replication.sh
	@$(BUILD)/point_bringup

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/systemd/system \
	  $(DESTDIR)$(PREFIX)/share/doc/blockrep/formats
	install -m 0755 $(BINARIES) $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/blockrep/
	install -m 0644 docs/formats/*.md $(DESTDIR)$(PREFIX)/share/doc/blockrep/formats/
	for u in systemd/*.service; do \
	  sed -e 's|@BINDIR@|$(PREFIX)/bin|g' -e 's|/usr/local/share/doc|$(PREFIX)/share/doc|g' $$u > $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); \
	  chmod 0644 $(DESTDIR)$(PREFIX)/lib/systemd/system/$$(basename $$u); \
	done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
