//! Runs a real nginx binary with the phantom-token module loaded.

use std::ffi::OsString;
use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// How long [`NginxBuilder::start`] and [`Nginx::reload`] wait at most.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval between readiness polls.
const POLL: Duration = Duration::from_millis(20);
/// File name of the module in an `objs-<flavour>/` directory.
const MODULE_FILE: &str = "ngx_curity_http_phantom_token_module.so";
/// Log line nginx's master writes for every worker it spawns.
const WORKER_STARTED: &str = "start worker process";

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The nginx binary and the module the tests run, always taken as a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pair {
    nginx: PathBuf,
    module: PathBuf,
    /// Where the pair came from, for messages.
    origin: String,
}

/// Resolves the pair from the environment (`var`) and the workspace `root`:
///
/// * `NGINX_BIN` and `PHANTOM_TOKEN_MODULE` both set: exactly these;
/// * only one of them set: an error (a pair half from elsewhere would be
///   guessed);
/// * neither: `objs-$BUILD/nginx` and `objs-$BUILD/<module>.so` of one build
///   flavour (`BUILD` = `debug` by default, `release`, `sanitize`), as
///   written by `make build`.
fn resolve_pair(var: impl Fn(&str) -> Option<OsString>, root: &Path) -> Result<Pair, String> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty());
    match (set("NGINX_BIN"), set("PHANTOM_TOKEN_MODULE")) {
        // Relative paths are taken from the current directory (nginx would
        // resolve a relative `load_module` against its prefix).
        (Some(nginx), Some(module)) => Ok(Pair {
            nginx: std::path::absolute(&nginx).unwrap_or_else(|_| nginx.into()),
            module: std::path::absolute(&module).unwrap_or_else(|_| module.into()),
            origin: "env NGINX_BIN and PHANTOM_TOKEN_MODULE".into(),
        }),
        (Some(_), None) | (None, Some(_)) => Err(
            "only one of NGINX_BIN and PHANTOM_TOKEN_MODULE is set: set both (a binary and \
             the module built against it), or neither to use objs-$BUILD/ \
             (BUILD=debug by default, release or sanitize), as `make build` writes it"
                .into(),
        ),
        (None, None) => {
            let flavour = set("BUILD")
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_else(|| "debug".into());
            if flavour.is_empty() || flavour.contains(['/', '.']) {
                return Err(format!("BUILD={flavour:?} is not a build flavour name"));
            }
            let dir = root.join(format!("objs-{flavour}"));
            Ok(Pair {
                nginx: dir.join("nginx"),
                module: dir.join(MODULE_FILE),
                origin: format!(
                    "build flavour {flavour:?} ({}; NGINX_BIN and PHANTOM_TOKEN_MODULE not set)",
                    dir.display()
                ),
            })
        }
    }
}

/// The pair of this test process, resolved once.
fn pair() -> &'static Pair {
    static PAIR: OnceLock<Result<Pair, String>> = OnceLock::new();
    match PAIR.get_or_init(|| resolve_pair(|n| std::env::var_os(n), &workspace_root())) {
        Ok(pair) => pair,
        Err(e) => panic!("{e}"),
    }
}

/// The nginx binary to run: env `NGINX_BIN`, or `objs-$BUILD/nginx`
/// (`BUILD` defaults to `debug`) when neither `NGINX_BIN` nor
/// `PHANTOM_TOKEN_MODULE` is set.
///
/// # Panics
/// When only one of `NGINX_BIN` and `PHANTOM_TOKEN_MODULE` is set.
pub fn nginx_binary() -> PathBuf {
    pair().nginx.clone()
}

/// The module to load: env `PHANTOM_TOKEN_MODULE`, or
/// `objs-$BUILD/ngx_curity_http_phantom_token_module.so` next to the
/// [`nginx_binary`] of the same flavour.
///
/// # Panics
/// As [`nginx_binary`].
pub fn module_path() -> PathBuf {
    pair().module.clone()
}

