//! Passes NGINX's build facts (feature cfgs, build directory) from `nginx-sys`
//! to this crate, its tests and the Makefile.
fn main() {
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES_CHECK");
    println!(
        "cargo::rustc-check-cfg=cfg(ngx_feature, values({}))",
        std::env::var("DEP_NGINX_FEATURES_CHECK").unwrap_or("any()".to_string())
    );
    println!("cargo::rerun-if-env-changed=DEP_NGINX_FEATURES");
    if let Ok(features) = std::env::var("DEP_NGINX_FEATURES") {
        for feature in features.split(',').map(str::trim) {
            println!("cargo::rustc-cfg=ngx_feature=\"{feature}\"");
        }
    }
    // `headers_out.www_authenticate` exists since NGINX 1.23.0.
    println!("cargo::rustc-check-cfg=cfg(ngx_www_authenticate_list)");
    println!("cargo::rerun-if-env-changed=DEP_NGINX_VERSION_NUMBER");
    if let Ok(version) = std::env::var("DEP_NGINX_VERSION_NUMBER") {
        if version.parse::<u64>().unwrap_or(0) >= 1_023_000 {
            println!("cargo::rustc-cfg=ngx_www_authenticate_list");
        }
    }
    println!("cargo::rerun-if-env-changed=DEP_NGINX_BUILD_DIR");
    if let Ok(build_dir) = std::env::var("DEP_NGINX_BUILD_DIR") {
        println!("cargo::rustc-env=NGINX_BUILD_DIR={build_dir}");
        // Let the Makefile find the nginx binary that was built with the module.
        if let Ok(out) = std::env::var("OUT_DIR") {
            let _ = std::fs::write(
                std::path::Path::new(&out).join("nginx_build_dir"),
                &build_dir,
            );
        }
    }
}
