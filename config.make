# Appends the cargo build of the module to NGINX's objs/Makefile (see config).
ngx_addon_name=ngx_curity_http_phantom_token_module

ngx_phantom_rust_make
