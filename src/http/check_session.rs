//! `check_session_iframe` (Session Management 1.0 3.2): a page relying parties embed, which answers
//! their `postMessage("client_id session_state")` with `unchanged`, `changed` or `error` by computing
//! the session state again from the OP browser state cookie (see `protocol::logout::session_state`).

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::{SharedState, cookies};
use crate::crypto;

/// Answers only its parent frame, on the parent's origin (Session Management 1.0 3.2), with the hex
/// SHA-256 of `client_id origin browser_state salt` compared to the session state it was given.
const SCRIPT: &str = r#"(function(){
var name=document.currentScript.getAttribute('data-cookie');
function state(){var c=document.cookie.split('; ').filter(function(p){return p.indexOf(name+'=')===0})[0];return c?c.substring(name.length+1):''}
function hex(b){return Array.prototype.map.call(new Uint8Array(b),function(x){return('0'+x.toString(16)).slice(-2)}).join('')}
window.addEventListener('message',function(e){
if(e.source!==window.parent)return;
var ao=window.location.ancestorOrigins;if(ao&&ao.length&&ao[0]!==e.origin)return;
var answer=function(a){e.source.postMessage(a,e.origin)};
var parts=typeof e.data==='string'?e.data.split(' '):[];
if(parts.length!==2||parts[1].lastIndexOf('.')<1){answer('error');return}
var ss=parts[1],salt=ss.substring(ss.lastIndexOf('.')+1);
var input=new TextEncoder().encode(parts[0]+' '+e.origin+' '+state()+' '+salt);
crypto.subtle.digest('SHA-256',input).then(function(d){answer(hex(d)+'.'+salt===ss?'unchanged':'changed')},function(){answer('error')});
});
})();"#;

pub async fn iframe(State(state): State<SharedState>) -> Response {
    let cookie = cookies::browser_state_name(&state.config);
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>check_session</title></head>\
         <body><script data-cookie=\"{cookie}\">{SCRIPT}</script></body></html>\n"
    );
    let hash = STANDARD.encode(crypto::sha256(SCRIPT.as_bytes()));
    let csp = format!("default-src 'none'; script-src 'sha256-{hash}'; frame-ancestors *; base-uri 'none'");
    let mut response =
        ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], html)
            .into_response();
    if let Ok(csp) = HeaderValue::from_str(&csp) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}
