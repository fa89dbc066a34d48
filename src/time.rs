//! Clocks. Lifetimes and deadlines use NGINX's monotonic clock
//! ([`crate::cache::zone::now_mono`]); only a JWT's `exp` (wall clock, set
//! by the authorization server) needs the wall clock below.

use nginx_sys::ngx_timeofday;

/// Current wall-clock time in ms since the epoch (NGINX's cached time).
pub fn now_wall_ms() -> u64 {
    let tp = ngx_timeofday();
    (tp.sec as u64) * 1000 + tp.msec as u64
}
