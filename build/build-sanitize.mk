# Sanitize flavour: debug build of NGINX with AddressSanitizer (the module is
# plain Rust; NGINX's pool, buffer and header handling around it is checked).
# `make BUILD=sanitize test` runs the whole suite against it.
CARGO_PROFILE   = dev
CARGO_OUT       = debug
NGX_CONFIGURE_ARGS ?= --with-debug
export NGX_CFLAGS  = -fsanitize=address -fno-omit-frame-pointer
export NGX_LDFLAGS = -fsanitize=address
export CARGO_TARGET_DIR = target/sanitize
# NGINX frees its pools at exit only partly by design: report errors, not leaks.
export ASAN_OPTIONS ?= detect_leaks=0
