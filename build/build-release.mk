# Release flavour: optimized module, NGINX without --with-debug (debug log
# lines compiled out, as in a production build of the C module).
CARGO_PROFILE   = release
CARGO_OUT       = release
NGX_CONFIGURE_ARGS ?=
