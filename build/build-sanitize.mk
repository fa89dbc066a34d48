# Sanitize flavour: debug build with AddressSanitizer in NGINX and the module
# (nightly-free: uses clang's ASan through NGX_CFLAGS/RUSTFLAGS).
CARGO_PROFILE   = dev
CARGO_OUT       = debug
NGX_CONFIGURE_ARGS ?= --with-debug
export NGX_CFLAGS  = -fsanitize=address -fno-omit-frame-pointer
export NGX_LDFLAGS = -fsanitize=address
export CARGO_TARGET_DIR = target/sanitize
