# Phantom token module: build, test and demo.
#
#   make            build NGINX (vendored source) and the module (BUILD=debug)
#   make test       run unit and integration tests against the real nginx
#   make run        start the demo gateway, authorization server and echo API
#   make check      cargo fmt --check + clippy -D warnings
#   make props-long property tests with 100k cases each (long; CI skips it)
#   make fuzz       run each cargo-fuzz target for FUZZ_TIME seconds (nightly)
#   make soak       bounded local soak (1M requests, worker RSS); make reload-test
#   make module NGINX_SOURCE_DIR=/path/to/configured/nginx   build against your tree
#   make help

BUILD ?= debug
include build/build-$(BUILD).mk
export NGX_CONFIGURE_ARGS

CARGO      ?= cargo
TARGET_DIR ?= $(or $(CARGO_TARGET_DIR),target)
OBJS       := objs-$(BUILD)
MODULE     := ngx_curity_http_phantom_token_module.so
LIB        := $(TARGET_DIR)/$(CARGO_OUT)/libngx_curity_http_phantom_token_module.so

# Paths the integration tests use (test-support reads them).
export NGINX_BIN            = $(CURDIR)/$(OBJS)/nginx
export PHANTOM_TOKEN_MODULE = $(CURDIR)/$(OBJS)/$(MODULE)

# Fuzzing (fuzz/, a crate of its own): seconds per target, targets, and the
# cargo that has cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain.
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= bearer cache_control jwt rule
FUZZ_CARGO   ?= cargo +nightly

.PHONY: all build module test test-addon test-distro deb unit check mutants props-long fuzz run bench bench-flight soak reload-test clean help

all: build

help: ## Show this help
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/^[^:]*://' | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

build: ## Build vendored NGINX + the module into objs-$(BUILD)/
	$(CARGO) build --profile $(CARGO_PROFILE) --lib
	@mkdir -p $(OBJS)
	@# copy, then rename: a running nginx keeps the file it loaded intact
	cp $(LIB) $(OBJS)/$(MODULE).tmp && mv -f $(OBJS)/$(MODULE).tmp $(OBJS)/$(MODULE)
	cp "$$(cat $$(ls -td $(TARGET_DIR)/$(CARGO_OUT)/build/ngx_curity_http_phantom_token_module-*/out/nginx_build_dir | head -1))/nginx" $(OBJS)/nginx.tmp && mv -f $(OBJS)/nginx.tmp $(OBJS)/nginx
	@echo "module: $(OBJS)/$(MODULE)"; echo "nginx:  $(OBJS)/nginx"

module: ## Build only the module against NGINX_SOURCE_DIR (a configured tree, --with-compat)
	@test -n "$(NGINX_SOURCE_DIR)$(NGINX_BUILD_DIR)" || { echo "set NGINX_SOURCE_DIR (and optionally NGINX_BUILD_DIR)"; exit 1; }
	NGINX_SOURCE_DIR=$(NGINX_SOURCE_DIR) NGINX_BUILD_DIR=$(NGINX_BUILD_DIR) \
	  $(CARGO) build --release --lib --no-default-features --features export-modules --target-dir target/external
	@mkdir -p objs-external
	cp target/external/release/libngx_curity_http_phantom_token_module.so objs-external/$(MODULE)
	@echo "module: objs-external/$(MODULE)"

test: build ## Unit + integration tests (real nginx, test AS, echo API)
	$(CARGO) test --workspace --profile $(CARGO_PROFILE) -- --test-threads=4

check: ## cargo fmt --check and clippy -D warnings
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The pure modules, mutated by cargo-mutants; their tests are t/unit.rs and t/props.rs.
MUTANTS_FILES ?= src/bearer.rs src/jwt.rs src/jwt_memo.rs src/decision.rs \
                 src/www_authenticate.rs src/cache/policy.rs src/cache/command.rs \
                 src/authz/rule.rs src/authz/mod.rs src/verify/keys.rs src/claims.rs

mutants: ## Mutation testing of the pure modules (cargo install cargo-mutants; long)
	$(CARGO) mutants $(foreach f,$(MUTANTS_FILES),--file $(f)) -- --test unit --test props

props-long: ## Long property run, 100k cases per property (CI skips it)
	PROPTEST_CASES=100000 $(CARGO) test --test props --profile $(CARGO_PROFILE)

fuzz: ## Each cargo-fuzz target for FUZZ_TIME s (needs nightly + cargo-fuzz)
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus/$$t && \
	  $(FUZZ_CARGO) fuzz run $$t corpus/$$t seeds/$$t -- -max_total_time=$(FUZZ_TIME) || exit 1; \
	done

run: build ## Demo gateway on :8080 with the demo AS (:8444) and echo API (:8081)
	$(CARGO) build --profile $(CARGO_PROFILE) -p test-support --bin demo-servers
	scripts/run-demo $(CURDIR)/$(OBJS) $(TARGET_DIR)/$(CARGO_OUT)/demo-servers

test-addon: ## NGINX's own build (vendored 1.28, --add-dynamic-module), the suite against it
	scripts/test-addon

test-distro: ## Build against the distro's NGINX source, run the suite against /usr/sbin/nginx (Debian/Ubuntu, root)
	scripts/test-distro

deb: ## libnginx-mod-http-phantom-token .deb for the installed nginx (after test-distro); DEB_INSTALL=1 installs and tests it
	scripts/make-deb $(if $(DEB_INSTALL),--install)

bench: ## Side-by-side wrk benchmark (BUILD=release recommended)
	scripts/bench

bench-flight: build ## Single-flight bursts: 50 clients, one token, 200 ms AS (no-store / cacheable)
	$(CARGO) test --profile $(CARGO_PROFILE) --test flight_bench -- --ignored --nocapture

soak: build ## 1M requests over 50k tokens: worker RSS must stay flat (BUILD=release; CI skips it)
	scripts/soak $(CURDIR)/$(OBJS)

reload-test: build ## wrk 20 s while reloading 10x and upgrading the binary: no errors (CI skips it)
	scripts/reload-under-load $(CURDIR)/$(OBJS)

clean: ## Remove build outputs
	$(CARGO) clean
	rm -rf objs-*
