//! Error answers: JSON body, `Content-Type: application/json`, and
//! `WWW-Authenticate` on 401.

use core::ptr;

use nginx_sys::{
    ngx_chain_t, ngx_create_temp_buf, ngx_http_discard_request_body, ngx_http_finalize_request,
    ngx_http_output_filter, ngx_http_request_t, ngx_http_send_header, ngx_int_t, ngx_list_push,
    ngx_str_t, ngx_table_elt_t, NGX_HTTP_FORBIDDEN, NGX_HTTP_UNAUTHORIZED,
};
use ngx::core::Status;

use crate::authz::{insufficient_scope_challenge, FORBIDDEN_BODY};
use crate::conf::LocationConf;
use crate::www_authenticate::error_body;

const JSON: &[u8] = b"application/json";

fn static_str(s: &'static [u8]) -> ngx_str_t {
    ngx_str_t {
        len: s.len(),
        data: s.as_ptr().cast_mut(),
    }
}

/// Sends the module's own error response for `status` and finalizes the
/// request; returns `NGX_DONE` for the access phase. The response is sent
/// here (not returned as a status) so that `error_page` does not replace it,
/// as with the C module.
///
/// # Safety
/// `r` must be a valid main request in the access phase.
pub unsafe fn send_error(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    status: usize,
) -> ngx_int_t {
    let rc = ngx_http_discard_request_body(r);
    if rc != Status::NGX_OK.0 {
        ngx_http_finalize_request(r, rc);
        return Status::NGX_DONE.into();
    }
    if status == NGX_HTTP_UNAUTHORIZED as usize && !add_www_authenticate(r, &conf.challenge) {
        ngx_http_finalize_request(r, Status::NGX_ERROR.into());
        return Status::NGX_DONE.into();
    }
    let rc = send_json(r, status, error_body(status).as_bytes());
    ngx_http_finalize_request(r, rc);
    Status::NGX_DONE.into()
}

/// Sends the 403 of an unmet `phantom_token_require` rule, with
/// `WWW-Authenticate: Bearer realm="…", error="insufficient_scope",
/// scope="<scopes>"`, and finalizes the request; returns `NGX_DONE`.
///
/// # Safety
/// `r` must be a valid main request in the access phase.
pub unsafe fn send_forbidden(
    r: *mut ngx_http_request_t,
    conf: &LocationConf,
    scopes: &str,
) -> ngx_int_t {
    let rc = ngx_http_discard_request_body(r);
    if rc != Status::NGX_OK.0 {
        ngx_http_finalize_request(r, rc);
        return Status::NGX_DONE.into();
    }
    let challenge = insufficient_scope_challenge(conf.realm.as_bytes(), scopes);
    if !add_www_authenticate(r, &challenge) {
        ngx_http_finalize_request(r, Status::NGX_ERROR.into());
        return Status::NGX_DONE.into();
    }
    let rc = send_json(r, NGX_HTTP_FORBIDDEN as usize, FORBIDDEN_BODY.as_bytes());
    ngx_http_finalize_request(r, rc);
    Status::NGX_DONE.into()
}

/// Sends `status` with a JSON `body` (copied into the request pool);
/// returns the rc to finalize the request with.
///
/// # Safety
/// `r` must be a valid main request whose header was not sent yet.
pub unsafe fn send_json(r: *mut ngx_http_request_t, status: usize, body: &[u8]) -> ngx_int_t {
    send_body(r, status, JSON, body)
}

/// Sends `status` with `body` of `content_type` (copied into the request
/// pool); returns the rc to finalize the request with.
///
/// # Safety
/// `r` must be a valid main request whose header was not sent yet.
pub unsafe fn send_body(
    r: *mut ngx_http_request_t,
    status: usize,
    content_type: &'static [u8],
    body: &[u8],
) -> ngx_int_t {
    let out = &mut (*r).headers_out;
    out.status = status;
    out.content_type = static_str(content_type);
    out.content_type_len = content_type.len();
    out.content_type_lowcase = ptr::null_mut();
    out.content_length_n = body.len() as _;

    let rc = ngx_http_send_header(r);
    if rc == Status::NGX_ERROR.0
        || rc > Status::NGX_OK.into()
        || (*r).header_only() != 0
        || body.is_empty()
    {
        return rc;
    }
    let Some(b) = ngx_create_temp_buf((*r).pool, body.len()).as_mut() else {
        return Status::NGX_ERROR.into();
    };
    ptr::copy_nonoverlapping(body.as_ptr(), b.pos, body.len());
    b.last = b.pos.add(body.len());
    b.set_last_buf(1);
    b.set_last_in_chain(1);
    let mut chain = ngx_chain_t {
        buf: b,
        next: ptr::null_mut(),
    };
    ngx_http_output_filter(r, &mut chain)
}

/// Adds `WWW-Authenticate: <challenge>` to the response headers.
unsafe fn add_www_authenticate(r: *mut ngx_http_request_t, challenge: &[u8]) -> bool {
    let h = ngx_list_push(&mut (*r).headers_out.headers).cast::<ngx_table_elt_t>();
    if h.is_null() {
        return false;
    }
    ptr::write_bytes(h, 0, 1);
    if nginx_sys::add_to_ngx_table(h, (*r).pool, "WWW-Authenticate", challenge).is_none() {
        (*h).hash = 0;
        return false;
    }
    (*h).hash = 1;
    #[cfg(ngx_www_authenticate_list)]
    {
        (*r).headers_out.www_authenticate = h;
    }
    true
}
