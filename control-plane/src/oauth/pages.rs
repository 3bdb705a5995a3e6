//! The HTML of the authorization endpoint: the admin login, the consent page and errors.
//! Plain HTML, every value escaped; never framed (clickjacking), never cached.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use super::AUTHORIZE_PATH;

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <style>body{{font-family:sans-serif;max-width:40em;margin:3em auto;padding:0 1em}}\
         dt{{font-weight:bold;margin-top:.6em}}code{{word-break:break-all}}button{{margin-right:1em}}</style>\
         </head><body><h1>{title}</h1>{body}</body></html>",
        title = escape(title)
    );
    let mut response = (status, Html(html)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("frame-ancestors 'none'"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An error that cannot be sent back to the client (unknown client, bad redirect URI):
/// shown to the user, never redirected (no open redirector).
pub fn error(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Authorization request refused",
        &format!("<p>{}</p>", escape(message)),
    )
}

/// The admin must log in first: the passcode goes to the admin API, which sets the session
/// cookie; then the page reloads into the consent page.
pub fn login() -> Response {
    page(
        StatusCode::UNAUTHORIZED,
        "Log in to approve an MCP client",
        "<p>An MCP client asks for access to this router. Only an administrator can approve it.</p>\
         <form id=\"login\"><label>Admin passcode <input type=\"password\" name=\"passcode\" autofocus></label>\
         <button>Log in</button></form><p id=\"err\"></p>\
         <script>document.getElementById('login').onsubmit=async e=>{e.preventDefault();\
         const r=await fetch('/api/v1/login',{method:'POST',headers:{'content-type':'application/json'},\
         body:JSON.stringify({passcode:e.target.passcode.value,cookie:true})});\
         if(r.ok){location.reload()}else{document.getElementById('err').textContent='Login failed: '+(await r.text())}}</script>",
    )
}

pub struct Consent<'a> {
    pub request_id: &'a str,
    pub csrf: &'a str,
    pub client_id: &'a str,
    pub client_name: &'a str,
    pub redirect_uri: &'a str,
    pub scope: &'a str,
    pub resource: &'a str,
}

pub fn consent(c: &Consent) -> Response {
    let name = if c.client_name.is_empty() {
        "(no name given)"
    } else {
        c.client_name
    };
    let body = format!(
        "<p>An MCP client asks for access to this router. Approve only a client you recognise.</p>\
         <dl><dt>Client</dt><dd>{name} <code>{client_id}</code></dd>\
         <dt>Redirect URI (the code goes here)</dt><dd><code>{redirect_uri}</code></dd>\
         <dt>Resource</dt><dd><code>{resource}</code></dd>\
         <dt>Scopes</dt><dd><code>{scope}</code> (<code>*</code>: every server and tool; \
         <code>name</code>: one server; <code>name/tool</code>: one tool)</dd></dl>\
         <form method=\"post\" action=\"{action}\">\
         <input type=\"hidden\" name=\"request_id\" value=\"{request_id}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
         <p><label>Grant these scopes (you may narrow them): \
         <input name=\"scope\" value=\"{scope}\" size=\"50\"></label></p>\
         <button name=\"decision\" value=\"approve\">Approve</button>\
         <button name=\"decision\" value=\"deny\">Deny</button></form>",
        name = escape(name),
        client_id = escape(c.client_id),
        redirect_uri = escape(c.redirect_uri),
        resource = escape(c.resource),
        scope = escape(c.scope),
        action = AUTHORIZE_PATH,
        request_id = escape(c.request_id),
        csrf = escape(c.csrf),
    );
    page(StatusCode::OK, "Approve an MCP client?", &body)
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