/// Checks that `module` loads into `nginx` (`nginx -t` of a configuration
/// with only `load_module`): NGINX refuses a module built for another
/// version or with another signature (`--with-compat`, debug, ...).
fn check_module_loads(nginx: &Path, module: &Path, origin: &str) -> Result<(), String> {
    let build_hint = "Both must come from one build: `make build` (BUILD=debug|release|sanitize) \
                      writes objs-$BUILD/nginx and objs-$BUILD/ngx_curity_http_phantom_token_module.so; \
                      set NGINX_BIN and PHANTOM_TOKEN_MODULE together, or neither.";
    if !nginx.is_file() {
        return Err(format!(
            "no nginx binary at {} (from {origin}). Run `make build`. {build_hint}",
            nginx.display()
        ));
    }
    if !module.is_file() {
        return Err(format!(
            "no module at {} (from {origin}). Run `make build`. {build_hint}",
            module.display()
        ));
    }
    let dir = temp_prefix();
    let d = dir.display();
    let mut conf = format!("load_module {};\n", module.display());
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        conf.push_str("user root;\n");
    }
    conf.push_str(&format!(
        "error_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\n"
    ));
    let conf_path = dir.join("pair-check.conf");
    let result = fs::write(&conf_path, conf)
        .map_err(|e| format!("cannot write {}: {e}", conf_path.display()))
        .and_then(|()| {
            Command::new(nginx)
                .arg("-t")
                .arg("-q")
                .arg("-p")
                .arg(&dir)
                .arg("-e")
                .arg(dir.join("error.log"))
                .arg("-c")
                .arg(&conf_path)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run {}: {e}", nginx.display()))
        })
        .and_then(|out| {
            if out.status.success() {
                return Ok(());
            }
            let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stdout));
            if !output.contains("[emerg]") {
                output.push_str(&read_lossy(&dir.join("error.log")));
            }
            Err(format!(
                "the module does not load into this nginx (`nginx -t` with load_module failed):\n  \
                 nginx:  {}\n  module: {}\n  from:   {origin}\n{}\n{build_hint}",
                nginx.display(),
                module.display(),
                output.trim_end()
            ))
        });
    if !keep_dirs() {
        let _ = fs::remove_dir_all(&dir);
    }
    result
}

/// Panics (once per process, with the reason) unless the module loads into
/// the nginx binary: a release nginx must never be paired silently with a
/// debug module, or an nginx of another version.
fn ensure_module_loads() {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let p = pair();
    if let Err(e) = CHECKED.get_or_init(|| check_module_loads(&p.nginx, &p.module, &p.origin)) {
        panic!("{e}");
    }
}

/// A blocking HTTP/1.1 client for tests: no proxy, 10 s timeouts, redirects
/// not followed.
pub fn client() -> reqwest::blocking::Client {
    client_builder().build().expect("reqwest client")
}

/// A blocking HTTP/2 client using prior knowledge (cleartext h2c), for
/// servers with `listen ... http2` (or the `http2 on` directive).
pub fn http2_client() -> reqwest::blocking::Client {
    client_builder()
        .http2_prior_knowledge()
        .build()
        .expect("reqwest h2 client")
}

fn client_builder() -> reqwest::blocking::ClientBuilder {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

fn temp_prefix() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "ngx-phantom-test-{}-{n}-{nanos:08x}",
        std::process::id()
    ));
    fs::create_dir_all(dir.join("logs"))
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn keep_dirs() -> bool {
    std::env::var("KEEP_NGINX").is_ok_and(|v| v == "1")
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

/// Picks a currently free TCP port on 127.0.0.1 (bind to port 0, read the
/// port, release it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("cannot pick a free port")
}

type HttpFn<'a> = Box<dyn FnOnce(u16) -> String + 'a>;

