# Debug flavour (default): NGINX built --with-debug, module unoptimized.
# Used by `make test` and `make run`; debug log lines are available.
CARGO_PROFILE   = dev
CARGO_OUT       = debug
NGX_CONFIGURE_ARGS ?= --with-debug
