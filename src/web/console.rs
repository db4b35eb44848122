//! The VM console in the browser: a page with noVNC, and a websocket that carries the
//! RFB stream between the browser and the VM's VNC server, a UNIX socket in libvirt's
//! private per-domain directory (no TCP port a local user could reach). The websocket
//! needs the same session and `vm.console` permission as the page and this dashboard's
//! own `Origin`, and closes when the session ends (sign-out, expiry).

use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::views::Layout;
use crate::compute::VncListener;

/// The VM's end of the console: a UNIX socket, or TCP for domains from before.
trait Vnc: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Vnc for T {}
use super::{render, uuid_of, Ctx, WebError};

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    layout: Layout,
    vm_id: String,
    vm_name: String,
    status: &'static str,
}

pub async fn page(ctx: Ctx, id: web::Path<String>) -> Result<HttpResponse, WebError> {
    let id = uuid_of(&id)?;
    let vm = ctx.call(move |s, who, _| s.get_vm(who, &id)).await?;
    render(&ConsolePage {
        layout: ctx.layout("vms"),
        vm_id: vm.id.to_string(),
        vm_name: vm.name,
        status: vm.status.as_str(),
    })
}

/// Browsers send `Origin` with every websocket; it must be this dashboard's own.
fn same_origin(req: &HttpRequest) -> bool {
    // Every browser sends it on a websocket; without it the request is not a page's.
    let Some(origin) = req.headers().get("origin").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = req.connection_info().host().to_string();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

pub async fn proxy(
    req: HttpRequest,
    body: web::Payload,
    ctx: Ctx,
    id: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    if !same_origin(&req) {
        return Err(WebError::Csrf);
    }
    let id = uuid_of(&id)?;
    let listener = ctx
        .call(move |s, who, _| s.vm_vnc_address(who, &id))
        .await?;
    let vnc: Box<dyn Vnc> = match listener {
        VncListener::Unix(path) => Box::new(
            tokio::net::UnixStream::connect(&path)
                .await
                .map_err(|e| WebError::Internal(format!("cannot reach the VM's console: {e}")))?,
        ),
        VncListener::Tcp(addr) if addr.ip().is_loopback() => Box::new(
            tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| WebError::Internal(format!("cannot reach the VM's console: {e}")))?,
        ),
        VncListener::Tcp(addr) => {
            return Err(WebError::Internal(format!(
                "the VM's VNC listener {addr} is not on loopback; refusing to proxy it"
            )))
        }
    };
    let (res, mut session, stream) =
        actix_ws::handle(&req, body).map_err(|e| WebError::Invalid(e.to_string()))?;
    let mut stream = stream.max_frame_size(1 << 20);
    tracing::info!(vm = %id, user = %ctx.user.name, "console opened");
    let (state, sid) = (ctx.state.clone(), ctx.sid.clone());
    actix_web::rt::spawn(async move {
        let (mut rd, mut wr) = tokio::io::split(vnc);
        let mut buf = vec![0u8; 64 * 1024];
        let mut check = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = stream.recv() => match msg {
                    Some(Ok(actix_ws::Message::Binary(b))) => {
                        if wr.write_all(&b).await.is_err() { break; }
                    }
                    Some(Ok(actix_ws::Message::Ping(p))) => {
                        if session.pong(&p).await.is_err() { break; }
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                n = rd.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if session.binary(buf[..n].to_vec()).await.is_err() { break; }
                    }
                },
                _ = check.tick() => {
                    if !state.sessions.signed_in(&sid) {
                        tracing::info!(vm = %id, "session ended; closing its console");
                        break;
                    }
                }
            }
        }
        let _ = session.close(None).await;
        tracing::info!(vm = %id, "console closed");
    });
    Ok(res)
}