/// Configures and starts an [`Nginx`] instance.
///
/// The configuration written to `<prefix>/nginx.conf` is:
///
/// ```text
/// load_module /abs/module.so;          # unless .load_module(false)
/// daemon off;
/// master_process on;
/// worker_processes N;                  # .workers(N), default 2
/// user root;                           # only when running as uid 0
/// error_log <prefix>/error.log debug;
/// pid <prefix>/nginx.pid;
/// events { worker_connections 1024; }
/// <main_conf>                          # .main_conf(...)
/// http {
///     access_log <prefix>/access.log;
///     client_body_temp_path <prefix>/client_body;
///     proxy_temp_path <prefix>/proxy_temp;
///     ...
/// <http block body>                    # .http(|port| ...) / .http_body(...)
/// }
/// ```
///
/// The listen port is chosen by the runner (or set with [`port`](Self::port))
/// and handed to the closure given to [`http`](Self::http), which returns the
/// body of the `http {}` block, typically built with `format!`:
///
/// ```no_run
/// # use test_support::Nginx;
/// let nginx = Nginx::builder()
///     .workers(1)
///     .http(|port| format!("server {{ listen 127.0.0.1:{port}; return 200 ok; }}"))
///     .start();
/// ```
///
/// Alternatively [`http_body`](Self::http_body) takes a literal text in which
/// `{PORT}` is replaced with the listen port.
pub struct NginxBuilder<'a> {
    workers: usize,
    main_conf: String,
    load_module: bool,
    port: Option<u16>,
    wait_ports: Vec<u16>,
    http: Option<HttpFn<'a>>,
}

impl Default for NginxBuilder<'_> {
    fn default() -> Self {
        NginxBuilder {
            workers: 2,
            main_conf: String::new(),
            load_module: true,
            port: None,
            wait_ports: Vec::new(),
            http: None,
        }
    }
}

/// Settings needed to (re)write a configuration file.
#[derive(Clone)]
struct Layout {
    prefix: PathBuf,
    workers: usize,
    main_conf: String,
    load_module: bool,
}

/// Whether the nginx under test knows `http2 on;` (NGINX 1.25.1 and later).
pub fn nginx_supports_http2_on() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let out = Command::new(nginx_binary()).arg("-v").output();
        let text = out
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .unwrap_or_default();
        let version: Vec<u32> = text
            .rsplit('/')
            .next()
            .unwrap_or("")
            .trim()
            .split(|c: char| !c.is_ascii_digit())
            .filter_map(|p| p.parse().ok())
            .collect();
        version.as_slice() >= [1, 25, 1].as_slice() || version.is_empty()
    })
}

impl Layout {
    fn conf_path(&self) -> PathBuf {
        self.prefix.join("nginx.conf")
    }

    fn render(&self, http_body: &str) -> String {
        let p = self.prefix.display();
        let mut conf = String::new();
        if self.load_module {
            conf.push_str(&format!("load_module {};\n", module_path().display()));
        }
        conf.push_str("daemon off;\nmaster_process on;\n");
        conf.push_str(&format!("worker_processes {};\n", self.workers));
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            conf.push_str("user root;\n");
        }
        conf.push_str(&format!(
            "error_log {p}/error.log debug;\npid {p}/nginx.pid;\n"
        ));
        conf.push_str("events {\n    worker_connections 1024;\n}\n");
        if !self.main_conf.is_empty() {
            conf.push_str(&self.main_conf);
            if !self.main_conf.ends_with('\n') {
                conf.push('\n');
            }
        }
        conf.push_str("http {\n");
        conf.push_str(&format!("    access_log {p}/access.log;\n"));
        for (directive, dir) in [
            ("client_body_temp_path", "client_body"),
            ("proxy_temp_path", "proxy_temp"),
            ("fastcgi_temp_path", "fastcgi_temp"),
            ("uwsgi_temp_path", "uwsgi_temp"),
            ("scgi_temp_path", "scgi_temp"),
        ] {
            conf.push_str(&format!("    {directive} {p}/{dir};\n"));
        }
        if nginx_supports_http2_on() {
            conf.push_str(http_body);
        } else {
            // NGINX < 1.25.1 has no `http2` directive (and no HTTP/1 and
            // HTTP/2 on one plain-text port): drop it, so every HTTP/1 test
            // runs there; the HTTP/2 tests (named `http2`) are skipped by
            // `make test-distro`.
            conf.push_str(&http_body.replace("http2 on;", ""));
        }
        if !http_body.ends_with('\n') {
            conf.push('\n');
        }
        conf.push_str("}\n");
        conf
    }

    fn write(&self, http_body: &str) -> String {
        let text = self.render(http_body);
        fs::write(self.conf_path(), &text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", self.conf_path().display()));
        text
    }
}

/// Result of `nginx -t` on a configuration ([`NginxBuilder::test_config`]).
#[derive(Debug, Clone)]
pub struct ConfigTest {
    /// Whether `nginx -t` succeeded.
    pub ok: bool,
    /// Combined stderr and stdout of `nginx -t`.
    pub output: String,
    /// Path of the tested configuration file (removed afterwards unless
    /// `KEEP_NGINX=1`).
    pub conf_path: PathBuf,
    /// Text of the tested configuration file.
    pub conf_text: String,
}

impl ConfigTest {
    /// 1-based line number of the first line of the configuration file
    /// containing `needle`.
    pub fn line_of(&self, needle: &str) -> Option<usize> {
        line_of(&self.conf_text, needle)
    }

    /// `"<conf_path>:<line>"` for the first line containing `needle`, the
    /// form nginx uses in `[emerg] ... in <file>:<line>` messages.
    ///
    /// # Panics
    /// When no line contains `needle`.
    pub fn location_of(&self, needle: &str) -> String {
        let line = self
            .line_of(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in config:\n{}", self.conf_text));
        format!("{}:{line}", self.conf_path.display())
    }
}

impl<'a> NginxBuilder<'a> {
    /// Number of worker processes (default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Extra main-context lines, placed after the `events {}` block.
    pub fn main_conf(mut self, conf: &str) -> Self {
        self.main_conf = conf.to_string();
        self
    }

    /// Whether to emit the `load_module` line (default true).
    pub fn load_module(mut self, load: bool) -> Self {
        self.load_module = load;
        self
    }

    /// Uses this listen port instead of a free one picked by the runner.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Also waits for this port to accept connections at start (for
    /// configurations listening on several ports, see [`Nginx::free_port`]).
    pub fn wait_for_port(mut self, port: u16) -> Self {
        self.wait_ports.push(port);
        self
    }

    /// Sets the body of the `http {}` block from the listen port.
    pub fn http(mut self, f: impl FnOnce(u16) -> String + 'a) -> Self {
        self.http = Some(Box::new(f));
        self
    }

    /// Sets the body of the `http {}` block; `{PORT}` is replaced with the
    /// listen port.
    pub fn http_body(self, body: &str) -> Self {
        let body = body.to_string();
        self.http(move |port| body.replace("{PORT}", &port.to_string()))
    }

    fn prepare(self) -> (Layout, u16, Vec<u16>, String) {
        let port = self.port.unwrap_or_else(free_port);
        let layout = Layout {
            prefix: temp_prefix(),
            workers: self.workers,
            main_conf: self.main_conf,
            load_module: self.load_module,
        };
        let body = self.http.map(|f| f(port)).unwrap_or_default();
        let text = layout.write(&body);
        (layout, port, self.wait_ports, text)
    }

    /// Runs `nginx -t` on the configuration.
    ///
    /// # Panics
    /// When the module is loaded and does not load into the nginx binary.
    pub fn test_config(self) -> ConfigTest {
        if self.load_module {
            ensure_module_loads();
        }
        let (layout, _, _, conf_text) = self.prepare();
        let out = Command::new(nginx_binary())
            .arg("-t")
            .arg("-p")
            .arg(&layout.prefix)
            .arg("-e")
            .arg(layout.prefix.join("error.log"))
            .arg("-c")
            .arg(layout.conf_path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", nginx_binary().display()));
        let mut output = String::from_utf8_lossy(&out.stderr).into_owned();
        output.push_str(&String::from_utf8_lossy(&out.stdout));
        let result = ConfigTest {
            ok: out.status.success(),
            output,
            conf_path: layout.conf_path(),
            conf_text,
        };
        if !keep_dirs() {
            let _ = fs::remove_dir_all(&layout.prefix);
        }
        result
    }

    /// Starts nginx and waits (at most 10 s) until it accepts connections.
    ///
    /// # Panics
    /// When nginx does not come up; the message includes its error log.
    pub fn start(self) -> Nginx {
        self.try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`start`](Self::start) but returns the failure (with the error
    /// log and stderr of nginx) instead of panicking.
    ///
    /// # Panics
    /// When the module is loaded and does not load into the nginx binary
    /// (see [`nginx_binary`]): that is a broken test setup, not a failure
    /// to report.
    pub fn try_start(self) -> Result<Nginx, String> {
        if self.load_module {
            ensure_module_loads();
        }
        let (layout, port, mut wait_ports, conf_text) = self.prepare();
        let stderr = fs::File::create(layout.prefix.join("stderr.log")).expect("stderr.log");
        let stdout = fs::File::create(layout.prefix.join("stdout.log")).expect("stdout.log");
        let bin = nginx_binary();
        let child = Command::new(&bin)
            .arg("-p")
            .arg(&layout.prefix)
            .arg("-e")
            .arg(layout.prefix.join("error.log"))
            .arg("-c")
            .arg(layout.conf_path())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
        let mut nginx = Nginx {
            child: Some(child),
            layout,
            port,
            conf_text,
        };
        wait_ports.insert(0, port);
        nginx.wait_ready(&wait_ports)?;
        // A worker that was just forked has not set its title yet: wait
        // (bounded) until all are visible, so `worker_pids()` is complete.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while nginx.worker_pids().len() < nginx.layout.workers
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        Ok(nginx)
    }
}

/// A running nginx (master + workers) on a temporary prefix.
///
/// Dropping it stops nginx (SIGTERM, then SIGKILL after 5 s), reaps it and
/// removes the prefix directory unless `KEEP_NGINX=1`. When dropped during a
/// panic, the tail of the error log is printed.
pub struct Nginx {
    child: Option<Child>,
    layout: Layout,
    port: u16,
    conf_text: String,
}

impl Nginx {
    /// A builder with default settings.
    pub fn builder<'a>() -> NginxBuilder<'a> {
        NginxBuilder::default()
    }

    /// Starts nginx with this `http {}` block body, in which `{PORT}` is
    /// replaced with the listen port (see [`NginxBuilder`]).
    pub fn start(http_block_body: &str) -> Nginx {
        Self::builder().http_body(http_block_body).start()
    }

    /// Runs `nginx -t` on this `http {}` block body (`{PORT}` replaced)
    /// wrapped as by [`NginxBuilder`]; returns success and the combined
    /// output. Use [`NginxBuilder::test_config`] for file path and line
    /// numbers.
    pub fn test_config(http_block_body: &str) -> (bool, String) {
        let t = Self::builder().http_body(http_block_body).test_config();
        (t.ok, t.output)
    }

    /// Picks a currently free TCP port on 127.0.0.1, e.g. for a second
    /// `listen` (combine with [`NginxBuilder::wait_for_port`]).
    pub fn free_port() -> u16 {
        free_port()
    }

    /// The listen port handed to the configuration.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The temporary prefix directory.
    pub fn prefix(&self) -> &Path {
        &self.layout.prefix
    }

    /// Path of the written `nginx.conf`.
    pub fn conf_path(&self) -> PathBuf {
        self.layout.conf_path()
    }

    /// Text of the current `nginx.conf`.
    pub fn conf_text(&self) -> &str {
        &self.conf_text
    }

    /// 1-based line number of the first line of `nginx.conf` containing `needle`.
    pub fn line_of(&self, needle: &str) -> Option<usize> {
        line_of(&self.conf_text, needle)
    }

    /// Contents of `<prefix>/error.log`.
    pub fn error_log(&self) -> String {
        read_lossy(&self.layout.prefix.join("error.log"))
    }

    /// Contents of `<prefix>/access.log`.
    pub fn access_log(&self) -> String {
        read_lossy(&self.layout.prefix.join("access.log"))
    }

    /// What nginx wrote to its stderr.
    pub fn stderr(&self) -> String {
        read_lossy(&self.layout.prefix.join("stderr.log"))
    }

    /// Polls the error log until it contains `needle`; false after `timeout`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.error_log().contains(needle))
    }

    /// Polls the access log until it contains `needle`; false after `timeout`.
    pub fn wait_for_access_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.access_log().contains(needle))
    }

    /// PID of the master process.
    pub fn master_pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// PIDs of the worker processes (children of the master whose title is
    /// `nginx: worker process`, including ones shutting down after a reload).
    pub fn worker_pids(&self) -> Vec<u32> {
        let master = self.master_pid();
        let mut pids = Vec::new();
        for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = read_lossy(&entry.path().join("stat"));
            // Fields after the parenthesised command: state ppid ...
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("");
            let ppid = fields.next().and_then(|p| p.parse::<u32>().ok());
            if ppid != Some(master) || state == "Z" {
                continue;
            }
            if read_lossy(&entry.path().join("cmdline")).contains("worker process") {
                pids.push(pid);
            }
        }
        pids.sort_unstable();
        pids
    }

    /// Rewrites `nginx.conf` with a new `http {}` block body, keeping the
    /// other settings (call [`reload`](Self::reload) to apply it).
    pub fn write_config(&mut self, http_block_body: &str) {
        self.conf_text = self.layout.write(http_block_body);
    }

    /// Reloads the configuration (SIGHUP to the master) and waits until the
    /// new workers have started.
    ///
    /// # Panics
    /// When the reload fails or times out (message includes the new part of
    /// the error log).
    pub fn reload(&self) {
        self.try_reload().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`reload`](Self::reload), returning the failure (e.g. an invalid
    /// new configuration: nginx keeps the old one) instead of panicking.
    pub fn try_reload(&self) -> Result<(), String> {
        let before = self.error_log();
        let started = before.matches(WORKER_STARTED).count();
        let old_workers = self.worker_pids();
        self.signal(libc::SIGHUP);
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            let log = self.error_log();
            let new = log.get(before.len()..).unwrap_or("");
            if log.matches(WORKER_STARTED).count() >= started + self.layout.workers {
                break;
            }
            if let Some(line) = new.lines().find(|l| l.contains("[emerg]")) {
                return Err(format!(
                    "nginx reload failed: {line}\n{}",
                    filter_debug(new)
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx reload timed out; new error log:\n{}",
                    filter_debug(new)
                ));
            }
            std::thread::sleep(POLL);
        }
        // Give the old workers a bounded chance to finish.
        wait_until(Duration::from_secs(5), || {
            let now = self.worker_pids();
            !old_workers.iter().any(|p| now.contains(p))
        });
        Ok(())
    }

    /// Sends `signal` to the master process.
    pub fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe {
                libc::kill(child.id() as libc::pid_t, signal);
            }
        }
    }

    fn wait_ready(&mut self, ports: &[u16]) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!(
                    "nginx exited at startup ({status}).\nstderr:\n{}\nerror.log:\n{}",
                    self.stderr(),
                    filter_debug(&self.error_log())
                ));
            }
            let listening = ports.iter().all(|&p| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], p)),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            let workers = self.error_log().matches(WORKER_STARTED).count();
            if listening && workers >= self.layout.workers {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "nginx not ready after {STARTUP_TIMEOUT:?} (ports {ports:?}).\nstderr:\n{}\nerror.log:\n{}",
                    self.stderr(),
                    filter_debug(&self.error_log())
                ));
            }
            std::thread::sleep(POLL);
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let workers = self.worker_pids();
        if let Some(mut child) = self.child.take() {
            // SAFETY: signalling our own child / its workers.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(5);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(POLL);
            }
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
            for pid in workers {
                // SAFETY: the workers were children of our nginx master.
                unsafe {
                    libc::kill(pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        if std::thread::panicking() {
            let log = filter_debug(&self.error_log());
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "--- nginx prefix {} (error.log tail, debug lines omitted) ---",
                self.layout.prefix.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if keep_dirs() {
            eprintln!("KEEP_NGINX=1: keeping {}", self.layout.prefix.display());
        } else {
            let _ = fs::remove_dir_all(&self.layout.prefix);
        }
    }
}

/// The log without `[debug]` lines.
fn filter_debug(log: &str) -> String {
    log.lines()
        .filter(|l| !l.contains("[debug]"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    #[test]
    fn both_variables_are_taken_as_they_are() {
        let p = resolve_pair(
            env(&[
                ("NGINX_BIN", "/x/nginx"),
                ("PHANTOM_TOKEN_MODULE", "/y/m.so"),
                ("BUILD", "release"),
            ]),
            Path::new("/ws"),
        )
        .unwrap();
        assert_eq!((p.nginx, p.module), ("/x/nginx".into(), "/y/m.so".into()));
        let p = resolve_pair(
            env(&[
                ("NGINX_BIN", "objs/nginx"),
                ("PHANTOM_TOKEN_MODULE", "objs/m.so"),
            ]),
            Path::new("/ws"),
        )
        .unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(p.nginx, cwd.join("objs/nginx"));
        assert_eq!(p.module, cwd.join("objs/m.so"));
    }

    #[test]
    fn only_one_variable_is_an_error() {
        for vars in [
            [("NGINX_BIN", "/x/nginx")],
            [("PHANTOM_TOKEN_MODULE", "/y/m.so")],
        ] {
            let e = resolve_pair(env(&vars), Path::new("/ws")).unwrap_err();
            assert!(
                e.contains("only one of NGINX_BIN and PHANTOM_TOKEN_MODULE"),
                "{e}"
            );
        }
        // An empty value counts as unset.
        let e = resolve_pair(
            env(&[("NGINX_BIN", "/x/nginx"), ("PHANTOM_TOKEN_MODULE", "")]),
            Path::new("/ws"),
        )
        .unwrap_err();
        assert!(e.contains("only one"), "{e}");
    }

    #[test]
    fn neither_variable_takes_both_from_one_flavour_dir() {
        let p = resolve_pair(env(&[]), Path::new("/ws")).unwrap();
        assert_eq!(p.nginx, Path::new("/ws/objs-debug/nginx"));
        assert_eq!(
            p.module,
            Path::new("/ws/objs-debug/ngx_curity_http_phantom_token_module.so")
        );
        for flavour in ["release", "sanitize"] {
            let p = resolve_pair(env(&[("BUILD", flavour)]), Path::new("/ws")).unwrap();
            let dir = PathBuf::from(format!("/ws/objs-{flavour}"));
            assert_eq!(p.nginx, dir.join("nginx"));
            assert_eq!(p.module, dir.join(MODULE_FILE));
            assert!(p.origin.contains(flavour));
        }
        assert!(resolve_pair(env(&[("BUILD", "../x")]), Path::new("/ws")).is_err());
    }

    #[test]
    fn missing_files_are_reported_with_the_build_hint() {
        let e = check_module_loads(
            Path::new("/nonexistent/objs-debug/nginx"),
            Path::new("/nonexistent/objs-debug/m.so"),
            "test",
        )
        .unwrap_err();
        assert!(
            e.contains("no nginx binary at /nonexistent/objs-debug/nginx"),
            "{e}"
        );
        assert!(e.contains("make build"), "{e}");
    }

    /// With a real nginx (the one this process would use, if built): a
    /// file that is not a module for it is refused loudly.
    #[test]
    fn a_module_nginx_cannot_load_is_refused_with_nginx_reason() {
        let Ok(p) = resolve_pair(|n| std::env::var_os(n), &workspace_root()) else {
            return;
        };
        if !p.nginx.is_file() {
            eprintln!("skipped: no nginx at {}", p.nginx.display());
            return;
        }
        let dir = temp_prefix();
        let fake = dir.join("fake_module.so");
        fs::write(&fake, b"not a shared object").unwrap();
        let e = check_module_loads(&p.nginx, &fake, "test").unwrap_err();
        let _ = fs::remove_dir_all(&dir);
        assert!(
            e.contains("the module does not load into this nginx"),
            "{e}"
        );
        assert!(e.contains("[emerg]"), "nginx's own reason: {e}");
        if p.module.is_file() {
            check_module_loads(&p.nginx, &p.module, &p.origin).unwrap();
        }
    }
}
